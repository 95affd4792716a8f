"""Inference wrappers (multi-scale/flip TTA, sliding window) and the VOC test-server export."""
from .export import VOCSubmissionExporter, save_indexed_png
from .tta import SemSegTTA, slide_logits, tta_sizes

__all__ = ["SemSegTTA", "slide_logits", "tta_sizes", "VOCSubmissionExporter", "save_indexed_png"]
