"""UperNet fusion, the per-pixel classification heads (semantic + auxiliary FCN) and the
feature-consistency head."""
from .feature_head import FeatureConsistencyHead
from .seg_heads import ConvSegHead, FCNAuxHead, UperNetHead, conv_bn_relu
from .upernet import UperNetFusion

__all__ = [
    "ConvSegHead",
    "FCNAuxHead",
    "FeatureConsistencyHead",
    "UperNetFusion",
    "UperNetHead",
    "conv_bn_relu",
]
