"""Swin backbone (timm adapter) and its weight files."""
from .weights import load_swin_pretrained, read_checkpoint, swin_state_dict_from_file
from .swin import SWIN_SIZES, D2SwinTransformer

__all__ = [
    "D2SwinTransformer",
    "SWIN_SIZES",
    "load_swin_pretrained",
    "read_checkpoint",
    "swin_state_dict_from_file",
]
