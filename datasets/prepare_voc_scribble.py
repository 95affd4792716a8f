#!/usr/bin/env python
"""Prepare PASCAL VOC 2012 + SBD + ScribbleSup scribbles for DFR (datasets/README.md).

Writes (the tree read by dfr.data.datasets, see datasets/README.md):

    <out>/JPEGImages/<id>.jpg               links (or copies) to the VOC JPEGs
    <out>/SegmentationClassAug/<id>.png     dense GT: VOC SegmentationClass, else SBD cls/<id>.mat
    <out>/pascal_2012_scribble/<id>.png     ScribbleSup scribbles, 3-px lines (dfr.data.scribbles)
    <out>/ImageSets/Segmentation/{train_aug,val,test}.txt

train_aug = (SBD train + SBD val + VOC train) - VOC val (10,582 ids). Counts, image/label
sizes and label values are verified, and every JPEG is decoded (``--fast``: headers only);
every problem is listed at the end and makes the exit status 1. Re-running skips outputs that
exist and are valid (``--force`` rewrites them); ``<out>/prepare_manifest.json`` records the
options, and a re-run with other options stops, naming them, unless ``--force`` is given.

Example:
    python datasets/prepare_voc_scribble.py --voc-root VOCdevkit/VOC2012 \
        --sbd-root benchmark_RELEASE/dataset --scribbles scribble_annotation/pascal_2012
"""

from __future__ import annotations

# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import sys
from pathlib import Path

import numpy as np

from dfr.data.labels import read_label
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
from dfr.data.scribbles import ScribbleError, open_scribble_source, voc_tag_map

EXPECTED = {"train_aug": 10582, "val": 1449, "test": 1456}
NUM_CLASSES = 21
VALID_IDS = np.array(list(range(NUM_CLASSES)) + [255])
SCRIPT = "prepare_voc_scribble.py"
# Options that change what is written: a re-run with other values needs --force.
PATH_OPTIONS = ("voc_root", "voc_test_root", "sbd_root", "scribbles", "out")
COMPARED = ("--voc-root", "--voc-test-root", "--sbd-root", "--scribbles", "--line-width",
            "--point-radius", "--link")  # fmt: skip


def load_sbd_mat(path: Path) -> np.ndarray:
    """SBD ``cls/<id>.mat`` -> uint8 (H, W) ids (GTcls.Segmentation; 0 background, 1..20)."""
    import scipy.io

    mat = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    if "GTcls" not in mat:
        raise ValueError(
            f"{path}: no GTcls struct (keys: {[k for k in mat if not k.startswith('__')]})"
        )
    gt = mat["GTcls"]
    seg = gt.Segmentation if hasattr(gt, "Segmentation") else gt["Segmentation"]
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise ValueError(f"{path}: GTcls.Segmentation has shape {seg.shape}, expected (H, W)")
    return seg.astype(np.uint8)


