#!/usr/bin/env python
"""Shorten and/or drop scribbles of a label root (Fig. 3 scribble-length study), writing a new
label root; deterministic per --seed (each file seeded by (seed, file name)).

    # a VOC variant registered as voc_2012_train_aug_scribble_len30 (reads/writes under
    # $DETECTRON2_DATASETS/VOC2012/pascal_2012_scribble[_len30]):
    .venv/bin/python tools/shorten_scribbles.py --voc-variant len30
    .venv/bin/python tools/shorten_scribbles.py --voc-variant drop50
    # any folder of label PNGs:
    .venv/bin/python tools/shorten_scribbles.py --src DIR --dst DIR --length 0.3 --drop 0.5
"""

# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import json
import os
import re
import time

from dfr.data.datasets import VOC_TREE, register_all
from dfr.data.paths import get_datasets_root
from dfr.data.scribbles import transform_label_root

VARIANT_PREFIX = "voc_2012_train_aug_scribble_"


def registered_voc_variants():
    """Suffixes of the registered voc_2012_train_aug_scribble_<variant> datasets (len30, ...),
    the only label roots a config can name."""
    from detectron2.data import DatasetCatalog

    register_all()
    names = [n[len(VARIANT_PREFIX) :] for n in DatasetCatalog.list()
             if n.startswith(VARIANT_PREFIX)]  # fmt: skip
    return sorted(names, key=lambda v: (re.sub(r"\d+", "", v), int(re.sub(r"\D", "", v) or 0)))


def main(argv=None):
    from dfr.cli import HelpFormatter

    ap = argparse.ArgumentParser(description="Shorten / drop scribbles into a new label root.", formatter_class=HelpFormatter)
    ap.add_argument("--voc-variant", help="a registered variant (len0, len30, len50, len70, "
                    "drop10, ..., drop70): VOC scribbles -> the root that dataset reads")
    ap.add_argument("--src", help="folder of scribble label PNGs (255 = unlabeled)")
    ap.add_argument("--dst", help="output folder")
    ap.add_argument("--length", type=float, help="keep this fraction of each scribble (0: a click)")
    ap.add_argument("--drop", type=float, help="remove this fraction of the scribbles")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.voc_variant:
        registered = registered_voc_variants()
        m = re.fullmatch(r"(len|drop)(\d+)", args.voc_variant)
        if not m or args.voc_variant not in registered:
            ap.error(
                f"--voc-variant {args.voc_variant!r} is not a registered dataset variant "
                f"(registered: {', '.join(registered)}); for other fractions use --src, --dst "
                "and --length / --drop"
            )
        root = get_datasets_root()
        args.src = args.src or os.path.join(root, VOC_TREE["scribble"])
        args.dst = args.dst or f"{os.path.join(root, VOC_TREE['scribble'])}_{args.voc_variant}"
        setattr(args, "length" if m.group(1) == "len" else "drop", int(m.group(2)) / 100)
    if not (args.src and args.dst) or (args.length is None and args.drop is None):
        ap.error("give --voc-variant, or --src, --dst and at least one of --length / --drop")
    t = time.time()
    stats = transform_label_root(args.src, args.dst, length=args.length, drop=args.drop,
                                 seed=args.seed)  # fmt: skip
    stats["seconds"] = round(time.time() - t, 1)
    if stats["length"]:
        stats["kept_length_fraction"] = round(stats["kept_length"] / stats["length"], 4)
    print(f"{args.src} -> {args.dst}: {json.dumps(stats)}")


if __name__ == "__main__":
    main()
