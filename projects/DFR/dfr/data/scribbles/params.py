"""Typed parameters of the scribble styles, and the sizes that scale with the image.

Every style's parameters are a frozen dataclass derived from ``StyleParams``. Its pixel
constants are declared as lengths (``LENGTHS``: px) or areas (``AREAS``: px²) at the
reference size; ``params.scaled(s)`` multiplies lengths by s and areas by s². Shares of the
image, counts and probabilities do not scale.

``scale="auto"`` takes s from the image: s = sqrt(h * w / (REFERENCE_HEIGHT * REFERENCE_WIDTH))
with the reference 512 x 1024, chosen so that Scribbles4All's generic config scaled to a
2048 x 1024 Cityscapes image (s = 2) gives the maximum erosion of its Cityscapes config
(20 px -> 40 px; minimum area 80 -> 320 px², published 300; docs/scribble_faithfulness.md
lists every parameter). A VOC-size image (500 x 375) gets s = 0.60: no proportional rule can
give both s = 2 at 2048 x 1024 and s = 1 at 500 x 375, which is 2.7x smaller in height and
4.1x in width; ``scale=1.0`` keeps the published generic values at any size.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar, Tuple, Union

__all__ = ["REFERENCE_HEIGHT", "REFERENCE_WIDTH", "StyleParams", "auto_scale", "resolve_scale"]

REFERENCE_HEIGHT, REFERENCE_WIDTH = 512, 1024


def auto_scale(shape) -> float:
    """s of ``scale="auto"`` for a map of `shape` (h, w, ...)."""
    h, w = int(shape[0]), int(shape[1])
    return math.sqrt(h * w / (REFERENCE_HEIGHT * REFERENCE_WIDTH))


def resolve_scale(scale: Union[str, float], shape) -> float:
    """The factor s of `scale` ("auto" or a positive number) for a map of `shape`."""
    if isinstance(scale, str):
        if scale.strip().lower() == "auto":
            return auto_scale(shape)
        try:
            scale = float(scale)
        except ValueError:
            raise ValueError(f"scale must be 'auto' or a positive number, got {scale!r}") from None
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be 'auto' or a positive number, got {scale!r}")
    return float(scale)


@dataclass(frozen=True)
class StyleParams:
    """Base of the per-style parameter classes."""

    LENGTHS: ClassVar[Tuple[str, ...]] = ()  # fields in px
    AREAS: ClassVar[Tuple[str, ...]] = ()  # fields in px²
    STYLE: ClassVar[str] = ""

    def scaled(self, s: float) -> "StyleParams":
        """The parameters for an image s times the reference size (lengths x s, areas x s²)."""
        if s == 1:
            return self
        changes = {k: getattr(self, k) * s for k in self.LENGTHS}
        changes.update({k: getattr(self, k) * s * s for k in self.AREAS})
        return dataclasses.replace(self, **changes)

    def updated(self, **overrides) -> "StyleParams":
        """A copy with `overrides`; unknown names raise ValueError naming the known ones."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(
                f"unknown {self.STYLE} parameters {sorted(unknown)}; known: {sorted(known)}"
            )
        return dataclasses.replace(self, **overrides) if overrides else self
