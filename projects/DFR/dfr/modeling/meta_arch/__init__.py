"""The DFR meta-architecture (META_ARCH_REGISTRY "DFRSegmentor")."""
from .dfr_segmentor import DFRSegmentor

__all__ = ["DFRSegmentor"]
