#!/usr/bin/env python
"""Prepare CDSP's simulated scribble benchmarks, ScribbleCOCO and ScribbleCityscapes ("Scribble
Hides Class", AAAI 2024; release and generator: https://github.com/Zxl19990529/ScribbleSimulation)
for DFR (docs/datasets_simulated.md).

The release is a VOC-like tree (its generator writes every map with ``cv2.imwrite`` of a
3-channel array, the class value in all three channels):

    <release>/ImageSets/SegmentationAug/{train,val}.txt   ids, one per line
    <release>/JPEGImages/<id>.jpg
    <release>/SegmentationClassAug/<id>.png               dense: 0 = background, 1..K things
    <release>/*scribble_r{1,2,3}/<id>.png                 three simulated scribble sets (rounds);
                                                          255 = no scribble
    K = 80 (ScribbleCOCO: COCO's things in category-id order), 8 (ScribbleCityscapes: person,
    rider, car, truck, bus, train, motorcycle, bicycle)

Writes $DETECTRON2_DATASETS/{ScribbleCOCO,ScribbleCityscapes}/ (dfr.data.datasets
.public_scribbles registers scribble_<coco|cityscapes>_train_cdsp_r<k>, _train_full and
_val_sem_seg):

    JPEGImages/<id>.jpg (links), SegmentationClassAug/<id>.png, scribble_r<k>/<id>.png
    (8-bit single-channel), ImageSets/{train,val}.txt

Checks as the other prepare scripts (channels, values, sizes, a scribble for every train id);
problems are listed at the end and make the exit status 1; --force rewrites existing outputs.

    python datasets/prepare_cdsp_scribbles.py --dataset cityscapes --release ScribbleCityscapes
"""

from __future__ import annotations

# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from dfr.data.datasets.public_scribbles import (
    CDSP_ROUNDS,
    CDSP_TREES,
    cdsp_classes,
    read_released_label,
)
from dfr_tools.prepare import (
    PrepareManifest,
    add_output_options,
    Problems,
    default_root,
    existing_label_ok,
    place_images,
    read_ids,
    run_options,
    tqdm,
    write_ids,
    write_png,
)

SCRIPT = "prepare_cdsp_scribbles.py"
PATH_OPTIONS = ("release", "out")
COMPARED = ("--dataset", "--release", "--link")


def round_folders(release: Path):
    """{k: folder} of the scribble sets in the release (``coco2014_train_scribble_r1``,
    ``cityscapes_scribble_r1`` / ``cityscape_scribble_r1``, ...)."""
    found = {}
    for d in sorted(release.iterdir()):
        m = re.fullmatch(r".*scribble_r(\d)", d.name)
        if d.is_dir() and m and int(m.group(1)) in CDSP_ROUNDS:
            found[int(m.group(1))] = d
    return found


def parse_args(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(CDSP_TREES))
    p.add_argument("--release", required=True, type=Path, help="the extracted release folder")
    p.add_argument("--out", type=Path, default=None,
                   help="default: $DETECTRON2_DATASETS/ScribbleCOCO or /ScribbleCityscapes")
    add_output_options(p, raster=False)
    return p.parse_args(argv)


def _convert(src: Path, dst: Path, size, valid, pr: Problems, force: bool, what: str) -> bool:
    if not force and existing_label_ok(dst, size, valid):
        return True
    if not src.is_file():
        pr.error(f"missing {what}", str(src))
        return False
    try:
        lab = read_released_label(src.read_bytes(), str(src))
    except Exception as e:  # PIL raises several types for broken files
        pr.error(f"unreadable {what}", f"{src}: {e}")
        return False
    if lab.shape != size:
        pr.error("size mismatch", f"{src}: {lab.shape} != image {size}")
        return False
    bad = np.setdiff1d(np.unique(lab), valid)
    if bad.size:
        pr.error("bad label values", f"{src}: values {bad.tolist()[:10]} outside "
                 f"0..{len(valid) - 2}, 255")  # fmt: skip
        return False
    write_png(dst, lab)
    return True


def main(argv=None) -> int:
    a = parse_args(argv)
    out = a.out = a.out or default_root() / CDSP_TREES[a.dataset]
    outputs = [out / d for d in ["SegmentationClassAug"] + [f"scribble_r{k}" for k in CDSP_ROUNDS]]
    run = PrepareManifest(out, SCRIPT, run_options(a, PATH_OPTIONS), COMPARED, a.force, outputs)
    if run.stopped():
        return 2
    run.started()
    pr = Problems()
    valid = np.array(list(range(len(cdsp_classes(a.dataset)))) + [255])
    splits = {}
    for split in ("train", "val"):
        path = a.release / "ImageSets" / "SegmentationAug" / f"{split}.txt"
        if path.is_file():
            splits[split] = read_ids(path)
        else:
            pr.error("missing list", str(path))
    rounds = round_folders(a.release) if a.release.is_dir() else {}
    if not rounds:
        pr.error("no scribbles", f"no *scribble_r1..r3 folder in {a.release}")
    srcs = [(i, a.release / "JPEGImages" / f"{i}.jpg") for ids in splits.values() for i in ids]
    missing = [(i, p) for i, p in srcs if not p.is_file()]
    for i, p in missing:
        pr.error("missing image", str(p))
    sizes = place_images([s for s in srcs if s not in missing], out / "JPEGImages", a.fast,
                         a.link, pr, "images")  # fmt: skip
    for split, ids in splits.items():
        for iid in tqdm(ids, desc=f"{split} labels", unit="img"):
            if iid not in sizes:
                continue
            _convert(a.release / "SegmentationClassAug" / f"{iid}.png",
                     out / "SegmentationClassAug" / f"{iid}.png", sizes[iid], valid, pr,
                     a.force, "dense label")  # fmt: skip
            if split != "train":
                continue
            for k, folder in rounds.items():
                _convert(folder / f"{iid}.png", out / f"scribble_r{k}" / f"{iid}.png",
                         sizes[iid], valid, pr, a.force, f"scribble r{k}")  # fmt: skip
        write_ids(out / "ImageSets" / f"{split}.txt", ids)
    pr.note("scribble rounds", ", ".join(f"r{k}: {d.name}" for k, d in rounds.items()) or "none")
    print(f"wrote {out}: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    run.finished()
    return pr.report()


if __name__ == "__main__":
    sys.exit(main())
