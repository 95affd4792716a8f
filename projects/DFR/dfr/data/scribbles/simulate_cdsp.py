"""The ``cdsp`` style: the simulation of "Towards Robust Scribble-Supervised Semantic
Segmentation with Class-driven Scribble Promotion" (CDSP, AAAI 2024; public
``ScribbleSimulation``, which made ScribbleCOCO / ScribbleCityscapes).

Per region of at least ``min_area`` px, ``border`` px off the image border: its medial axis
(largest piece; skimage ``skeletonize``, deterministic and cheaper than ``medial_axis``), a
spanning tree of it, and a root-to-leaf path from the extreme end, chosen with probability
proportional to its length (``path="random"``, the released setting) or the longest one
(``path="longest"``), without its ends where the stroke does not fit (ours; the skeleton
is computed at a coarser resolution for thick regions, at full resolution where that path
fails); regions covering >= ``boundary_share`` of the image are drawn in the
"boundary" style with probability equal to that share (the outline eroded by
``boundary_jitter`` px, its vertices jittered radially by up to that much). The vertices
(Douglas-Peucker, ``rdp_epsilon`` px) are smoothed into a Bezier curve; where the curve would
leave the region it is split into Bezier pieces until each stays inside (the public generator
has no such check), finally the skeleton path. The public generator treats the
COCO/Cityscapes background apart; here every class is a class.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import (
    coarse_skeleton,
    iter_regions,
    largest_component,
    region_skeleton,
    skeleton_path,
    tree_path,
)
from .params import StyleParams
from .strokes import Pen, stroke_inside, stroke_mask

__all__ = ["CdspParams", "simulate_cdsp"]


@dataclass(frozen=True)
class CdspParams(StyleParams):
    """Defaults: the public generator's values (``max_control_points`` is ours)."""

    min_area: float = 6  # px²; the public generator skips masks of <= 5 px
    path: str = "random"  # "random" (length-weighted) or "longest"
    boundary_share: float = 0.1  # regions above this share of the image may get a boundary
    boundary_jitter: float = 20  # px: erosion kernel and radial jitter of the boundary style
    rdp_epsilon: float = 2.0  # px, Douglas-Peucker tolerance of the control points
    max_control_points: int = 64  # longer vertex lists are subsampled before smoothing
    border: float = 2  # px kept free along the image border

    LENGTHS = ("boundary_jitter", "rdp_epsilon", "border")
    AREAS = ("min_area",)
    STYLE = "cdsp"


def _bezier(ctrl: np.ndarray, n: int) -> np.ndarray:
    """n points of the Bezier curve with control points `ctrl` (de Casteljau)."""
    t = np.linspace(0.0, 1.0, max(int(n), 2))[:, None, None]
    pts = np.broadcast_to(ctrl[None], (len(t),) + ctrl.shape).copy()
    for k in range(len(ctrl) - 1, 0, -1):
        pts = (1 - t[:, :1]) * pts[:, :k] + t[:, :1] * pts[:, 1 : k + 1]
    return pts[:, 0]


def _rdp(path: np.ndarray, eps: float) -> np.ndarray:
    if len(path) < 3:
        return path.astype(np.float64)
    approx = cv2.approxPolyDP(path[:, ::-1].astype(np.int32).reshape(-1, 1, 2), eps, False)
    return approx.reshape(-1, 2)[:, ::-1].astype(np.float64)


def _smooth_inside(ctrl: np.ndarray, region: np.ndarray, pen: Pen, depth: int = 0):
    """Bezier pieces through `ctrl`: the whole curve, or split at the middle control point
    until each piece's stroke stays inside `region`. A list of (N, 2) curves, drawn one by
    one exactly as checked; None when a piece of two control points still leaves it."""
    span = np.ptp(ctrl, axis=0).sum()
    curve = _bezier(ctrl, span + 2)
    if stroke_inside(curve, region, pen):
        return [curve]
    if len(ctrl) <= 2 or depth > 8:
        return None
    mid = len(ctrl) // 2
    a = _smooth_inside(ctrl[: mid + 1], region, pen, depth + 1)
    b = _smooth_inside(ctrl[mid:], region, pen, depth + 1) if a is not None else None
    return None if b is None else a + b


