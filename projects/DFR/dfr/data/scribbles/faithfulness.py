"""How much a scribble set looks like another: the statistics the scribble-simulation papers
(Scribbles4All, NeurIPS 2024 D&B; CDSP, AAAI 2024) compare, measured against the dense ground
truth of the same images.

Per image (``scribble_image_stats``), with a *scribble* = one 8-connected piece of one class:

- labeled share (labeled pixels / pixels) and labeled pixels per class;
- scribbles, and each scribble's length (pixels of its skeleton, skimage ``skeletonize``);
- near-boundary pixels: labeled pixels within ``boundary_px`` (30) of a class boundary of
  the dense map (a pixel whose 4-neighbour has another value, ignore included);
- objects: 8-connected regions of each class of the dense map of at least
  ``min_object_area`` px (ignore excluded); hit when a scribble pixel of their class lies in
  them;
- crossings: scribbles with a pixel whose dense class is another class (ignore excluded),
  and such pixels; pixels labeled on dense ignore are counted apart (``on_ignore``);
- coverage: dense pixels of each class within ``cover_px`` (20) of a scribble pixel of that
  class; pooled over a set and averaged over the classes (``class_coverage``). It tells how much
  of each object the scribbles reach, which the labeled share does not: few long scribbles
  label as many pixels as many short ones spread over the object.

``summarize`` pools the images of a set; ``faithfulness_table`` writes one Markdown row per
set with the ratio to a reference set (the real scribbles).
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional, Sequence

import cv2
import numpy as np
from skimage.morphology import skeletonize

from ..classes import IGNORE_LABEL

__all__ = ["compare_report", "faithfulness_table", "scribble_image_stats", "summarize"]

BOUNDARY_PX = 30
MIN_OBJECT_AREA = 100
COVER_PX = 20


def _class_boundary(dense: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another value."""
    b = np.zeros(dense.shape, bool)
    dv = dense[1:] != dense[:-1]
    dh = dense[:, 1:] != dense[:, :-1]
    b[1:] |= dv
    b[:-1] |= dv
    b[:, 1:] |= dh
    b[:, :-1] |= dh
    return b


def scribble_image_stats(
    scribble: np.ndarray,
    dense: Optional[np.ndarray] = None,
    *,
    num_classes: int,
    ignore_label: int = IGNORE_LABEL,
    boundary_px: float = BOUNDARY_PX,
    min_object_area: int = MIN_OBJECT_AREA,
    cover_px: float = COVER_PX,
) -> Dict:
    """Statistics of one scribble map (module docstring); the dense-map entries are None
    without `dense`."""
    scr = np.asarray(scribble)
    labeled = scr != ignore_label
    pix = np.bincount(scr[labeled].ravel(), minlength=num_classes)[:num_classes]
    lengths: List[int] = []
    crossing_scribbles = 0
    wrong = None
    if dense is not None:
        dense = np.asarray(dense)
        if dense.shape != scr.shape:
            raise ValueError(f"scribble {scr.shape} and dense {dense.shape} shapes differ")
        wrong = labeled & (dense != scr) & (dense != ignore_label)
    for c in np.flatnonzero(pix):
        n, comp, stats, _ = cv2.connectedComponentsWithStats(
            (scr == c).view(np.uint8), connectivity=8
        )
        for i in range(1, n):
            x, y, w, h, _ = stats[i]
            piece = comp[y : y + h, x : x + w] == i
            lengths.append(int(skeletonize(piece).sum()))
            if wrong is not None and wrong[y : y + h, x : x + w][piece].any():
                crossing_scribbles += 1
    row = {
        "size": int(scr.size),
        "labeled": int(labeled.sum()),
        "pixels": pix,
        "scribbles": len(lengths),
        "lengths": lengths,
        "near_boundary": None,
        "objects": None,
        "objects_hit": None,
        "crossing_scribbles": None,
        "crossing_pixels": None,
        "on_ignore": None,
        "class_pixels": None,
        "covered": None,
    }
    if dense is None:
        return row
    bnd = _class_boundary(dense)
    dist = cv2.distanceTransform((~bnd).view(np.uint8), cv2.DIST_L2, 5)
    objects = hit = 0
    class_pixels = np.zeros(num_classes, np.int64)
    covered = np.zeros(num_classes, np.int64)
    for c in np.unique(dense):
        if c == ignore_label:
            continue
        region = dense == c
        if c < num_classes:
            class_pixels[c] = region.sum()
            if pix[c]:
                to_scribble = cv2.distanceTransform(
                    (scr != c).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
                covered[c] = (region & (to_scribble <= cover_px)).sum()
        n, comp, stats, _ = cv2.connectedComponentsWithStats(region.view(np.uint8), connectivity=8)
        big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_object_area)
        big = big[big > 0]
        objects += len(big)
        if len(big):
            touched = np.unique(comp[scr == c])
            hit += int(np.isin(big, touched).sum())
    row.update(
        near_boundary=int((labeled & (dist <= boundary_px)).sum()),
        objects=objects,
        objects_hit=hit,
        crossing_scribbles=crossing_scribbles,
        crossing_pixels=int(wrong.sum()),
        on_ignore=int((labeled & (dense == ignore_label)).sum()),
        class_pixels=class_pixels,
        covered=covered,
    )
    return row


