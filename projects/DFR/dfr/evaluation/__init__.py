"""Inference wrappers (multi-scale/flip TTA, sliding window) and the VOC test-server export."""
from .export import VOCSubmissionExporter, save_indexed_png
from .tta import SemSegTTA, slide_probs

__all__ = ["SemSegTTA", "slide_probs", "VOCSubmissionExporter", "save_indexed_png"]
