"""UperNet fusion, semantic (scene) head, feature-consistency head, auxiliary FCN head."""
from .feature_head import FCNAuxHead, FeatureConsistencyHead
from .upernet import UperNetFusion, UperNetHead

__all__ = ["UperNetFusion", "UperNetHead", "FeatureConsistencyHead", "FCNAuxHead"]