def _cdsp_boundary(region: np.ndarray, rng, p: CdspParams):
    """Outline of the eroded region, vertices jittered along the ray from its centroid."""
    j = max(2, int(round(p.boundary_jitter)))
    eroded = cv2.erode(region.view(np.uint8), np.ones((j, j), np.uint8), borderValue=0)
    if not eroded.any():
        return None
    eroded = largest_component(eroded.astype(bool))
    contours, _ = cv2.findContours(
        eroded.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    contour = max(contours, key=len).reshape(-1, 2)[:, ::-1].astype(np.float64)
    if len(contour) < 3:
        return None
    ctrl = _rdp(contour, p.rdp_epsilon)
    centre = contour.mean(0)
    ang = np.arctan2(ctrl[:, 0] - centre[0], ctrl[:, 1] - centre[1])
    delta = rng.integers(-j + 1, j - 1, size=len(ctrl))
    return ctrl + delta[:, None] * np.stack([np.sin(ang), np.cos(ang)], 1)


def _fit_ends(path: np.ndarray, region: np.ndarray, width: int) -> np.ndarray:
    """`path` without its ends where a stroke of `width` px does not fit in `region` (a
    skeleton runs out to the boundary, at any image size): from its first to its last point
    at least width / 2 + 0.5 px inside; the whole path when none is."""
    dist = cv2.distanceTransform(np.pad(region, 1).view(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    yx = np.clip(np.round(path).astype(int), 0, np.array(region.shape) - 1)
    ok = np.flatnonzero(dist[yx[:, 0], yx[:, 1]] >= width / 2.0 + 0.5)
    return path[ok[0] : ok[-1] + 1] if len(ok) else path


def _cap(ctrl: np.ndarray, p: CdspParams) -> np.ndarray:
    """At most max_control_points control points, evenly subsampled (ends kept)."""
    m = int(p.max_control_points)
    if len(ctrl) <= m:
        return ctrl
    return ctrl[np.round(np.linspace(0, len(ctrl) - 1, m)).astype(int)]


def simulate_cdsp(label, rng, ignore_label: int, width: int, p: CdspParams, s: float = 1.0):
    """cdsp scribbles of the dense map `label` (module docstring), `p` at the reference size
    and lengths / areas scaled by `s`."""
    out = np.full(label.shape, ignore_label, np.uint8)
    total = label.size
    h, w = label.shape
    p = p.scaled(s)
    pen = Pen("raster", int(width))
    border = int(round(p.border))
    for c, sl, region, area in iter_regions(label, ignore_label, int(width) + 1):
        if area < p.min_area:
            continue
        # The public generator keeps scribbles 2 px off the image border.
        mask = region.copy()
        y0, x0 = sl[0].start, sl[1].start
        mask[: max(border - y0, 0)] = False
        mask[:, : max(border - x0, 0)] = False
        mask[max(h - border - y0, 0) :] = False
        mask[:, max(w - border - x0, 0) :] = False
        if not mask.any():
            mask = region
        skel, k = coarse_skeleton(mask)
        if skel.sum() <= 2 and k == 1:
            path = skeleton_path(mask)
            out[sl][stroke_mask(region.shape, path, pen) & region] = c
            continue
        skel = largest_component(skel) if skel.any() else skel
        curve = None
        share = area / total
        if share >= p.boundary_share and rng.random() < share:
            ctrl = _cdsp_boundary(mask, rng, p)
            curve = None if ctrl is None else _smooth_inside(_cap(ctrl, p), region, pen)
        for level in (k, 1) if k > 1 else (1,):  # coarse first; full resolution if it fails
            if curve is not None:
                break
            if level == 1 and k > 1:
                skel = largest_component(region_skeleton(mask))
            if skel.any():
                path = tree_path(skel, rng, p.path) * level + (level - 1) / 2
                path = _fit_ends(path, region, width)
                curve = _smooth_inside(_cap(_rdp(path, p.rdp_epsilon), p), region, pen)
        if curve is None:  # the full-resolution skeleton path, clipped to the region
            stroke = stroke_mask(region.shape, skeleton_path(mask), pen) & region
        else:
            stroke = np.logical_or.reduce([stroke_mask(region.shape, q, pen) for q in curve])
        out[sl][stroke] = c
    return out