def parse_args(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument(
        "--voc-root",
        required=True,
        type=Path,
        help="VOCdevkit/VOC2012 of VOCtrainval_11-May-2012.tar",
    )
    p.add_argument(
        "--voc-test-root",
        type=Path,
        default=None,
        help="VOCdevkit/VOC2012 of VOC2012test.tar (default: --voc-root)",
    )
    p.add_argument(
        "--sbd-root",
        required=True,
        type=Path,
        help="benchmark_RELEASE/dataset of SBD (cls/, img/, train.txt, val.txt)",
    )
    p.add_argument(
        "--scribbles",
        required=True,
        type=Path,
        help="ScribbleSup XML folder/zip (scribble_annotation/pascal_2012), a folder/zip "
        "of ready PNGs (pascal_2012_scribble.zip) or of txt scribbles",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output root (default: $DETECTRON2_DATASETS/VOC2012)"
    )
    add_output_options(p, counts="train_aug=3,val=1,test=1 (default 10582/1449/1456)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    out = a.out = a.out or default_root() / "VOC2012"
    test_root = a.voc_test_root = a.voc_test_root or a.voc_root
    outputs = [out / d for d in ("SegmentationClassAug", "pascal_2012_scribble")]
    run = PrepareManifest(out, SCRIPT, run_options(a, PATH_OPTIONS), COMPARED, a.force, outputs)
    if run.stopped():
        return 2
    run.started()
    pr = Problems()
    point_radius = a.point_radius if a.point_radius >= 0 else None

    # ---- split lists
    lists = {
        "voc train": a.voc_root / "ImageSets/Segmentation/train.txt",
        "voc val": a.voc_root / "ImageSets/Segmentation/val.txt",
        "sbd train": a.sbd_root / "train.txt",
        "sbd val": a.sbd_root / "val.txt",
    }
    ids = {}
    for k, path in lists.items():
        if not path.is_file():
            pr.error("missing list", f"{k}: {path}")
            ids[k] = []
        else:
            ids[k] = read_ids(path)
    test_list = test_root / "ImageSets/Segmentation/test.txt"
    if test_list.is_file():
        test_ids = read_ids(test_list)
    else:
        test_ids = None
        pr.note(
            "no test split",
            f"{test_list} not found (extract VOC2012test.tar); test.txt not written",
        )
    val_ids = sorted(set(ids["voc val"]))
    train_aug = sorted(
        (set(ids["sbd train"]) | set(ids["sbd val"]) | set(ids["voc train"])) - set(val_ids)
    )
    splits = {"train_aug": train_aug, "val": val_ids}
    if test_ids is not None:
        splits["test"] = sorted(set(test_ids))

    # ---- images (decoded in full unless --fast)
    sizes = {}
    jpeg_dir = out / "JPEGImages"
    for split, split_ids in splits.items():
        root = test_root if split == "test" else a.voc_root
        srcs = []
        for iid in split_ids:
            cands = [root / "JPEGImages" / f"{iid}.jpg", a.sbd_root / "img" / f"{iid}.jpg"]
            src = next((c for c in cands if c.is_file()), None)
            if src is None:
                pr.error("missing image", f"{iid} ({split}): none of {[str(c) for c in cands]}")
            else:
                srcs.append((iid, src))
        sizes.update(place_images(srcs, jpeg_dir, a.fast, a.link, pr, f"images {split}"))

    # ---- dense labels (train_aug + val)
    seg_dir = out / "SegmentationClassAug"
    n_voc = n_sbd = 0
    for iid in tqdm(train_aug + val_ids, desc="dense labels", unit="img"):
        if iid not in sizes:
            continue
        dst = seg_dir / f"{iid}.png"
        if not a.force and existing_label_ok(dst, sizes[iid], VALID_IDS):
            continue
        voc_png = a.voc_root / "SegmentationClass" / f"{iid}.png"
        sbd_mat = a.sbd_root / "cls" / f"{iid}.mat"
        try:
            if voc_png.is_file():
                lab, src, n_voc = read_label(voc_png), voc_png, n_voc + 1
            elif sbd_mat.is_file():
                lab, src, n_sbd = load_sbd_mat(sbd_mat), sbd_mat, n_sbd + 1
            else:
                pr.error("missing dense label", f"{iid}: neither {voc_png} nor {sbd_mat}")
                continue
        except Exception as e:
            pr.error("unreadable dense label", str(e))
            continue
        if lab.shape != sizes[iid]:
            pr.error("size mismatch", f"{src}: label {lab.shape} != image {sizes[iid]}")
            continue
        bad = np.setdiff1d(np.unique(lab), VALID_IDS)
        if bad.size:
            pr.error("bad label values", f"{src}: values {bad.tolist()} outside 0..20, 255")
            continue
        write_png(dst, lab)
    pr.note(
        "dense label sources (written this run)",
        f"VOC SegmentationClass: {n_voc}, SBD cls: {n_sbd}",
    )

    # ---- scribbles (train_aug)
    scr_dir = out / "pascal_2012_scribble"
    try:
        source = open_scribble_source(a.scribbles)
    except (FileNotFoundError, ScribbleError) as e:
        pr.error("scribble source", str(e))
        source = None
    fractions, n_empty, n_clamped, n_dots = [], 0, 0, 0
    if source is not None:
        tag_map = voc_tag_map()
        unused = sorted(set(source.ids()) - set(train_aug))
        if unused:
            pr.note("scribble files not in train_aug (not converted)", ", ".join(unused[:20]))
        for iid in tqdm(train_aug, desc=f"scribbles ({source.kind})", unit="img"):
            if iid not in sizes:
                continue
            dst = scr_dir / f"{iid}.png"
            if iid not in source:
                pr.error("missing scribble", f"{iid}: not in {a.scribbles}")
                continue
            if not a.force and existing_label_ok(dst, sizes[iid], VALID_IDS):
                continue
            h, w = sizes[iid]
            try:
                lab, ss = source.load(iid, h, w, tag_map, NUM_CLASSES, a.line_width, point_radius)
            except (ScribbleError, ValueError) as e:
                pr.error("unusable scribble", str(e))
                continue
            if ss is not None:
                n_empty += ss.num_empty
                for s in ss:
                    p = s.points
                    n_clamped += int(
                        (
                            (p[:, 0] < 0) | (p[:, 0] > w - 1) | (p[:, 1] < 0) | (p[:, 1] > h - 1)
                        ).sum()
                    )
                    n_dots += int(np.all(p == p[:1]))
            fractions.append(float((lab != 255).mean()))
            write_png(dst, lab)
    if n_empty:
        pr.note("empty polygons skipped", str(n_empty))
    if n_clamped:
        pr.note("points outside the image clamped", str(n_clamped))
    if n_dots:
        pr.note("single-point scribbles drawn as dots", f"{n_dots} (radius {point_radius})")
    if fractions:
        pr.note(
            "labeled pixels (written this run)",
            f"mean {100 * np.mean(fractions):.2f} % over {len(fractions)} images "
            "(standard 3-px conversion: about 3 %)",
        )

    # ---- lists + counts
    return finish_splits(a, splits, out / "ImageSets/Segmentation", out, EXPECTED, pr, run)


if __name__ == "__main__":
    sys.exit(main())
