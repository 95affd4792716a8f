"""Model parts. Importing `dfr.modeling` (or `dfr.modeling.losses`, which needs torch alone)
loads nothing else: `register_model_parts()` imports the modules that register
D2SwinTransformer (BACKBONE_REGISTRY), the heads (DFR_SEM_SEG_HEADS_REGISTRY, named by
MODEL.SEM_SEG_HEAD.NAME) and DFRSegmentor (META_ARCH_REGISTRY); `add_dfr_config` calls it.
The classes below are imported from their modules on first access."""
import importlib

__all__ = [
    "D2SwinTransformer",
    "UperNetFusion",
    "UperNetHead",
    "FeatureConsistencyHead",
    "FCNAuxHead",
    "DFRSegmentor",
    "register_model_parts",
]

_HOME = {
    "D2SwinTransformer": ".backbone",
    "UperNetFusion": ".heads",
    "UperNetHead": ".heads",
    "FeatureConsistencyHead": ".heads",
    "FCNAuxHead": ".heads",
    "DFRSegmentor": ".meta_arch",
}


def register_model_parts():
    """Register DFR's backbone, heads and meta-architecture in Detectron2's registries
    (idempotent: a module registers once, when it is first imported)."""
    from . import backbone, heads, meta_arch  # noqa: F401


def __getattr__(name):
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
