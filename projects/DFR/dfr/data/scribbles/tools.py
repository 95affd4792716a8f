"""Scribble manipulation: shorten / drop scribbles (Fig. 3 study) and draw skeleton scribbles
from dense masks (Context / synthetic).

A *scribble* is one 8-connected component of one class in a label map (255 = unlabeled).
Its *length* is the pixel count of its skeleton (skimage.morphology.skeletonize); shortening
to fraction f keeps a contiguous run of round(f * length) skeleton pixels, ordered by geodesic
distance from one skeleton end, and every scribble pixel whose nearest skeleton pixel is kept
(so the scribble keeps its width). f = 0 keeps one skeleton pixel: a click point.
All randomness comes from a numpy Generator; file-level tools seed it per file from
(seed, file name), so the result does not depend on processing order.
"""

import os
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from ..classes import IGNORE_LABEL
from ..labels import read_label
from .geometry import file_rng, iter_regions, region_centre, region_skeleton, skeleton_order

__all__ = [
    "scribble_components",
    "skeleton_order",
    "shorten_scribbles",
    "drop_scribbles",
    "skeleton_scribbles",
    "transform_label_root",
    "file_rng",
]

_EIGHT = np.ones((3, 3), dtype=bool)


def scribble_components(label: np.ndarray, ignore_label: int = IGNORE_LABEL):
    """Yield (class_id, bool mask of the map's shape) for every 8-connected region of every
    class, in raster order (geometry.iter_regions)."""
    for c, sl, crop, _ in iter_regions(label, ignore_label, raster_order=True):
        mask = np.zeros(label.shape, dtype=bool)
        mask[sl] = crop
        yield c, mask


def _component_skeleton(mask: np.ndarray) -> np.ndarray:
    """The skeleton of a region (geometry.region_skeleton), its centre pixel for a speck."""
    skel = region_skeleton(mask)
    if not skel.any():  # a speck: its centre pixel
        skel = np.zeros_like(mask)
        skel[region_centre(mask)] = True
    return skel


def _keep_window(mask, fraction, rng, min_pixels=1) -> Tuple[np.ndarray, int, int]:
    """Pixels of `mask` whose nearest skeleton pixel lies in a random contiguous window of
    round(fraction * length) skeleton pixels. Returns (kept mask, kept length, length)."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    sub = mask[y0:y1, x0:x1]
    skel = _component_skeleton(sub) & sub
    order = skeleton_order(skel)
    n = len(order)
    k = int(np.clip(round(fraction * n), min_pixels, n))
    start = int(rng.integers(0, n - k + 1))
    kept = np.zeros_like(sub)
    kept[order[start : start + k, 0], order[start : start + k, 1]] = True
    # Nearest skeleton pixel of every scribble pixel (Voronoi cells of the skeleton).
    _, (iy, ix) = ndimage.distance_transform_edt(~skel, return_indices=True)
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = sub & kept[iy, ix]
    return out, k, n


def shorten_scribbles(
    label: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    ignore_label: int = IGNORE_LABEL,
) -> Tuple[np.ndarray, Dict[str, int]]:
    """Shorten every scribble to `fraction` of its skeleton length (0: a click point).
    Returns the new label map and stats {scribbles, length, kept_length} (skeleton pixels)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    out = np.full_like(label, ignore_label)
    stats = {"scribbles": 0, "length": 0, "kept_length": 0}
    for c, mask in scribble_components(label, ignore_label):
        if fraction >= 1.0:
            out[mask] = c
        else:
            kept, k, n = _keep_window(mask, fraction, rng)
            out[kept] = c
            stats["kept_length"] += k
            stats["length"] += n
        stats["scribbles"] += 1
    return out, stats


def drop_scribbles(
    label: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    ignore_label: int = IGNORE_LABEL,
) -> Tuple[np.ndarray, Dict[str, int]]:
    """Remove floor(fraction * n + u) of the image's n scribbles (u ~ U[0, 1): stochastic
    rounding, so the dropped fraction over a data set is `fraction` in expectation)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    comps = list(scribble_components(label, ignore_label))
    n = len(comps)
    n_drop = min(n, int(np.floor(fraction * n + rng.random())))
    drop = set(rng.permutation(n)[:n_drop].tolist())
    out = np.full_like(label, ignore_label)
    for i, (c, mask) in enumerate(comps):
        if i not in drop:
            out[mask] = c
    return out, {"scribbles": n, "dropped": n_drop}


def _branches(skel: np.ndarray) -> list:
    """Split a skeleton at its junctions (pixels with > 2 neighbours) into simple paths,
    each an ordered (N, 2) array."""
    k = np.ones((3, 3), np.float32)
    nb = cv2.filter2D(skel.astype(np.float32), -1, k, borderType=cv2.BORDER_CONSTANT) - 1
    junction = (skel & (nb > 2.5)).astype(np.uint8)
    segs = skel & ~cv2.dilate(junction, np.ones((3, 3), np.uint8)).astype(bool)
    comp, n = ndimage.label(segs, structure=_EIGHT)
    out = []
    for i, sl in enumerate(ndimage.find_objects(comp)):
        order = skeleton_order(comp[sl] == i + 1)
        out.append(order + np.array([sl[0].start, sl[1].start]))
    return out


def _axis_stroke(mask: np.ndarray) -> np.ndarray:
    """A straight stroke along the region's major axis through its centroid, clipped to the
    region (for round blobs whose skeleton is little more than a point)."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    cov = np.cov(np.stack([ys - cy, xs - cx]))
    evals, evecs = np.linalg.eigh(cov)
    dy, dx = evecs[:, -1]
    half = 2.0 * np.sqrt(max(evals[-1], 1e-6))  # ~ half the major axis of an ellipse
    t = np.arange(-half, half + 0.5, 0.5)
    py, px = np.round(cy + t * dy).astype(int), np.round(cx + t * dx).astype(int)
    ok = (py >= 0) & (py < mask.shape[0]) & (px >= 0) & (px < mask.shape[1])
    line = np.zeros_like(mask)
    line[py[ok], px[ok]] = True
    return skeletonize(line & mask)