def summarize(rows: Iterable[Dict]) -> Dict:
    """Pooled statistics of a set of images (rows of scribble_image_stats): labeled share
    (mean over images), scribbles per image, near-boundary share of the labeled pixels,
    objects hit, length percentiles, crossings, class shares of the labeled pixels."""
    rows = list(rows)
    if not rows:
        raise ValueError("no images")
    labeled = np.array([r["labeled"] for r in rows], np.float64)
    sizes = np.array([r["size"] for r in rows], np.float64)
    lengths = np.concatenate([np.asarray(r["lengths"], np.float64) for r in rows] + [[]])
    pix = np.sum([r["pixels"] for r in rows], axis=0).astype(np.float64)
    dense = all(r["objects"] is not None for r in rows)
    out = {
        "images": len(rows),
        "labeled_share": float(np.mean(labeled / sizes)),
        "scribbles_per_image": float(np.mean([r["scribbles"] for r in rows])),
        "length_median": float(np.median(lengths)) if len(lengths) else 0.0,
        "length_p10": float(np.percentile(lengths, 10)) if len(lengths) else 0.0,
        "length_p90": float(np.percentile(lengths, 90)) if len(lengths) else 0.0,
        "length_mean": float(lengths.mean()) if len(lengths) else 0.0,
        "class_share": pix / max(pix.sum(), 1.0),
        "near_boundary_share": None,
        "objects": None,
        "objects_hit_share": None,
        "crossing_scribbles": None,
        "crossing_pixels": None,
        "on_ignore": None,
        "class_coverage": None,
    }
    if dense:
        objects = sum(r["objects"] for r in rows)
        totals = np.sum([r["class_pixels"] for r in rows], axis=0)
        covered = np.sum([r["covered"] for r in rows], axis=0)
        present = totals > 0
        out.update(
            near_boundary_share=sum(r["near_boundary"] for r in rows) / max(labeled.sum(), 1),
            objects=objects,
            objects_hit_share=sum(r["objects_hit"] for r in rows) / max(objects, 1),
            crossing_scribbles=sum(r["crossing_scribbles"] for r in rows),
            crossing_pixels=sum(r["crossing_pixels"] for r in rows),
            on_ignore=sum(r["on_ignore"] for r in rows),
            class_coverage=float((covered[present] / totals[present]).mean())
            if present.any() else None,
        )
    return out


def _ratio(v, ref) -> str:
    if v is None or ref is None or ref == 0:
        return ""
    return f" ({v / ref:.2f}x)"


