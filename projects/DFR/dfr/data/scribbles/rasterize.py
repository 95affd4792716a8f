"""Polylines -> label maps: the standard ScribbleSup conversion (package docstring)."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from ..classes import IGNORE_LABEL
from .formats import Scribble, ScribbleSet

__all__ = ["draw_segments", "labeled_fraction", "rasterize"]


def draw_segments(canvas, p, q, value, radius, window: int = 24):
    """Set to `value` the pixels whose centre is within `radius` of any segment p[i]q[i]
    ((S, 2) arrays of (x, y); p == q draws a dot), clipped to the canvas. Segments whose
    clipped box fits `window` are done together in (S, ky, kx) grids, longer ones alone."""
    h, w = canvas.shape
    p = np.asarray(p, np.float64).reshape(-1, 2)
    q = np.asarray(q, np.float64).reshape(-1, 2)
    lo = np.maximum(np.floor(np.minimum(p, q) - radius).astype(np.int64), 0)
    hi = np.minimum(np.ceil(np.maximum(p, q) + radius).astype(np.int64), [w - 1, h - 1])
    ext = hi - lo + 1
    inside = (ext > 0).all(1)
    short = inside & (ext <= window).all(1)
    groups = [np.flatnonzero(short)] + [[i] for i in np.flatnonzero(inside & ~short)]
    for idx in groups:
        if len(idx) == 0:
            continue
        kx, ky = (int(v) for v in ext[idx].max(0))
        xs = (lo[idx, 0, None] + np.arange(kx))[:, None, :]  # (S, 1, kx)
        ys = (lo[idx, 1, None] + np.arange(ky))[:, :, None]  # (S, ky, 1)
        d = q[idx] - p[idx]
        px, py, dx, dy = (v[:, None, None] for v in (p[idx, 0], p[idx, 1], d[:, 0], d[:, 1]))
        L2 = np.maximum((d * d).sum(1), 1e-12)[:, None, None]
        t = np.clip(((xs - px) * dx + (ys - py) * dy) / L2, 0.0, 1.0)
        dist2 = (xs - px - t * dx) ** 2 + (ys - py - t * dy) ** 2
        m = (dist2 <= radius * radius + 1e-9) & (xs < w) & (ys < h)
        canvas[np.broadcast_to(ys, m.shape)[m], np.broadcast_to(xs, m.shape)[m]] = value


_draw_segments = draw_segments  # its former private name (tests/data/test_scribble_io.py)


def _bresenham(canvas, p, q, value):
    from skimage.draw import line

    h, w = canvas.shape
    r, c = line(int(round(p[1])), int(round(p[0])), int(round(q[1])), int(round(q[0])))
    k = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    canvas[r[k], c[k]] = value


def rasterize(
    scribbles: Union[ScribbleSet, Sequence[Scribble]],
    height: int,
    width: int,
    line_width: float = 3,
    point_radius: Optional[float] = 1.0,
    clamp: bool = True,
    fill: int = IGNORE_LABEL,
    canvas: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Draw polylines in order onto a (height, width) uint8 canvas filled with ``fill``.

    ``line_width`` > 1: pixels whose centre is within ``line_width/2`` of a segment;
    ``line_width`` == 1: Bresenham lines. ``clamp``: clamp points to the image first (the
    standard conversion); ``clamp=False`` clips instead (needed after a crop). Degenerate
    polylines (all points equal) become dots of ``point_radius`` (None: nothing drawn).
    """
    if canvas is None:
        canvas = np.full((int(height), int(width)), fill, dtype=np.uint8)
    if line_width <= 0:
        raise ValueError(f"line_width must be positive, got {line_width}")
    for s in scribbles:
        pts = np.asarray(s.points, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            continue
        if clamp:
            pts = np.stack([np.clip(pts[:, 0], 0, width - 1), np.clip(pts[:, 1], 0, height - 1)], 1)
        if np.all(pts == pts[:1]):
            if point_radius is not None:
                draw_segments(canvas, pts[:1], pts[:1], s.class_id, float(point_radius))
            continue
        keep = np.ones(len(pts), bool)
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)  # repeated points add nothing
        pts = pts[keep]
        if line_width == 1:
            for p, q in zip(pts[:-1], pts[1:]):
                _bresenham(canvas, p, q, s.class_id)
        else:
            draw_segments(canvas, pts[:-1], pts[1:], s.class_id, line_width / 2.0)
    return canvas


def labeled_fraction(label: np.ndarray, ignore: int = IGNORE_LABEL) -> float:
    return float((np.asarray(label) != ignore).mean())