def skeleton_scribbles(
    dense: np.ndarray,
    rng: np.random.Generator,
    width: int = 3,
    target_fraction: Optional[float] = 0.03,
    min_area: int = 50,
    min_length: int = 6,
    ignore_label: int = IGNORE_LABEL,
) -> np.ndarray:
    """Scribbles from a dense label map, like ScribbleSup's (~3 % of pixels): for every
    connected region (area >= min_area) its skeleton (skimage), split at junctions into
    strokes; each stroke shortened around a random centre by one common factor, dilated to
    `width` px and clipped to the region. Round regions whose skeleton is shorter than
    their radius get a stroke along the major axis instead. The factor is fitted (3 rounds)
    so that `target_fraction` of the image is labeled (None: full skeletons)."""
    strokes = []  # (class, ordered path in image coordinates, random offset)
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    for c, sl, sub, area in iter_regions(dense, ignore_label, pad=1, raster_order=True):
        if area < min_area:
            continue
        y0, x0 = sl[0].start, sl[1].start
        core = cv2.erode(sub.astype(np.uint8), se, iterations=width // 2 + 1).astype(bool)
        core = core if core.sum() >= 0.2 * area else sub
        skel = _component_skeleton(core) & core
        if skel.sum() < 0.5 * np.sqrt(area):
            skel = _axis_stroke(core) | skel
        paths = [p for p in _branches(skel) if len(p) >= min_length]
        if not paths:
            paths = [skeleton_order(skel)]
        strokes += [(c, p + np.array([y0, x0]), rng.random()) for p in paths]
    out = np.full_like(dense, ignore_label)
    if not strokes:
        return out
    classes = sorted({c for c, _, _ in strokes})
    box = np.ones((width, width), np.uint8)

    def render(frac):
        lines = {c: np.zeros(dense.shape, np.uint8) for c in classes}
        for c, path, u in strokes:
            n = len(path)
            k = int(min(n, max(1, round(frac * n))))
            start = int(round(u * (n - k)))
            lines[c][path[start : start + k, 0], path[start : start + k, 1]] = 1
        res = np.full_like(dense, ignore_label)
        for c in classes:
            line = cv2.dilate(lines[c], box) if width > 1 else lines[c]
            res[(line > 0) & (dense == c)] = c
        return res

    frac = 1.0
    out = render(frac)
    if target_fraction is not None:
        for _ in range(3):
            got = float((out != ignore_label).mean())
            if got <= 0 or abs(got - target_fraction) < 0.1 * target_fraction:
                break
            frac = min(1.0, frac * target_fraction / got)
            out = render(frac)
    return out


def transform_label_root(
    src: str,
    dst: str,
    length: Optional[float] = None,
    drop: Optional[float] = None,
    seed: int = 0,
    ext: str = ".png",
) -> Dict[str, int]:
    """Write every label PNG of `src` into `dst`, shortened to `length` and/or with a
    `drop` fraction of scribbles removed (drop first, then shorten). Returns summed stats."""
    from PIL import Image

    if not os.path.isdir(src):
        raise FileNotFoundError(f"scribble folder not found: {src}")
    os.makedirs(dst, exist_ok=True)
    total = {"files": 0, "scribbles": 0, "dropped": 0, "length": 0, "kept_length": 0}
    for name in sorted(os.listdir(src)):
        if not name.endswith(ext):
            continue
        path = os.path.join(src, name)
        label = read_label(path)
        rng = file_rng(seed, name)
        if drop:
            label, st = drop_scribbles(label, drop, rng)
            total["dropped"] += st["dropped"]
        if length is not None and length < 1.0:
            label, st = shorten_scribbles(label, length, rng)
            total["length"] += st["length"]
            total["kept_length"] += st["kept_length"]
        total["scribbles"] += sum(1 for _ in scribble_components(label))
        total["files"] += 1
        Image.fromarray(label.astype(np.uint8)).save(os.path.join(dst, name))
    return total
