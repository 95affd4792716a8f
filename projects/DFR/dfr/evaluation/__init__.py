"""Inference wrappers (multi-scale/flip TTA, sliding window), labels at full size with bounded
memory, the sem-seg evaluator that reads them and the VOC test-server export."""
from .export import VOCSubmissionExporter, save_indexed_png
from .postprocess import InferenceMemoryError, labels_at_size
from .sem_seg import DFRSemSegEvaluator
from .tta import SemSegTTA, labels_of, slide_logits, tta_sizes

__all__ = ["SemSegTTA", "slide_logits", "tta_sizes", "labels_of", "labels_at_size",
           "InferenceMemoryError", "DFRSemSegEvaluator", "VOCSubmissionExporter",
           "save_indexed_png"]  # fmt: skip
