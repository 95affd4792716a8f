"""UperNet fusion, the per-pixel classification heads (semantic + auxiliary FCN) and the
feature-consistency head."""
from .feature_head import FeatureConsistencyHead
from .seg_heads import (
    DFR_SEM_SEG_HEADS_REGISTRY,
    ConvSegHead,
    FCNAuxHead,
    UperNetHead,
    build_semantic_head,
    conv_bn_relu,
)
from .upernet import UperNetFusion

__all__ = [
    "ConvSegHead",
    "DFR_SEM_SEG_HEADS_REGISTRY",
    "FCNAuxHead",
    "FeatureConsistencyHead",
    "UperNetFusion",
    "UperNetHead",
    "build_semantic_head",
    "conv_bn_relu",
]