def faithfulness_table(
    sets: Dict[str, Dict], reference: str, names: Optional[Sequence[str]] = None
) -> List[str]:
    """Markdown lines: one row per summarized set (`sets`: name -> summarize() output, in
    order), ratios to the `reference` set in brackets; then the class shares of the labeled
    pixels (classes present in any set, named by `names`)."""
    ref = sets[reference]
    md = [
        "| scribbles | images | labeled % | scribbles / image | within 30 px of a boundary "
        f"| objects hit | class pixels within {COVER_PX} px | length median [p10, p90] px "
        "| crossing scribbles (px) | on ignore px |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f} %"

    for name, s in sets.items():
        hit = "n/a"
        if s["objects_hit_share"] is not None:
            hit = f"{100 * s['objects_hit_share']:.0f} % of {s['objects']}"
        cross = "n/a"
        if s["crossing_scribbles"] is not None:
            cross = f"{s['crossing_scribbles']} ({s['crossing_pixels']})"
        md.append(
            f"| {name} | {s['images']} | {100 * s['labeled_share']:.2f} %"
            f"{_ratio(s['labeled_share'], ref['labeled_share'])} "
            f"| {s['scribbles_per_image']:.1f} | {pct(s['near_boundary_share'])} "
            f"| {hit}{_ratio(s['objects_hit_share'], ref['objects_hit_share'])} "
            f"| {pct(s['class_coverage'])}{_ratio(s['class_coverage'], ref['class_coverage'])} "
            f"| {s['length_median']:.0f} [{s['length_p10']:.0f}, {s['length_p90']:.0f}] "
            f"| {cross} | {'n/a' if s['on_ignore'] is None else s['on_ignore']} |"
        )
    shares = np.stack([s["class_share"] for s in sets.values()])
    present = np.flatnonzero(shares.max(0) > 0)
    label = (lambda c: names[c]) if names is not None else str
    md += [
        "",
        "Share of the labeled pixels per class (total variation distance to "
        f"{reference} in the last column):",
        "",
        "| scribbles | " + " | ".join(label(c) for c in present) + " | TV |",
        "|---|" + "---:|" * (len(present) + 1),
    ]
    for name, s in sets.items():
        tv = 0.5 * np.abs(s["class_share"] - ref["class_share"]).sum()
        md.append(
            f"| {name} | "
            + " | ".join(f"{100 * s['class_share'][c]:.1f} %" for c in present)
            + f" | {tv:.2f} |"
        )
    return md


def compare_report(
    scribbles: Dict[str, np.ndarray],
    names: Sequence[str],
    *,
    dense_dir: Optional[str] = None,
    styles: Sequence[str] = (),
    seeds: int = 5,
    width: int = 3,
    reference: str = "real",
    ignore_label: int = IGNORE_LABEL,
    scale="1.0",
) -> List[str]:
    """Markdown section comparing the scribble maps `scribbles` (image id -> map) with each
    style simulated from the dense maps ``<dense_dir>/<id>.png`` of the same images, seeds
    ``image_seed(s, id)`` for s < `seeds` and the sizes `scale` (1.0, a factor or "auto"; the
    rows say it when it is not 1). Without `dense_dir`, the real set alone (the dense-map
    columns n/a). Images without a dense map are left out of the comparison."""
    from ..labels import read_label
    from .simulate import image_seed, simulate_scribbles

    ids = sorted(scribbles)
    dense = {}
    if dense_dir is not None:
        dense = {
            i: read_label(os.path.join(dense_dir, f"{i}.png"))
            for i in ids
            if os.path.exists(os.path.join(dense_dir, f"{i}.png"))
        }
        if not dense:
            raise ValueError(f"no dense map <id>.png in {dense_dir} for the {len(ids)} images")
        ids = sorted(dense)
    k = len(names)
    from .params import resolve_scale

    plain = str(scale) != "auto" and resolve_scale(scale, (1, 1)) == 1
    row = {s: s if plain else f"{s} (scale {scale})" for s in styles}
    rows = {reference: [], **{row[s]: [] for s in styles}}
    for i in ids:
        d = dense.get(i)
        rows[reference].append(scribble_image_stats(scribbles[i], d, num_classes=k))
        for style in styles if d is not None else ():
            for s in range(seeds):
                sim = simulate_scribbles(d, style=style, seed=image_seed(s, i), width=width,
                                         ignore_label=ignore_label, scale=scale)  # fmt: skip
                rows[row[style]].append(scribble_image_stats(sim, d, num_classes=k))
    sets = {name: summarize(r) for name, r in rows.items() if r}
    head = [
        "## Scribbles against the dense ground truth",
        "",
        f"{len(ids)} images ({', '.join(ids[:8])}{', ...' if len(ids) > 8 else ''}); "
        + (
            f"each style simulated {seeds} times per image (seeds image_seed(s, id), s < {seeds}; "
            f"width {width} px), its rows pooled. "
            if styles and dense
            else ""
        )
        + f"Scribble = 8-connected piece of one class; length = its skeleton pixels; boundary = "
        f"a class change in the dense map (ignore included), {BOUNDARY_PX} px; objects = dense "
        f"regions of >= {MIN_OBJECT_AREA} px; crossing = a scribble with a pixel of another "
        "dense class.",
        "",
    ]
    return head + faithfulness_table(sets, reference, names) + [""]
