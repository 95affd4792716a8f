"""Scribbles simulated from dense label maps, in the published styles.

``simulate_scribbles(label, style=..., seed=...)`` turns any dense label map into a scribble
label map (same shape, uint8, ``ignore_label`` where unlabeled). Guarantees, for every style:
every labeled output pixel equals the dense label there (no scribble crosses into another
class), dense ``ignore_label`` pixels are never labeled, and the output depends only on
(label, style, seed, ignore_label, width, parameters).

Styles (each works per 8-connected component of each class, "a region"):

- ``"s4"``: Scribbles4All ("Scribbles for All: Benchmarking Scribble Supervised Segmentation
  Across Datasets", NeurIPS 2024 Datasets & Benchmarks; public ``s4ScribbleGenerator``).
  Regions of at least ``min_area`` px are eroded by 2..20 px, growing linearly with the
  region's share of the image (0.3 %..15 %); every eroded piece of at least ``min_area`` px
  gets one curve: a quadratic fitted through two far-apart edge points of the piece, its
  jittered centre of mass and two jittered intermediate points, the jittered points snapped
  to the piece's skeleton. A curve whose drawn stroke leaves the region is redrawn (up to
  ``patience`` times, then the piece is eroded 2 px more and the largest remainder tried
  again). The curve keeps its middle ``trim`` (0.95; the public generic config keeps 0.9,
  its Cityscapes config 0.95) and is drawn ``width`` px wide like ScribbleSup's conversion
  (the public generator's ``cv2.polylines(thickness=3)`` covers 5 px across).
  Where the public generator drops a region that erosion leaves without a piece of
  ``min_area`` px, we try the same curves in the uneroded region, then draw its longest
  skeleton path clipped to it (``fallback``), so every region of ``min_area`` px is hit.
  The public generator's checks are 1-px samples of the curve; ours is the drawn stroke.
- ``"cdsp"``: the simulation of "Towards Robust Scribble-Supervised Semantic Segmentation
  with Class-driven Scribble Promotion" (CDSP, AAAI 2024; public ``ScribbleSimulation``,
  which made ScribbleCOCO / ScribbleCityscapes). Per region, 2 px off the image border: its
  medial axis (largest piece; skimage ``skeletonize``, deterministic and cheaper than
  ``medial_axis``), a spanning tree of it, and a root-to-leaf path from the extreme end,
  chosen with probability proportional to its length (``path="random"``, the released
  setting) or the longest one (``path="longest"``); regions covering >= 10 % of the image are drawn in the
  "boundary" style with probability equal to that share (the eroded outline, its vertices
  jittered radially by up to 20 px). The vertices (Douglas-Peucker, 2 px) are smoothed into a
  Bezier curve; where the curve would leave the region it is split into Bezier pieces until
  each stays inside (the public generator has no such check), finally the skeleton path.
  The public generator treats the COCO/Cityscapes background apart; here every class is a
  class.
- ``"skeleton"``: the generator of the embedded synthetic set
  (``tools.skeleton_scribbles``: region skeletons shortened together to ~3 % of the pixels).

Parameters of ``s4`` / ``cdsp`` are the ``S4_DEFAULTS`` / ``CDSP_DEFAULTS`` below (the public
generators' values, except s4's ``trim``, taken from its Cityscapes config, and cdsp's
``max_control_points``, ours); override them by keyword.

Determinism: ``seed`` seeds one numpy Generator per call. A dataset is simulated with one
seed per image, ``image_seed(dataset_seed, image_id)``, so that the result depends neither on
processing order nor on the other images. ``GENERATOR_VERSION[style]`` changes whenever the
pixels a style produces change, so cached simulations can be invalidated.
"""

import zlib
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from skimage.morphology import skeletonize

from ..classes import IGNORE_LABEL
from .rasterize import _draw_segments
from .tools import skeleton_scribbles

__all__ = [
    "CDSP_DEFAULTS",
    "GENERATOR_VERSION",
    "S4_DEFAULTS",
    "STYLES",
    "image_seed",
    "simulate_scribbles",
]

STYLES: Tuple[str, ...] = ("s4", "cdsp", "skeleton")

GENERATOR_VERSION: Dict[str, str] = {"s4": "3", "cdsp": "4", "skeleton": "1"}

