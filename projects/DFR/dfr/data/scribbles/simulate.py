"""Scribbles simulated from dense label maps, in the published styles.

``simulate_scribbles(label, style=..., seed=...)`` turns any dense label map into a scribble
label map (same shape, uint8, ``ignore_label`` where unlabeled). Guarantees, for every style:
every labeled output pixel equals the dense label there (no scribble crosses into another
class), dense ``ignore_label`` pixels are never labeled, and the output depends only on
(label, style, seed, ignore_label, width, scale, parameters).

Styles (each works per 8-connected component of each class, "a region"):

- ``"s4"``, ``"s4_cityscapes"``: Scribbles4All with its published generic and Cityscapes
  configs (``simulate_s4``; ``S4_PRESETS``);
- ``"cdsp"``: CDSP, AAAI 2024 (``simulate_cdsp``);
- ``"skeleton"``: the generator of the embedded synthetic set (``tools.skeleton_scribbles``:
  region skeletons shortened together to ~3 % of the pixels).

Parameters: one frozen dataclass per style (``S4Params``, ``CdspParams``, ``SkeletonParams``;
``DEFAULT_PARAMS[style]``); ``params=`` replaces them, keywords override single fields.
``width`` is the stroke width in px of the ``"raster"`` drawing (ScribbleSup's conversion).

Sizes (``scale``): every pixel constant of a style is a length or an area at the reference
size (``params.py``); ``scale=s`` multiplies lengths by s and areas by s², ``scale="auto"``
takes s from the image's size (2 at 2048 x 1024), ``scale=1.0`` (default) keeps them. The
caller's ``width`` is not scaled (the label format's line width).

Determinism: ``seed`` seeds one numpy Generator per call. A dataset is simulated with one
seed per image, ``image_seed(dataset_seed, image_id)``, so that the result depends neither on
processing order nor on the other images. ``GENERATOR_VERSION[style]`` changes whenever the
pixels a style produces change, so cached simulations can be invalidated.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ..classes import IGNORE_LABEL
from .geometry import image_seed
from .params import StyleParams, resolve_scale
from .simulate_cdsp import CdspParams, simulate_cdsp
from .simulate_s4 import S4_PRESETS, S4Params, simulate_s4
from .tools import skeleton_scribbles

__all__ = [
    "DEFAULT_PARAMS",
    "GENERATOR_VERSION",
    "STYLES",
    "CdspParams",
    "S4Params",
    "S4_PRESETS",
    "SkeletonParams",
    "image_seed",
    "simulate_scribbles",
    "style_params",
]

STYLES: Tuple[str, ...] = ("s4", "s4_cityscapes", "cdsp", "skeleton")

GENERATOR_VERSION: Dict[str, str] = {"s4": "5", "s4_cityscapes": "2", "cdsp": "6", "skeleton": "2"}


@dataclass(frozen=True)
class SkeletonParams(StyleParams):
    target_fraction: Optional[float] = 0.03  # share of the image labeled (None: full skeletons)
    min_area: float = 50  # px²: smaller regions get no scribble
    min_length: float = 6  # px: shorter skeleton branches are not drawn

    LENGTHS = ("min_length",)
    AREAS = ("min_area",)
    STYLE = "skeleton"


DEFAULT_PARAMS: Dict[str, StyleParams] = {
    "s4": S4_PRESETS["s4"],
    "s4_cityscapes": S4_PRESETS["s4_cityscapes"],
    "cdsp": CdspParams(),
    "skeleton": SkeletonParams(),
}


def _skeleton(label, rng, ignore_label, width, p: SkeletonParams, s: float = 1.0):
    p = p.scaled(s)
    return skeleton_scribbles(label, rng, width=width, ignore_label=ignore_label,
                              target_fraction=p.target_fraction, min_area=p.min_area,
                              min_length=p.min_length)  # fmt: skip


_GENERATORS = {"s4": simulate_s4, "s4_cityscapes": simulate_s4, "cdsp": simulate_cdsp,
               "skeleton": _skeleton}  # fmt: skip


def style_params(style: str, params: Optional[StyleParams] = None, **overrides) -> StyleParams:
    """The parameters of `style`: `params` (default DEFAULT_PARAMS[style]) with `overrides`."""
    if style not in STYLES:
        raise ValueError(f"unknown scribble style {style!r}; expected one of {STYLES}")
    base = DEFAULT_PARAMS[style]
    if params is None:
        params = base
    elif type(params) is not type(base):
        raise TypeError(f"{style} takes {type(base).__name__}, got {type(params).__name__}")
    return params.updated(**overrides)


def simulate_scribbles(
    label: np.ndarray,
    *,
    style: str = "s4",
    seed: int = 0,
    ignore_label: int = IGNORE_LABEL,
    width: int = 3,
    scale: Union[str, float] = 1.0,
    params: Optional[StyleParams] = None,
    **overrides,
) -> np.ndarray:
    """Scribble label map (uint8, same shape, `ignore_label` where unlabeled) simulated from
    the dense map `label` in `style` (one of STYLES), deterministic in `seed`. `params`: the
    style's parameter dataclass (default DEFAULT_PARAMS[style]); keyword `overrides` replace
    single fields. `scale`: "auto" or s (lengths x s, areas x s²)."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be a 2-D map, got shape {label.shape}")
    p = style_params(style, params, **overrides)
    if int(width) < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError("label values must lie in [0, 255] (uint8 output)")
    s = resolve_scale(scale, label.shape)
    label = np.ascontiguousarray(label, dtype=np.uint8)
    rng = np.random.default_rng(int(seed))
    return _GENERATORS[style](label, rng, int(ignore_label), int(width), p, s)
