#!/usr/bin/env python
"""Prepare PASCAL Context (59 / 60 classes) + ScribbleSup Context scribbles for DFR.

Writes (the tree read by dfr.data.datasets, see datasets/README.md):

    <out>/JPEGImages/<id>.jpg                   links to the VOC2010 JPEGs
    <out>/SegmentationClassContext60/<id>.png   0 = background, 1..59 = CONTEXT59_CLASSES
    <out>/SegmentationClassContext59/<id>.png   context60_to_59 of the above (background -> 255)
    <out>/scribble_context60/<id>.png           ScribbleSup Context scribbles (3-px lines), 255 else
    <out>/scribble_context59/<id>.png           context60_to_59 of the above
    <out>/ImageSets/{train,val}.txt             4,998 / 5,105 ids (VOC2010 Main train / val)

Dense labels come from the official 459-class ``trainval/<id>.mat`` files (``LabelMap``) and
``labels.txt``: each of the 459 names is mapped through the 59-class list (with the synonyms
of dfr.data.classes.CONTEXT_TAG_SYNONYMS); every other class and LabelMap 0 become background.
Scribble tags go through the same name map; tags that are Context classes outside the 59
are background (60) / unlabeled (59); any other tag is an error naming the file.

Every JPEG is decoded (``--fast``: headers only). Re-running keeps outputs that exist and are
valid (``--force`` rewrites them); ``<out>/prepare_manifest.json`` records the options, and a
re-run with other options stops, naming them, unless ``--force`` is given.

Example:
    python datasets/prepare_context_scribble.py --voc2010-root VOCdevkit/VOC2010 \
        --context-root trainval --labels-txt labels.txt \
        --scribbles <ScribbleSup Context XML folder or zip>
"""

from __future__ import annotations

# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import sys
from pathlib import Path

import numpy as np

from dfr.data import scribbles as sio
from dfr.data.classes import CONTEXT59_CLASSES, context60_to_59
from dfr_tools.prepare import (
    PrepareManifest,
    Problems,
    add_output_options,
    default_root,
    existing_label_ok,
    finish_splits,
    place_images,
    read_ids,
    run_options,
    tqdm,
    write_png,
)

EXPECTED = {"train": 4998, "val": 5105}
VALID60 = np.array(list(range(60)) + [255])
SCRIPT = "prepare_context_scribble.py"
PATH_OPTIONS = ("voc2010_root", "context_root", "labels_txt", "scribbles", "train_list",
                "val_list", "out")  # fmt: skip
# Options that change what is written: a re-run with other values needs --force.
COMPARED = ("--voc2010-root", "--context-root", "--labels-txt", "--scribbles", "--train-list",
            "--val-list", "--line-width", "--point-radius", "--link")  # fmt: skip


def lut_459_to_60(labels: dict) -> np.ndarray:
    """{459 id: name} -> uint8 lookup table (65536,) from LabelMap values to 60-class ids."""
    lut = np.zeros(65536, dtype=np.uint8)  # 0 (unlabeled) and classes outside the 59 -> 0
    found = set()
    for k, name in labels.items():
        idx = sio.context59_index(name)
        if idx is not None:
            lut[k] = idx + 1
            found.add(idx)
    missing = [CONTEXT59_CLASSES[i] for i in range(59) if i not in found]
    if missing:
        raise ValueError(f"labels.txt lacks Context-59 classes {missing}: wrong file?")
    return lut


def load_context_mat(path: Path) -> np.ndarray:
    import scipy.io

    mat = scipy.io.loadmat(str(path))
    if "LabelMap" not in mat:
        raise ValueError(
            f"{path}: no LabelMap (keys: {[k for k in mat if not k.startswith('__')]})"
        )
    lm = np.asarray(mat["LabelMap"])
    if lm.ndim != 2:
        raise ValueError(f"{path}: LabelMap has shape {lm.shape}, expected (H, W)")
    return lm.astype(np.int64)


