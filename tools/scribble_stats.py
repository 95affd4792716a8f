#!/usr/bin/env python
"""Scribble statistics: labeled-pixel fraction per image and per class, scribbles per image,
and (dfr.data.scribbles.faithfulness) lengths, boundary nearness, objects hit and crossings
against the dense ground truth (--dense), beside scribbles simulated from it (--styles).

Reads any form dfr.data.scribbles reads (folder or zip of label PNGs, ScribbleSup XMLs or
txt scribbles; XML/txt need --images for the JPEG sizes and are drawn with --line-width).
Writes <out>/scribble_stats.md (tables) and <out>/scribble_stats.png (histograms).

Scribbles per image: the number of polylines for XML/txt; for PNGs, the number of
8-connected components per class (crossing scribbles of one class count once, so it is a
lower bound). The standard 3-px VOC conversion labels about 3 % of the pixels.

    python tools/scribble_stats.py --labels datasets/VOC2012/pascal_2012_scribble \
        --list datasets/VOC2012/ImageSets/Segmentation/train_aug.txt --out output/scribble_stats

Real scribbles against the styles simulated from the ground truth (docs/scribble_faithfulness.md):

    python tools/scribble_stats.py --labels tests/fixtures/real_voc/scribble_png \
        --dense tests/fixtures/real_voc/gt_png --styles s4,cdsp,skeleton --seeds 10 --out out
"""

from __future__ import annotations

# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import sys
from pathlib import Path

from dfr.data import scribbles as sio
from dfr.data.classes import CONTEXT59_CLASSES, CONTEXT60_CLASSES, VOC_CLASSES
from dfr.data.images import image_hw
from dfr_tools.prepare import image_stats, write_report
from dfr.data.synthetic import SYNTHETIC_CLASSES

CLASSES = {"voc": VOC_CLASSES, "context59": CONTEXT59_CLASSES, "context60": CONTEXT60_CLASSES,
           "synthetic": SYNTHETIC_CLASSES}


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
        if args.classes == "synthetic":
            raise SystemExit(f"{args.labels}: XML scribbles carry VOC / Context tags; use "
                             "--classes voc, context59 or context60")
        tag_map = (
            sio.voc_tag_map()
            if args.classes == "voc"
            else sio.context_tag_map(60 if args.classes == "context60" else 59, unknown="ignore")
        )
    else:
        tag_map = None
    from tqdm import tqdm

    from dfr.data.labels import read_label
    rows, maps = {}, {}
    for iid in tqdm(ids, desc="scribble stats", unit="img"):
        if src.kind == "png":
            lab = read_label(src.read_bytes(iid), source=src.name_of(iid))
            n = None
        else:
            if args.images is None:
                raise SystemExit(
                    f"--images is needed to size the {src.kind} scribbles of {args.labels}"
                )
            h, w = image_hw(Path(args.images) / f"{iid}.jpg")
            lab, ss = src.load(iid, h, w, tag_map, len(names), args.line_width)
            n = len(ss)
        rows[iid] = image_stats(lab, len(names), n)
        maps[iid] = lab
    return rows, names, maps


def main(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument(
        "--labels", required=True, help="folder/zip of label PNGs, XMLs or txt scribbles"
    )
    p.add_argument("--images", default=None, help="JPEG folder (needed for XML/txt)")
    p.add_argument("--list", default=None, help="split file: only these ids")
    p.add_argument("--classes", choices=sorted(CLASSES), default="voc")
    p.add_argument("--line-width", type=float, default=3.0, help="for XML/txt sources")
    p.add_argument("--limit", type=int, default=0, help="first N images only")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--dense", default=None, help="folder of dense ground-truth PNGs <id>.png")
    p.add_argument("--styles", default="", help="simulated styles to compare, e.g. s4,cdsp")
    p.add_argument("--seeds", type=int, default=5, help="simulations per image and style")
    p.add_argument("--sim-width", type=int, default=3, help="simulated scribble width (px)")
    p.add_argument("--sim-scale", default="1.0",
                   help="sizes of the simulated styles: 1.0, a factor or auto (their lengths x s, "
                        "areas x s^2, s from each image's size)")  # fmt: skip
    p.add_argument("--name", default="real", help="row name of the --labels scribbles")
    args = p.parse_args(argv)
    styles = [s for s in args.styles.split(",") if s]
    if styles and not args.dense:
        raise SystemExit("--styles needs --dense (the ground truth to simulate from)")
    rows, names, maps = collect(args)
    if not rows:
        raise SystemExit(f"no annotations in {args.labels}")
    fr, ns = write_report(rows, names, args.out, Path(args.labels).name)
    from dfr.data.scribbles.faithfulness import compare_report

    section = compare_report(
        maps, names, dense_dir=args.dense, styles=styles, seeds=args.seeds,
        width=args.sim_width, reference=args.name, scale=args.sim_scale,
    )  # fmt: skip
    md = args.out / "scribble_stats.md"
    md.write_text(md.read_text() + "\n" + "\n".join(section))
    print("\n".join(section))
    print(
        f"{len(rows)} images: labeled {100 * fr.mean():.2f} % (mean), "
        f"scribbles/image {ns.mean():.2f}; "
        f"wrote {args.out / 'scribble_stats.md'} and {args.out / 'scribble_stats.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