S4_DEFAULTS: Dict[str, object] = {
    "min_area": 80,  # px; smaller regions (and eroded pieces) get no scribble
    "min_erosion": 2,  # px of erosion for regions below min_share of the image
    "max_erosion": 20,  # px of erosion for regions above max_share
    "min_share": 0.003,
    "max_share": 0.15,
    "patience": 20,  # curves tried before eroding further
    "extra_erosion": 2,  # px per further erosion round
    "trim": 0.95,  # share of the curve kept, centred (public: 0.9 generic, 0.95 Cityscapes)
    "edge_samples": 25,  # edge points sampled for the far-apart pair
    "fallback": True,  # regions that erosion empties still get a scribble
}

CDSP_DEFAULTS: Dict[str, object] = {
    "min_area": 6,  # px; the public generator skips masks of <= 5 px
    "path": "random",  # "random" (length-weighted) or "longest"
    "boundary_share": 0.1,  # regions above this share of the image may get a boundary
    "boundary_jitter": 20,  # px: erosion kernel and radial jitter of the boundary style
    "rdp_epsilon": 2.0,  # px, Douglas-Peucker tolerance of the control points
    "max_control_points": 64,  # longer vertex lists are subsampled before smoothing
}

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def image_seed(seed: int, image_id: str) -> int:
    """The per-image seed of a dataset simulated with `seed`: order-independent."""
    return (int(seed) * 1_000_003 + zlib.crc32(str(image_id).encode())) % (2**63)


def _regions(label: np.ndarray, ignore_label: int, pad: int):
    """Yield (class, padded crop slices, bool mask crop, area) per 8-connected region."""
    h, w = label.shape
    for c in np.unique(label):
        if c == ignore_label:
            continue
        n, comp, stats, _ = cv2.connectedComponentsWithStats(
            (label == c).view(np.uint8), connectivity=8
        )
        for i in range(1, n):
            x, y, bw, bh, area = stats[i]
            y0, y1 = max(y - pad, 0), min(y + bh + pad, h)
            x0, x1 = max(x - pad, 0), min(x + bw + pad, w)
            yield int(c), (slice(y0, y1), slice(x0, x1)), comp[y0:y1, x0:x1] == i, int(area)


def _stroke_window(shape, pts_yx: np.ndarray, width: int):
    """The polyline through (N, 2) float (y, x) points drawn as ScribbleSup's standard
    conversion does (``rasterize``: pixel centres within width / 2 of a segment; width 1:
    8-connected 1-px lines), in the window of `shape` around it: (y0, x0, bool map)."""
    r = width / 2.0 + 2
    y0 = int(np.clip(np.floor(pts_yx[:, 0].min() - r), 0, shape[0]))
    x0 = int(np.clip(np.floor(pts_yx[:, 1].min() - r), 0, shape[1]))
    y1 = int(np.clip(np.ceil(pts_yx[:, 0].max() + r) + 1, y0, shape[0]))
    x1 = int(np.clip(np.ceil(pts_yx[:, 1].max() + r) + 1, x0, shape[1]))
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    if canvas.size == 0:
        return y0, x0, canvas.astype(bool)
    xy = pts_yx[:, ::-1] - np.array([x0, y0], np.float64)
    if width == 1:
        pts = np.round(xy).astype(np.int32)
        cv2.polylines(canvas, [pts], False, 1, thickness=1, lineType=cv2.LINE_8)
        h, w = canvas.shape
        canvas[int(np.clip(pts[0, 1], 0, h - 1)), int(np.clip(pts[0, 0], 0, w - 1))] = 1
        return y0, x0, canvas.astype(bool)
    if len(xy) > 2:  # the same pixels within 0.2 px: fewer segments to draw
        simple = cv2.approxPolyDP(xy.astype(np.float32).reshape(-1, 1, 2), 0.2, False)
        xy = simple.reshape(-1, 2).astype(np.float64)
    if len(xy) > 1:
        keep = np.ones(len(xy), bool)
        keep[1:] = np.any(np.abs(np.diff(xy, axis=0)) > 1e-9, axis=1)
        xy = xy[keep]
    nxt = xy[1:] if len(xy) > 1 else xy
    _draw_segments(canvas, xy[: len(nxt)], nxt, 1, width / 2.0)
    return y0, x0, canvas.astype(bool)


