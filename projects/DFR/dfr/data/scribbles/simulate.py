"""Scribbles simulated from dense label maps, in the published styles.

``simulate_scribbles(label, style=..., seed=...)`` turns any dense label map into a scribble
label map (same shape, uint8, ``ignore_label`` where unlabeled). Every labeled output pixel
equals the dense label there, and dense ``ignore_label`` pixels are never labeled.

Styles:

- ``"skeleton"``: the generator of the embedded synthetic set
  (``tools.skeleton_scribbles``: region skeletons shortened to ~3 % of the pixels).
- ``"s4"``: Scribbles4All (NeurIPS 2024 Datasets & Benchmarks).
- ``"cdsp"``: the simulation of "Class-driven scribble promotion" (CDSP, AAAI 2024).

Determinism: the output depends only on (label, style, seed, ignore_label, width). Callers
that simulate a whole dataset pass a per-image seed derived from the dataset seed and the
image id (e.g. ``tools.file_rng``-style ``[seed, crc32(image_id)]`` folded into one int), so
that the result does not depend on processing order. ``GENERATOR_VERSION[style]`` changes
whenever the pixels a style produces change, so cached simulations can be invalidated.
"""

from typing import Dict, Tuple

import numpy as np

from ..classes import IGNORE_LABEL
from .tools import skeleton_scribbles

__all__ = ["GENERATOR_VERSION", "STYLES", "simulate_scribbles"]

STYLES: Tuple[str, ...] = ("s4", "cdsp", "skeleton")

GENERATOR_VERSION: Dict[str, str] = {"s4": "0", "cdsp": "0", "skeleton": "1"}


def _skeleton(label, rng, ignore_label, width):
    return skeleton_scribbles(label, rng, width=width, ignore_label=ignore_label)


def simulate_scribbles(
    label: np.ndarray,
    *,
    style: str = "s4",
    seed: int = 0,
    ignore_label: int = IGNORE_LABEL,
    width: int = 3,
) -> np.ndarray:
    """Scribble label map (uint8, same shape, `ignore_label` where unlabeled) simulated from
    the dense map `label` in `style` (one of STYLES), deterministic in `seed`."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be a 2-D map, got shape {label.shape}")
    if style not in STYLES:
        raise ValueError(f"unknown scribble style {style!r}; expected one of {STYLES}")
    if int(width) < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError("label values must lie in [0, 255] (uint8 output)")
    label = label.astype(np.uint8, copy=False)
    rng = np.random.default_rng(int(seed))
    out = _GENERATORS[style](label, rng, int(ignore_label), int(width))
    # Safety net: never label a pixel with anything but its dense class.
    out = np.where(out == label, out, np.uint8(ignore_label)).astype(np.uint8)
    out[label == ignore_label] = ignore_label
    return out


_GENERATORS = {"skeleton": _skeleton, "s4": _skeleton, "cdsp": _skeleton}