def parse_args(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument(
        "--voc2010-root",
        required=True,
        type=Path,
        help="VOCdevkit/VOC2010 of VOCtrainval_03-May-2010.tar (JPEGImages, ImageSets/Main)",
    )
    p.add_argument(
        "--context-root",
        required=True,
        type=Path,
        help="folder of the official 459-class <id>.mat files (trainval/ of trainval.tar.gz)",
    )
    p.add_argument(
        "--labels-txt",
        type=Path,
        default=None,
        help="the official labels.txt (default: <context-root>/../labels.txt or inside it)",
    )
    p.add_argument(
        "--scribbles",
        type=Path,
        default=None,
        help="ScribbleSup Context XML folder or zip (omit to write dense labels only)",
    )
    p.add_argument(
        "--train-list", type=Path, default=None, help="default: VOC2010 ImageSets/Main/train.txt"
    )
    p.add_argument(
        "--val-list", type=Path, default=None, help="default: VOC2010 ImageSets/Main/val.txt"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="default: $DETECTRON2_DATASETS/PascalContext"
    )
    add_output_options(p, counts="train=2,val=1 (default 4998/5105)")
    return p.parse_args(argv)


def _both_done(dir60: Path, dir59: Path, iid: str, size) -> bool:
    """Idempotent re-runs: the 60- and the 59-class PNG of `iid` exist and are valid."""
    return existing_label_ok(dir60 / f"{iid}.png", size, VALID60) and existing_label_ok(
        dir59 / f"{iid}.png", size
    )


def main(argv=None) -> int:
    a = parse_args(argv)
    out = a.out = a.out or default_root() / "PascalContext"
    pr = Problems()
    point_radius = a.point_radius if a.point_radius >= 0 else None

    labels_txt = a.labels_txt
    if labels_txt is None:
        cands = [a.context_root.parent / "labels.txt", a.context_root / "labels.txt"]
        labels_txt = a.labels_txt = next((c for c in cands if c.is_file()), cands[0])
    for name in ("train", "val"):  # record the lists actually read
        if getattr(a, f"{name}_list") is None:
            setattr(a, f"{name}_list", a.voc2010_root / "ImageSets/Main" / f"{name}.txt")
    outputs = [out / d for d in ("SegmentationClassContext60", "scribble_context60")]
    run = PrepareManifest(out, SCRIPT, run_options(a, PATH_OPTIONS), COMPARED, a.force, outputs)
    if run.stopped():
        return 2
    try:
        names459 = sio.read_context_labels_txt(labels_txt)
        lut = lut_459_to_60(names459)
    except (OSError, ValueError) as e:
        print(f"cannot use labels.txt: {e}", file=sys.stderr)
        return 2
    run.started()

    splits = {}
    for name, path in (("train", a.train_list), ("val", a.val_list)):
        if not path.is_file():
            pr.error("missing list", f"{name}: {path}")
            splits[name] = []
        else:
            splits[name] = sorted(set(read_ids(path)))

    sizes = {}
    for split, ids in splits.items():
        srcs = []
        for iid in ids:
            src = a.voc2010_root / "JPEGImages" / f"{iid}.jpg"
            if not src.is_file():
                pr.error("missing image", f"{iid} ({split}): {src}")
            else:
                srcs.append((iid, src))
        sizes.update(place_images(srcs, out / "JPEGImages", a.fast, a.link, pr, f"images {split}"))

    d60, d59 = out / "SegmentationClassContext60", out / "SegmentationClassContext59"
    for iid in tqdm(splits["train"] + splits["val"], desc="dense labels", unit="img"):
        if iid not in sizes:
            continue
        if not a.force and _both_done(d60, d59, iid, sizes[iid]):
            continue
        src = a.context_root / f"{iid}.mat"
        if not src.is_file():
            pr.error("missing dense label", f"{iid}: {src}")
            continue
        try:
            lm = load_context_mat(src)
        except Exception as e:
            pr.error("unreadable dense label", str(e))
            continue
        if lm.shape != sizes[iid]:
            pr.error("size mismatch", f"{src}: label {lm.shape} != image {sizes[iid]}")
            continue
        if lm.min() < 0 or lm.max() > max(names459):
            pr.error("bad label values", f"{src}: LabelMap values outside 0..{max(names459)}")
            continue
        lab60 = lut[lm]
        write_png(d60 / f"{iid}.png", lab60)
        write_png(d59 / f"{iid}.png", context60_to_59(lab60))

    if a.scribbles is not None:
        s60, s59 = out / "scribble_context60", out / "scribble_context59"
        tag_map = sio.context_tag_map(60, all_names=names459.values())
        fractions, n_empty = [], 0
        try:
            source = sio.open_scribble_source(a.scribbles)
        except (FileNotFoundError, sio.ScribbleError) as e:
            pr.error("scribble source", str(e))
            source = None
        for iid in tqdm(splits["train"] if source else [], desc="scribbles", unit="img"):
            if iid not in sizes:
                continue
            if iid not in source:
                pr.error("missing scribble", f"{iid}: not in {a.scribbles}")
                continue
            if not a.force and _both_done(s60, s59, iid, sizes[iid]):
                continue
            h, w = sizes[iid]
            try:
                lab, ss = source.load(iid, h, w, tag_map, 60, a.line_width, point_radius)
            except (sio.ScribbleError, ValueError) as e:
                pr.error("unusable scribble", str(e))
                continue
            n_empty += ss.num_empty if ss is not None else 0
            fractions.append(float((lab != 255).mean()))
            write_png(s60 / f"{iid}.png", lab)
            write_png(s59 / f"{iid}.png", context60_to_59(lab))
        if n_empty:
            pr.note("empty polygons skipped", str(n_empty))
        if fractions:
            pr.note(
                "labeled pixels, 60 classes (written this run)",
                f"mean {100 * np.mean(fractions):.2f} % over {len(fractions)} images",
            )
    else:
        pr.note("no scribbles", "--scribbles not given: only dense labels written")

    return finish_splits(a, splits, out / "ImageSets", out, EXPECTED, pr, run)


if __name__ == "__main__":
    sys.exit(main())