def _stroke(shape, pts_yx: np.ndarray, width: int) -> np.ndarray:
    """Bool map of `shape` with the drawn polyline (``_stroke_window``)."""
    y0, x0, sub = _stroke_window(shape, pts_yx, width)
    out = np.zeros(shape, bool)
    out[y0 : y0 + sub.shape[0], x0 : x0 + sub.shape[1]] = sub
    return out


def _inside(pts_yx: np.ndarray, mask: np.ndarray, width: int) -> bool:
    """Whether the drawn polyline stays inside `mask` (and inside the crop)."""
    h, w = mask.shape
    r = (width - 1) / 2.0
    if (
        pts_yx[:, 0].min() - r < -0.5
        or pts_yx[:, 1].min() - r < -0.5
        or pts_yx[:, 0].max() + r > h - 0.5
        or pts_yx[:, 1].max() + r > w - 0.5
    ):
        return False
    y0, x0, sub = _stroke_window(mask.shape, pts_yx, width)
    return not (sub & ~mask[y0 : y0 + sub.shape[0], x0 : x0 + sub.shape[1]]).any()


def _largest(mask: np.ndarray) -> np.ndarray:
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    return comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _skeleton_path(mask: np.ndarray) -> np.ndarray:
    """(N, 2) (y, x) longest root-to-leaf path of the skeleton of `mask` (largest piece)."""
    skel = skeletonize(mask)
    if not skel.any():
        ys, xs = np.nonzero(mask)
        i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
        return np.array([[ys[i], xs[i]]], np.float64)
    return _tree_path(_largest(skel), None, "longest")


