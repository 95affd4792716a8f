"""Label maps on disk: one reader and one value check for the whole package (the mapper, the
start-up scan, the scribble sources and tools). A label map is a single-channel PNG (mode L or
P, the value / palette index is the class id; I and I;16 accepted up to 255), 255 = unlabeled."""
import io
import os
from typing import Optional, Union

import numpy as np
from PIL import Image

from .classes import IGNORE_LABEL

__all__ = ["LabelMapError", "read_label", "values_outside", "check_label_values"]

PathOrBytes = Union[str, os.PathLike, bytes]


class LabelMapError(ValueError):
    """A label map that cannot be used; the message names the file."""


def read_label(src: PathOrBytes, source: Optional[str] = None) -> np.ndarray:
    """A label PNG (path or bytes) -> uint8 (H, W). `source` names bytes in messages."""
    name = source or ("<bytes>" if isinstance(src, (bytes, bytearray)) else str(src))
    try:
        if isinstance(src, (bytes, bytearray)):
            im = Image.open(io.BytesIO(bytes(src)))
        else:
            im = Image.open(src)
        with im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except Exception as e:  # PIL raises several types for missing / broken files
        raise LabelMapError(f"cannot read label map {name}: {e}") from e
    if mode not in ("L", "P", "I", "I;16"):
        raise LabelMapError(
            f"label map {name}: mode {mode!r}; expected a single-channel (L/P) label PNG"
        )
    if arr.max(initial=0) > 255:
        raise LabelMapError(f"label map {name}: values above 255")
    return arr.astype(np.uint8)


def values_outside(label: np.ndarray, num_classes: int, ignore_label: int = IGNORE_LABEL):
    """Sorted values of `label` that are neither a class id 0..num_classes-1 nor ignore."""
    label = np.asarray(label)
    if label.dtype == np.uint8:
        values = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    else:
        values = np.unique(label)
    return values[(values >= num_classes) & (values != ignore_label)]


def check_label_values(label: np.ndarray, name: str, num_classes: int,
                       ignore_label: int = IGNORE_LABEL):  # fmt: skip
    """Raise LabelMapError naming `name` when `label` has a value outside
    {0..num_classes-1, ignore_label}."""
    bad = values_outside(label, num_classes, ignore_label)
    if bad.size:
        raise LabelMapError(
            f"label map {name} has values {bad.tolist()[:10]} outside "
            f"{{0..{num_classes - 1}, {ignore_label}}}"
        )
