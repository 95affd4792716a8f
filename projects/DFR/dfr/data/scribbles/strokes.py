"""Strokes of the simulated scribbles: a polyline drawn with a pen, checked against a region.

Two pens (``Pen.kind``):

- ``"raster"``: ScribbleSup's standard conversion (``rasterize``): the pixels whose centre
  lies within ``size / 2`` of a segment; ``size`` 1: 8-connected 1-px lines. Sub-pixel
  coordinates are kept.
- ``"polylines"``: the Scribbles4All generator's drawing, ``cv2.polylines`` of the points
  truncated to integers with ``thickness = size`` (thickness 3 covers about 5 px across).

A stroke is checked exactly as it is drawn (``stroke_inside``), so a generator that draws only
checked strokes never labels a pixel outside its region.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from .rasterize import draw_segments

__all__ = ["Pen", "stroke_inside", "stroke_mask", "trim_polyline"]

PEN_KINDS = ("raster", "polylines")


@dataclass(frozen=True)
class Pen:
    kind: str = "raster"
    size: int = 3  # px: the line width ("raster") or cv2's thickness ("polylines")

    def __post_init__(self):
        if self.kind not in PEN_KINDS:
            raise ValueError(f"unknown drawing {self.kind!r}; expected one of {PEN_KINDS}")
        if int(self.size) < 1:
            raise ValueError(f"stroke size must be >= 1 px, got {self.size}")

    @property
    def reach(self) -> float:
        """px beyond the points that a drawn pixel can lie."""
        return self.size / 2.0 + 2 if self.kind == "raster" else self.size + 2.0


def _window(shape, pts_yx: np.ndarray, pen: Pen, clip: bool):
    """(y0, x0, y1, x1) of a window around the points, clipped to `shape` when `clip`."""
    r = pen.reach
    y0 = int(np.floor(pts_yx[:, 0].min() - r))
    x0 = int(np.floor(pts_yx[:, 1].min() - r))
    y1 = int(np.ceil(pts_yx[:, 0].max() + r) + 1)
    x1 = int(np.ceil(pts_yx[:, 1].max() + r) + 1)
    if clip:
        y0, x0 = int(np.clip(y0, 0, shape[0])), int(np.clip(x0, 0, shape[1]))
        y1, x1 = int(np.clip(y1, y0, shape[0])), int(np.clip(x1, x0, shape[1]))
    return y0, x0, y1, x1


def _draw_raster(canvas: np.ndarray, xy: np.ndarray, width: int):
    if width == 1:
        pts = np.round(xy).astype(np.int32)
        cv2.polylines(canvas, [pts], False, 1, thickness=1, lineType=cv2.LINE_8)
        h, w = canvas.shape
        canvas[int(np.clip(pts[0, 1], 0, h - 1)), int(np.clip(pts[0, 0], 0, w - 1))] = 1
        return
    if len(xy) > 2:  # the same pixels within 0.2 px: fewer segments to draw
        simple = cv2.approxPolyDP(xy.astype(np.float32).reshape(-1, 1, 2), 0.2, False)
        xy = simple.reshape(-1, 2).astype(np.float64)
    if len(xy) > 1:
        keep = np.ones(len(xy), bool)
        keep[1:] = np.any(np.abs(np.diff(xy, axis=0)) > 1e-9, axis=1)
        xy = xy[keep]
    nxt = xy[1:] if len(xy) > 1 else xy
    draw_segments(canvas, xy[: len(nxt)], nxt, 1, width / 2.0)


def stroke_window(shape, pts_yx: np.ndarray, pen: Pen, clip: bool = True):
    """The polyline through (N, 2) float (y, x) points drawn with `pen`, in a window around
    it: (y0, x0, bool map). `clip`: the window lies within `shape` (pixels beyond are not
    drawn); else it may reach past it (for checks)."""
    y0, x0, y1, x1 = _window(shape, pts_yx, pen, clip)
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    if canvas.size == 0:
        return y0, x0, canvas.astype(bool)
    if pen.kind == "raster":
        _draw_raster(canvas, pts_yx[:, ::-1] - np.array([x0, y0], np.float64), int(pen.size))
    else:  # the published generator: integer points (truncated), cv2's thick polyline
        pts = pts_yx[:, ::-1].astype(np.int32) - np.array([x0, y0], np.int32)
        cv2.polylines(canvas, [pts], False, 1, thickness=int(pen.size))
    return y0, x0, canvas.astype(bool)


def stroke_mask(shape, pts_yx: np.ndarray, pen: Pen) -> np.ndarray:
    """Bool map of `shape` with the drawn polyline."""
    y0, x0, sub = stroke_window(shape, pts_yx, pen)
    out = np.zeros(shape, bool)
    out[y0 : y0 + sub.shape[0], x0 : x0 + sub.shape[1]] = sub
    return out


def stroke_inside(pts_yx: np.ndarray, mask: np.ndarray, pen: Pen) -> bool:
    """Whether the polyline drawn with `pen` stays inside `mask` (and inside its map)."""
    h, w = mask.shape
    if pen.kind == "raster":
        r = (pen.size - 1) / 2.0
        if (
            pts_yx[:, 0].min() - r < -0.5
            or pts_yx[:, 1].min() - r < -0.5
            or pts_yx[:, 0].max() + r > h - 0.5
            or pts_yx[:, 1].max() + r > w - 0.5
        ):
            return False
        y0, x0, sub = stroke_window(mask.shape, pts_yx, pen)
        return not (sub & ~mask[y0 : y0 + sub.shape[0], x0 : x0 + sub.shape[1]]).any()
    y0, x0, sub = stroke_window(mask.shape, pts_yx, pen, clip=False)
    ys, xs = np.nonzero(sub)
    ys, xs = ys + y0, xs + x0
    if ys.min() < 0 or xs.min() < 0 or ys.max() >= h or xs.max() >= w:
        return False
    return bool(mask[ys, xs].all())


def trim_polyline(pts: np.ndarray, keep: float, by: str = "length") -> np.ndarray:
    """The middle `keep` share of a polyline: by arc length (``by="length"``) or, as the
    published s4 generator, by sample index (``by="index"``: drop int(n (1 - keep) / 2)
    samples at each end)."""
    if keep >= 1 or len(pts) < 2:
        return pts
    if by == "index":
        start = int(len(pts) * (1 - keep) / 2)
        return pts[start : len(pts) - start]
    seg = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    lo, hi = s[-1] * (1 - keep) / 2, s[-1] * (1 + keep) / 2
    t = np.concatenate([[lo], s[(s > lo) & (s < hi)], [hi]])
    return np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], 1)
