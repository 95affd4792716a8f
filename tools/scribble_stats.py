#!/usr/bin/env python
"""Scribble statistics: labeled-pixel fraction per image and per class, scribbles per image.

Reads any form dfr.data.scribbles reads (folder or zip of label PNGs, ScribbleSup XMLs or
txt scribbles; XML/txt need --images for the JPEG sizes and are drawn with --line-width).
Writes <out>/scribble_stats.md (tables) and <out>/scribble_stats.png (histograms).

Scribbles per image: the number of polylines for XML/txt; for PNGs, the number of
8-connected components per class (crossing scribbles of one class count once, so it is a
lower bound). The standard 3-px VOC conversion labels about 3 % of the pixels.

    python tools/scribble_stats.py --labels datasets/VOC2012/pascal_2012_scribble \
        --list datasets/VOC2012/ImageSets/Segmentation/train_aug.txt --out output/scribble_stats
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

try:
    from dfr.data import scribbles as sio
    from dfr.data.classes import CONTEXT59_CLASSES, CONTEXT60_CLASSES, VOC_CLASSES
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projects" / "DFR"))
    from dfr.data import scribbles as sio
    from dfr.data.classes import CONTEXT59_CLASSES, CONTEXT60_CLASSES, VOC_CLASSES

CLASSES = {"voc": VOC_CLASSES, "context59": CONTEXT59_CLASSES, "context60": CONTEXT60_CLASSES}


def image_stats(label: np.ndarray, num_classes: int, num_scribbles=None):
    """{'fraction', 'pixels' (C,), 'scribbles'} of one label map (255 = unlabeled)."""
    lab = np.asarray(label)
    pix = np.bincount(lab[lab != 255].ravel(), minlength=num_classes)[:num_classes]
    if num_scribbles is None:
        eight = np.ones((3, 3), bool)
        num_scribbles = sum(
            ndimage.label(lab == c, structure=eight)[1] for c in np.flatnonzero(pix)
        )
    return {
        "fraction": float((lab != 255).mean()),
        "pixels": pix,
        "scribbles": int(num_scribbles),
        "size": lab.size,
    }


def collect(args):
    src = sio.open_scribble_source(args.labels)
    ids = src.ids()
    if args.list:
        wanted = [
            line.split()[0] for line in Path(args.list).read_text().splitlines() if line.strip()
        ]
        missing = [i for i in wanted if i not in src]
        if missing:
            raise SystemExit(
                f"{len(missing)} ids of {args.list} have no annotation in {args.labels}, "
                f"e.g. {missing[:3]}"
            )
        ids = wanted
    if args.limit:
        ids = ids[: args.limit]
    names = CLASSES[args.classes]
    if src.kind == "xml":
        tag_map = (
            sio.voc_tag_map()
            if args.classes == "voc"
            else sio.context_tag_map(60 if args.classes == "context60" else 59, unknown="ignore")
        )
    else:
        tag_map = None
    from PIL import Image

    from tqdm import tqdm

    from dfr.data.labels import read_label
    rows = {}
    for iid in tqdm(ids, desc="scribble stats", unit="img"):
        if src.kind == "png":
            lab = read_label(src.read_bytes(iid), source=src.name_of(iid))
            n = None
        else:
            if args.images is None:
                raise SystemExit(
                    f"--images is needed to size the {src.kind} scribbles of {args.labels}"
                )
            with Image.open(Path(args.images) / f"{iid}.jpg") as im:
                w, h = im.size
            lab, ss = src.load(iid, h, w, tag_map, len(names), args.line_width)
            n = len(ss)
        rows[iid] = image_stats(lab, len(names), n)
    return rows, names


def write_report(rows, names, out: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fr = np.array([r["fraction"] for r in rows.values()])
    ns = np.array([r["scribbles"] for r in rows.values()])
    pix = np.stack([r["pixels"] for r in rows.values()])
    tot = pix.sum()
    md = [
        f"# Scribble statistics: {title}",
        "",
        f"{len(rows)} images; labeled pixels per image: mean {100 * fr.mean():.2f} %, "
        f"median {100 * np.median(fr):.2f} %, min {100 * fr.min():.2f} %, "
        f"max {100 * fr.max():.2f} % "
        "(standard 3-px VOC conversion: about 3 %); "
        f"scribbles per image: mean {ns.mean():.2f}, min {ns.min()}, max {ns.max()}.",
        "",
        "## Per class",
        "",
        "| id | class | images | share of labeled pixels | mean % of image where present |",
        "|---:|---|---:|---:|---:|",
    ]
    sizes = np.array([r["size"] for r in rows.values()])
    for c, name in enumerate(names):
        has = pix[:, c] > 0
        if not has.any():
            continue
        mean_pct = 100 * np.mean(pix[has, c] / sizes[has])
        md.append(
            f"| {c} | {name} | {has.sum()} | {100 * pix[:, c].sum() / max(tot, 1):.2f} % "
            f"| {mean_pct:.2f} % |"
        )
    md += [
        "",
        "## Per image",
        "",
        "| image | labeled % | scribbles | classes |",
        "|---|---:|---:|---|",
    ]
    order = sorted(rows, key=lambda k: rows[k]["fraction"])
    shown = order if len(order) <= 40 else order[:20] + order[-20:]
    for i, iid in enumerate(shown):
        if len(order) > 40 and i == 20:
            md.append(f"| ... {len(order) - 40} images ... | | | |")
        r = rows[iid]
        cls = ", ".join(names[c] for c in np.flatnonzero(r["pixels"]))
        md.append(f"| {iid} | {100 * r['fraction']:.2f} | {r['scribbles']} | {cls} |")
    md += ["", "![histograms](scribble_stats.png)", ""]
    (out / "scribble_stats.md").write_text("\n".join(md))

    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    ax[0].hist(100 * fr, bins=min(50, max(5, len(fr) // 4)), color="tab:blue")
    ax[0].axvline(3.0, color="k", ls="--", lw=1, label="≈3 % (standard 3-px)")
    ax[0].set(xlabel="labeled pixels per image (%)", ylabel="images", title=title)
    ax[0].legend()
    ax[1].hist(ns, bins=np.arange(ns.max() + 2) - 0.5, color="tab:green")
    ax[1].set(xlabel="scribbles per image", ylabel="images")
    share = 100 * pix.sum(0) / max(tot, 1)
    ax[2].bar(np.arange(len(names)), share, color="tab:orange")
    ax[2].set(xlabel="class id", ylabel="% of labeled pixels")
    fig.tight_layout()
    fig.savefig(out / "scribble_stats.png", dpi=80)
    plt.close(fig)
    return fr, ns


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--labels", required=True, help="folder/zip of label PNGs, XMLs or txt scribbles"
    )
    p.add_argument("--images", default=None, help="JPEG folder (needed for XML/txt)")
    p.add_argument("--list", default=None, help="split file: only these ids")
    p.add_argument("--classes", choices=sorted(CLASSES), default="voc")
    p.add_argument("--line-width", type=float, default=3.0, help="for XML/txt sources")
    p.add_argument("--limit", type=int, default=0, help="first N images only")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    rows, names = collect(args)
    if not rows:
        raise SystemExit(f"no annotations in {args.labels}")
    fr, ns = write_report(rows, names, args.out, Path(args.labels).name)
    print(
        f"{len(rows)} images: labeled {100 * fr.mean():.2f} % (mean), "
        f"scribbles/image {ns.mean():.2f}; "
        f"wrote {args.out / 'scribble_stats.md'} and {args.out / 'scribble_stats.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
