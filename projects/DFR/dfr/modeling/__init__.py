"""Model parts; importing registers D2SwinTransformer (BACKBONE_REGISTRY), UperNetHead
(DFR_SEM_SEG_HEADS_REGISTRY, named by MODEL.SEM_SEG_HEAD.NAME) and DFRSegmentor
(META_ARCH_REGISTRY)."""
from . import losses  # noqa: F401  isort: skip
from .backbone import D2SwinTransformer
from .heads import FCNAuxHead, FeatureConsistencyHead, UperNetFusion, UperNetHead
from .meta_arch import DFRSegmentor

__all__ = [
    "D2SwinTransformer",
    "UperNetFusion",
    "UperNetHead",
    "FeatureConsistencyHead",
    "FCNAuxHead",
    "DFRSegmentor",
]
