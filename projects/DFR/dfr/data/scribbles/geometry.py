"""Scribble geometry, the one home of what every scribble generator and tool shares: regions of
a label map, their skeletons as graphs, paths through them, the centre of a tiny region, and
the per-image / per-file seeding.

A *region* is one 8-connected component of one class. Skeletons are skimage's
``skeletonize``; their pixels form a graph with the 8 neighbours as edges (diagonal step
sqrt 2), on which paths are shortest paths (scipy's Dijkstra).
"""

import os
import zlib
from typing import Iterator, Optional, Tuple

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from skimage.morphology import skeletonize

__all__ = [
    "coarse_skeleton",
    "file_rng",
    "image_seed",
    "iter_regions",
    "largest_component",
    "region_centre",
    "region_skeleton",
    "skeleton_graph",
    "skeleton_order",
    "skeleton_path",
    "tree_path",
]

# ------------------------------------------------------------------------------ seeding


def _name_crc(name: str) -> int:
    return zlib.crc32(str(name).encode())


def image_seed(seed: int, image_id: str) -> int:
    """The per-image seed of a dataset simulated with `seed`: depends on the seed and the image
    id only, so neither on the processing order nor on the other images."""
    return (int(seed) * 1_000_003 + _name_crc(image_id)) % (2**63)


def file_rng(seed: int, name: str) -> np.random.Generator:
    """Generator of a file-level tool (shorten / drop a label folder), seeded by (seed, file
    name): deterministic and order-independent like `image_seed`."""
    return np.random.default_rng([seed, _name_crc(os.path.basename(name))])


# ------------------------------------------------------------------------------ regions


def iter_regions(
    label: np.ndarray, ignore_label: int, pad: int = 0, raster_order: bool = False
) -> Iterator[tuple]:
    """Yield (class, crop slices, bool mask of the crop, area) for every region of `label`,
    the crop being the region's bounding box grown by `pad` px and clipped to the map.
    Classes in increasing order; a class's regions in OpenCV's labelling order, or with
    `raster_order` in the raster order of their first pixel (scipy's ``ndimage.label``, the
    order the synthetic set's generator and the shorten / drop tools were written with)."""
    h, w = label.shape
    for c in np.unique(label):
        if c == ignore_label:
            continue
        n, comp, stats, _ = cv2.connectedComponentsWithStats(
            (label == c).view(np.uint8), connectivity=8
        )
        order = range(1, n)
        if raster_order:
            first = [
                (stats[i, 1], stats[i, 0] + int(np.argmax(
                    comp[stats[i, 1], stats[i, 0] : stats[i, 0] + stats[i, 2]] == i)))
                for i in order
            ]  # fmt: skip
            order = [1 + int(j) for j in sorted(range(n - 1), key=first.__getitem__)]
        for i in order:
            x, y, bw, bh, area = stats[i]
            y0, y1 = max(y - pad, 0), min(y + bh + pad, h)
            x0, x1 = max(x - pad, 0), min(x + bw + pad, w)
            yield int(c), (slice(y0, y1), slice(x0, x1)), comp[y0:y1, x0:x1] == i, int(area)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected piece of a bool mask (the mask itself when it has one)."""
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    return comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def region_centre(mask: np.ndarray) -> Tuple[int, int]:
    """(y, x) of the pixel of `mask` closest to its centroid: the one point of a region too
    small or too thin to have a skeleton."""
    ys, xs = np.nonzero(mask)
    i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return int(ys[i]), int(xs[i])


# ----------------------------------------------------------------------------- skeletons


def coarse_skeleton(mask: np.ndarray) -> Tuple[np.ndarray, int]:
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


# Thinning costs about area x thickness; above this budget a region's skeleton is thinned at
# 1/k resolution and drawn back (2**27: no region of a 640 x 480 map reaches it, so maps of
# that size, the synthetic set's included, keep skimage's full-resolution skeleton).
THINNING_BUDGET = 2**27


def region_skeleton(mask: np.ndarray) -> np.ndarray:
    """The skeleton of `mask` at full resolution: skimage's ``skeletonize``, or, where that
    would cost more than THINNING_BUDGET (area x thickness), the skeleton thinned at 1/k
    resolution (k = thickness / 16) with its 8-neighbour edges drawn back as 1-px lines,
    kept inside `mask` and thinned once more."""
    thick = cv2.distanceTransform(np.pad(mask, 1).view(np.uint8), cv2.DIST_L2, 3).max()
    if mask.sum() * thick <= THINNING_BUDGET:
        return skeletonize(mask)
    k = max(2, int(thick // 16))
    h, w = mask.shape
    small = cv2.resize(mask.view(np.uint8), (max(w // k, 1), max(h // k, 1)),
                       interpolation=cv2.INTER_AREA) > 0  # fmt: skip
    ys, xs, graph = skeleton_graph(skeletonize(small))
    out = np.zeros((h, w), np.uint8)
    pts = np.stack([xs, ys], 1) * k + (k - 1) // 2
    rows, cols = graph.nonzero()
    for a, b in zip(rows[rows < cols], cols[rows < cols]):
        cv2.line(out, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]), 1)
    out[pts[:, 1].clip(0, h - 1), pts[:, 0].clip(0, w - 1)] = 1  # isolated pixels
    return skeletonize((out > 0) & mask)


def skeleton_graph(skel: np.ndarray):
    """(ys, xs, graph): the pixels of the bool map `skel` and the sparse symmetric graph of
    their 8-neighbourhood (CSR, weight 1 or sqrt 2; node i = pixel (ys[i], xs[i]))."""
    ys, xs = np.nonzero(skel)
    n = len(ys)
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
    return ys, xs, graph


def skeleton_order(skel: np.ndarray) -> np.ndarray:
    """(N, 2) (y, x) coordinates of the skeleton pixels of `skel` (bool, one component),
    sorted by geodesic distance from one end: the pixel farthest from an arbitrary start, as
    for the diameter of a tree."""
    ys, xs = np.nonzero(skel)
    if len(ys) <= 1:
        return np.stack([ys, xs], 1)
    ys, xs, graph = skeleton_graph(skel)
    d0 = dijkstra(graph, directed=False, indices=0)
    end = int(np.argmax(np.where(np.isfinite(d0), d0, -1)))
    d = dijkstra(graph, directed=False, indices=end)
    d[~np.isfinite(d)] = d[np.isfinite(d)].max() + 1  # a broken skeleton: other piece last
    order = np.argsort(d, kind="stable")
    return np.stack([ys[order], xs[order]], 1)


def tree_path(skel: np.ndarray, rng: Optional[np.random.Generator], mode: str) -> np.ndarray:
    """A root-to-leaf path of the shortest-path spanning tree of the skeleton pixels (the
    public CDSP generator takes a minimum spanning tree of the simplified skeleton graph: both
    break cycles), rooted at the skeleton's extreme end along its longer side; the leaf the
    farthest ("longest") or drawn with probability proportional to its path length
    ("random"). (N, 2) float (y, x)."""
    ys, xs = np.nonzero(skel)
    if len(ys) == 1:
        return np.array([[ys[0], xs[0]]], np.float64)
    ys, xs, graph = skeleton_graph(skel)
    n = len(ys)
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


def skeleton_path(mask: np.ndarray) -> np.ndarray:
    """(N, 2) float (y, x): the longest root-to-leaf path of the skeleton of `mask` (its
    largest piece; region_skeleton); a region without a skeleton gives its centre pixel."""
    skel = region_skeleton(mask)
    if not skel.any():
        return np.array([region_centre(mask)], np.float64)
    return tree_path(largest_component(skel), None, "longest")