def _coarse_skeleton(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """Skeleton of `mask` computed at 1/k resolution (k grows with the region's thickness, so
    thinning stays cheap for large regions): (bool skeleton of the reduced mask, k). Its
    pixel (y, x) stands for the full-resolution point (k * y + (k - 1) / 2, ...)."""
    thick = cv2.distanceTransform(np.pad(mask, 1).view(np.uint8), cv2.DIST_L2, 3).max()
    k = max(1, int(thick // 6))
    if k == 1:
        return skeletonize(mask), 1
    h, w = mask.shape
    small = cv2.resize(
        mask.view(np.uint8), (max(w // k, 1), max(h // k, 1)), interpolation=cv2.INTER_AREA
    )
    return skeletonize(small > 0), k


def _trim(pts: np.ndarray, keep: float) -> np.ndarray:
    """The middle `keep` share of a polyline, by arc length."""
    if keep >= 1 or len(pts) < 2:
        return pts
    seg = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    lo, hi = s[-1] * (1 - keep) / 2, s[-1] * (1 + keep) / 2
    t = np.concatenate([[lo], s[(s > lo) & (s < hi)], [hi]])
    return np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], 1)


# ----------------------------------------------------------------------------- s4


def _s4_erosion(share: float, p) -> int:
    lo, hi = p["min_share"], p["max_share"]
    if share < lo:
        return int(p["min_erosion"])
    if share > hi:
        return int(p["max_erosion"])
    span = p["max_erosion"] - p["min_erosion"]
    return int(p["min_erosion"] + int((share - lo) / (hi - lo) * span))


def _snap(point, skel_pts: np.ndarray, rng) -> np.ndarray:
    """The closest of 10 random skeleton points to `point` (s4's get_valid_com)."""
    cand = skel_pts[rng.integers(0, len(skel_pts), 10)]
    return cand[np.argmin(((cand - point) ** 2).sum(1))].astype(np.float64)


_UNIT = {100: np.linspace(0.0, 1.0, 100)}


def _quadratic(points: np.ndarray, axis: int, n: int = 100) -> Optional[np.ndarray]:
    """n samples of the least-squares quadratic through (y, x) `points`, parametrised by
    coordinate `axis` over the points' range."""
    t, v = points[:, axis], points[:, 1 - axis]
    if t.max() - t.min() < 1:
        return None
    t0 = t.mean()
    vander = np.stack([(t - t0) ** 2, t - t0, np.ones_like(t)], 1)
    try:  # normal equations: 3 x 3, much cheaper than an SVD per attempt
        coef = np.linalg.solve(vander.T @ vander, vander.T @ v)
    except np.linalg.LinAlgError:
        coef = np.linalg.lstsq(vander, v, rcond=None)[0]
    ts = t.min() + (t.max() - t.min()) * _UNIT[n]
    out = np.empty((n, 2))
    out[:, axis] = ts
    out[:, 1 - axis] = (coef[0] * (ts - t0) + coef[1]) * (ts - t0) + coef[2]
    return out


def _s4_curve(blob, edge_pts, skel_pts, com, rng, p) -> Optional[np.ndarray]:
    """One s4 curve attempt inside `blob`: (N, 2) (y, x) or None."""
    sigma = np.sqrt(blob.sum()) / 20.0
    c = com + sigma * rng.standard_normal(2)
    yi, xi = int(c[0]), int(c[1])
    if not (0 <= yi < blob.shape[0] and 0 <= xi < blob.shape[1] and blob[yi, xi]):
        c = _snap(com, skel_pts, rng)
    sample = edge_pts[rng.integers(0, len(edge_pts), int(p["edge_samples"]))].astype(np.float64)
    first = sample[rng.integers(0, len(sample))]
    far = sample[np.argmax(((sample - first) ** 2).sum(1))]
    far2 = sample[np.argmax(((sample - far) ** 2).sum(1))]
    ends = np.stack([far2, far])
    # Parametrise by rows when the centre lies between the ends' rows (s4's check_axis).
    axis = 0 if (ends[:, 0].min() < c[0] < ends[:, 0].max()) else 1
    base = _quadratic(np.vstack([c, ends]), axis)
    if base is None:
        base = _quadratic(np.vstack([c, ends]), 1 - axis)
        axis = 1 - axis
        if base is None:
            return None
    extra = []
    for _ in range(2):
        q = base[rng.integers(20, 80)] + sigma * rng.standard_normal(2)
        extra.append(_snap(q, skel_pts, rng))
    curve = _quadratic(np.vstack([c, ends, extra]), axis)
    return curve


def _s4(label, rng, ignore_label, width, p):
    out = np.full(label.shape, ignore_label, np.uint8)
    total = label.size
    pad = int(width) + 1
    for c, sl, region, area in _regions(label, ignore_label, pad):
        if area < p["min_area"]:
            continue
        erosion = _s4_erosion(area / total, p)
        # L1 distance to the outside (image border counts as outside): erosion with the
        # cross element by e px keeps the pixels with distance > e.
        dist = cv2.distanceTransform(
            np.pad(region, 1).view(np.uint8), cv2.DIST_L1, 3
        )[1:-1, 1:-1]
        eroded = dist > erosion
        n, comp, stats, _ = cv2.connectedComponentsWithStats(eroded.view(np.uint8), connectivity=8)
        drawn = False
        for i in range(1, n):
            if stats[i, cv2.CC_STAT_AREA] < p["min_area"]:
                continue
            blob0 = comp == i
            curve = _s4_blob(blob0, dist, erosion, region, rng, width, p)
            if curve is not None:
                out[sl][_stroke(region.shape, curve, width)] = c
                drawn = True
        if not drawn and p["fallback"]:
            # Erosion left no piece of min_area: curves in the uneroded region, else its
            # skeleton path clipped to it.
            curve = _s4_blob(region, dist, 0, region, rng, width, p)
            if curve is not None:
                stroke = _stroke(region.shape, curve, width)
            else:
                path = _trim(_skeleton_path(region), p["trim"])
                stroke = _stroke(region.shape, path, width) & region
            out[sl][stroke] = c
    return out


def _s4_blob(blob0, dist, erosion, region, rng, width, p):
    """Trimmed curve for one eroded piece, retried and eroded further until it stays
    inside; None when the piece erodes away."""
    blob, level = blob0, erosion
    while True:
        edge = blob & ~cv2.erode(blob.view(np.uint8), _CROSS, borderValue=0).astype(bool)
        edge_pts = np.argwhere(edge)
        skel, k = _coarse_skeleton(blob)
        skel_pts = np.argwhere(skel) * k + (k - 1) // 2
        skel_pts = skel_pts[blob[skel_pts[:, 0], skel_pts[:, 1]]] if len(skel_pts) else skel_pts
        if len(skel_pts) == 0:
            skel_pts = np.argwhere(skeletonize(blob))
        if len(edge_pts) == 0 or len(skel_pts) == 0:
            return None
        com = np.argwhere(blob).mean(0)
        for _ in range(int(p["patience"])):
            curve = _s4_curve(blob, edge_pts, skel_pts, com, rng, p)
            if curve is None:
                continue
            # Boundary check: the centre line inside the eroded piece, the drawn (trimmed)
            # stroke inside the region, so that it never crosses into another class.
            if not _inside(curve, blob0, 1):
                continue
            drawn = _trim(curve, p["trim"])
            if _inside(drawn, region, width):
                return drawn
        level += int(p["extra_erosion"])
        blob = blob0 & (dist > level)
        if not blob.any():
            return None
        blob = _largest(blob)


# --------------------------------------------------------------------------- cdsp


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


def _smooth_inside(ctrl: np.ndarray, region: np.ndarray, width: int, depth: int = 0):
    """Bezier pieces through `ctrl`: the whole curve, or split at the middle control point
    until each piece's stroke stays inside `region`. A list of (N, 2) curves, drawn one by
    one exactly as checked; None when a piece of two control points still leaves it."""
    span = np.ptp(ctrl, axis=0).sum()
    curve = _bezier(ctrl, span + 2)
    if _inside(curve, region, width):
        return [curve]
    if len(ctrl) <= 2 or depth > 8:
        return None
    mid = len(ctrl) // 2
    a = _smooth_inside(ctrl[: mid + 1], region, width, depth + 1)
    b = _smooth_inside(ctrl[mid:], region, width, depth + 1) if a is not None else None
    return None if b is None else a + b


def _tree_path(skel: np.ndarray, rng, mode: str) -> np.ndarray:
    """A root-to-leaf path of the shortest-path spanning tree of the skeleton pixels
    (8-neighbour graph; the public generator takes a minimum spanning tree of the
    simplified skeleton graph: both break cycles), rooted at the skeleton's extreme end
    along its longer side; the leaf the farthest ("longest") or drawn with probability
    proportional to its path length ("random")."""
    ys, xs = np.nonzero(skel)
    n = len(ys)
    if n == 1:
        return np.array([[ys[0], xs[0]]], np.float64)
    index = -np.ones(skel.shape, np.int64)
    index[ys, xs] = np.arange(n)
    rows, cols, wts = [], [], []
    h, w = skel.shape
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
        y2, x2 = ys + dy, xs + dx
        ok = (y2 >= 0) & (y2 < h) & (x2 >= 0) & (x2 < w)
        j = np.full(n, -1)
        j[ok] = index[y2[ok], x2[ok]]
        ok = j >= 0
        rows.append(np.nonzero(ok)[0])
        cols.append(j[ok])
        wts.append(np.full(ok.sum(), np.hypot(dy, dx)))
    graph = coo_matrix(
        (np.concatenate(wts), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    ).tocsr()
    root = int(np.argmin(xs) if np.ptp(xs) > np.ptp(ys) else np.argmin(ys))
    dist, pred = dijkstra(graph, directed=False, indices=root, return_predecessors=True)
    parent = np.zeros(n, bool)
    parent[pred[pred >= 0]] = True
    leaves = np.flatnonzero(~parent & np.isfinite(dist) & (np.arange(n) != root))
    if len(leaves) == 0 or dist[leaves].sum() <= 0:
        return np.array([[ys[root], xs[root]]], np.float64)
    if mode == "longest":
        leaf = int(leaves[np.argmax(dist[leaves])])
    else:
        prob = dist[leaves] / dist[leaves].sum()
        leaf = int(rng.choice(leaves, p=prob))
    path = [leaf]
    while path[-1] != root:
        path.append(int(pred[path[-1]]))
    path = np.array(path[::-1])
    return np.stack([ys[path], xs[path]], 1).astype(np.float64)


def _cdsp_boundary(region: np.ndarray, rng, p) -> Optional[np.ndarray]:
    """Outline of the eroded region, vertices jittered along the ray from its centroid."""
    j = int(p["boundary_jitter"])
    eroded = cv2.erode(region.view(np.uint8), np.ones((j, j), np.uint8), borderValue=0)
    if not eroded.any():
        return None
    eroded = _largest(eroded.astype(bool))
    contours, _ = cv2.findContours(
        eroded.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    contour = max(contours, key=len).reshape(-1, 2)[:, ::-1].astype(np.float64)
    if len(contour) < 3:
        return None
    ctrl = _rdp(contour, p["rdp_epsilon"])
    centre = contour.mean(0)
    ang = np.arctan2(ctrl[:, 0] - centre[0], ctrl[:, 1] - centre[1])
    delta = rng.integers(-j + 1, j - 1, size=len(ctrl))
    ctrl = ctrl + delta[:, None] * np.stack([np.sin(ang), np.cos(ang)], 1)
    return ctrl


def _cap(ctrl: np.ndarray, p) -> np.ndarray:
    """At most max_control_points control points, evenly subsampled (ends kept)."""
    m = int(p["max_control_points"])
    if len(ctrl) <= m:
        return ctrl
    return ctrl[np.round(np.linspace(0, len(ctrl) - 1, m)).astype(int)]


def _cdsp(label, rng, ignore_label, width, p):
    out = np.full(label.shape, ignore_label, np.uint8)
    total = label.size
    h, w = label.shape
    pad = int(width) + 1
    for c, sl, region, area in _regions(label, ignore_label, pad):
        if area < p["min_area"]:
            continue
        # The public generator keeps scribbles 2 px off the image border.
        mask = region.copy()
        y0, x0 = sl[0].start, sl[1].start
        mask[: max(2 - y0, 0)] = False
        mask[:, : max(2 - x0, 0)] = False
        mask[max(h - 2 - y0, 0) :] = False
        mask[:, max(w - 2 - x0, 0) :] = False
        if not mask.any():
            mask = region
        skel, k = _coarse_skeleton(mask)
        if skel.sum() <= 2 and k == 1:
            path = _skeleton_path(mask)
            out[sl][_stroke(region.shape, path, width) & region] = c
            continue
        skel = _largest(skel) if skel.any() else skel
        curve = None
        share = area / total
        if share >= p["boundary_share"] and rng.random() < share:
            ctrl = _cdsp_boundary(mask, rng, p)
            curve = None if ctrl is None else _smooth_inside(_cap(ctrl, p), region, width)
        if curve is None and skel.any():
            path = _tree_path(skel, rng, p["path"]) * k + (k - 1) / 2
            curve = _smooth_inside(_cap(_rdp(path, p["rdp_epsilon"]), p), region, width)
        if curve is None:  # the full-resolution skeleton path, clipped to the region
            stroke = _stroke(region.shape, _skeleton_path(mask), width) & region
        else:
            stroke = np.logical_or.reduce([_stroke(region.shape, c, width) for c in curve])
        out[sl][stroke] = c
    return out


# ------------------------------------------------------------------------------ api


def _skeleton(label, rng, ignore_label, width, p):
    return skeleton_scribbles(label, rng, width=width, ignore_label=ignore_label, **p)


_GENERATORS = {
    "s4": (_s4, S4_DEFAULTS),
    "cdsp": (_cdsp, CDSP_DEFAULTS),
    "skeleton": (_skeleton, {}),
}


def simulate_scribbles(
    label: np.ndarray,
    *,
    style: str = "s4",
    seed: int = 0,
    ignore_label: int = IGNORE_LABEL,
    width: int = 3,
    **params,
) -> np.ndarray:
    """Scribble label map (uint8, same shape, `ignore_label` where unlabeled) simulated from
    the dense map `label` in `style` (one of STYLES), deterministic in `seed`. `params`
    override the style's defaults (S4_DEFAULTS, CDSP_DEFAULTS; for "skeleton" the keywords
    of tools.skeleton_scribbles)."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be a 2-D map, got shape {label.shape}")
    if style not in STYLES:
        raise ValueError(f"unknown scribble style {style!r}; expected one of {STYLES}")
    if int(width) < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError("label values must lie in [0, 255] (uint8 output)")
    fn, defaults = _GENERATORS[style]
    unknown = set(params) - set(defaults) if defaults else set()
    if unknown:
        raise ValueError(f"unknown {style} parameters {sorted(unknown)}; known: {sorted(defaults)}")
    label = np.ascontiguousarray(label, dtype=np.uint8)
    rng = np.random.default_rng(int(seed))
    return fn(label, rng, int(ignore_label), int(width), {**defaults, **params})
