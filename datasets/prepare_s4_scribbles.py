#!/usr/bin/env python
"""Prepare the released Scribbles4All scribbles (s4Pascal, s4ADE20K, s4Cityscapes; NeurIPS 2024
D&B, https://github.com/wbkit/Scribbles4All) for DFR (docs/datasets_simulated.md).

The release (its generator s4ScribbleGenerator/create_scribble.py writes each file with
``cv2.imwrite`` of a 3-channel copy of the dense label's values): one ``<name>.png`` per
dense label file, named as it, the class value in all three channels, plus a ``<name>.h5``
with the polylines (not read here):

    s4Pascal.tar.gz -> <id>.png                          VOC ids 0..20, 255 = no scribble
    s4ADE20K/scribbles/training/ADE_train_*.png          ADEChallengeData2016 values 1..150,
                                                         0 = no scribble
    s4Cityscapes/scribbles/gtFine/train/<city>/*.png     gtFine labelIds, 0 = no scribble

Writes the project's label format (8-bit single-channel, the class ids of the evaluation set,
255 = unlabeled) next to the dense data the registered names read (dfr.data.datasets
.public_scribbles):

    pascal      VOC2012/s4_scribble/<id>.png   (after prepare_voc_scribble.py)
    ade20k      ADEChallengeData2016/s4_scribbles_detectron2/training/<name>.png
    cityscapes  cityscapes/s4_scribbles/train/<city>/<key>_gtFine_labelTrainIds.png
    (under $DETECTRON2_DATASETS, or --root)

--scribbles takes folders and/or the .tar / .tar.gz archives themselves (several at once: the
per-city tarballs). Every label is checked (single channel or equal channels, known values,
the image's size, an image for it; pascal: a scribble for every train_aug image); problems are
listed at the end and make the exit status 1. Re-running keeps valid outputs (--force
rewrites); ``prepare_manifest.json`` in the output folder records the options.

    python datasets/prepare_s4_scribbles.py --dataset pascal --scribbles s4Pascal.tar.gz
    python datasets/prepare_s4_scribbles.py --dataset cityscapes \\
        --scribbles s4Cityscapes/scribbles/gtFine/train/*.tar.gz
"""

from __future__ import annotations

# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import sys
import tarfile
from pathlib import Path
from typing import Callable, Dict, Iterable, Tuple

import numpy as np

from dfr.data.datasets.public_scribbles import S4_TREES, decode_s4, read_released_label
from dfr.data.images import image_hw
from dfr_tools.prepare import (
    PrepareManifest,
    Problems,
    default_root,
    existing_label_ok,
    read_ids,
    run_options,
    tqdm,
    write_png,
)

SCRIPT = "prepare_s4_scribbles.py"
PATH_OPTIONS = ("root",)  # --scribbles (a list) is resolved in main
COMPARED = ("--dataset", "--scribbles")
# Values a released file may hold (anything else is reported): the classes + "no scribble".
RELEASED_VALUES = {
    "pascal": set(range(21)) | {255},
    "ade20k": set(range(151)),
    "cityscapes": set(range(34)),  # labelIds 0..33
}
CLASS_COUNT = {"pascal": 21, "ade20k": 150, "cityscapes": 19}


def iter_pngs(sources: Iterable[Path]) -> Iterable[Tuple[str, str, Callable[[], bytes]]]:
    """(relative path, shown name, reader) of every .png in folders and tar archives."""
    for src in sources:
        if src.is_dir():
            for p in sorted(src.rglob("*.png")):
                yield p.relative_to(src).as_posix(), str(p), p.read_bytes
        elif src.is_file() and tarfile.is_tarfile(src):
            with tarfile.open(src) as tar:
                for m in tar:
                    if m.isfile() and m.name.endswith(".png"):
                        data = tar.extractfile(m).read()
                        yield m.name, f"{src}:{m.name}", (lambda d=data: d)
        else:
            raise FileNotFoundError(f"--scribbles {src}: not a folder or a tar archive")


def target(dataset: str, root: Path, rel: str) -> Tuple[str, Path, Path]:
    """(key, image path, output label path) of a released file at relative path `rel`."""
    t = S4_TREES[dataset]
    stem = Path(rel).stem
    if dataset == "pascal":
        return stem, root / t["images"] / f"{stem}.jpg", root / t["labels"] / f"{stem}.png"
    if dataset == "ade20k":
        return stem, root / t["images"] / f"{stem}.jpg", root / t["labels"] / f"{stem}.png"
    parts = stem.split("_")
    if len(parts) < 3:
        raise ValueError(f"{rel}: not a Cityscapes name <city>_<seq>_<frame>_...")
    key, city = "_".join(parts[:3]), parts[0]
    return (key, root / t["images"] / city / f"{key}_leftImg8bit.png",
            root / t["labels"] / city / f"{key}_gtFine_labelTrainIds.png")  # fmt: skip


def parse_args(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(S4_TREES))
    p.add_argument("--scribbles", required=True, type=Path, nargs="+",
                   help="the extracted release folder(s) and/or its .tar(.gz) archives")
    p.add_argument("--root", type=Path, default=None,
                   help="datasets root holding the dense data (default: $DETECTRON2_DATASETS)")
    p.add_argument("--force", action="store_true", help="rewrite existing outputs")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    root = a.root = a.root or default_root()
    out = root / S4_TREES[a.dataset]["labels"]
    options = run_options(a, PATH_OPTIONS)
    options["--scribbles"] = sorted(str(Path(s).resolve()) for s in a.scribbles)
    run = PrepareManifest(out, SCRIPT, options, COMPARED, a.force, [out])
    if run.stopped():
        return 2
    run.started()
    pr = Problems()
    allowed = np.array(sorted(RELEASED_VALUES[a.dataset]))
    valid_out = np.array(list(range(CLASS_COUNT[a.dataset])) + [255])
    seen: Dict[str, str] = {}
    fractions, kept = [], 0
    try:
        files = list(iter_pngs(a.scribbles))
    except (FileNotFoundError, tarfile.TarError) as e:
        pr.error("scribble source", str(e))
        files = []
    for rel, shown, read in tqdm(files, desc=f"s4 {a.dataset}", unit="img"):
        try:
            key, img, dst = target(a.dataset, root, rel)
        except ValueError as e:
            pr.error("unexpected file name", str(e))
            continue
        if key in seen:
            pr.error("duplicate", f"{shown} and {seen[key]} are both {key}")
            continue
        seen[key] = shown
        if not img.is_file():
            pr.error("missing image", f"{key}: {img} (prepare the dense dataset first)")
            continue
        size = image_hw(img)
        if not a.force and existing_label_ok(dst, size, valid_out):
            kept += 1
            continue
        try:
            values = read_released_label(read(), shown)
        except Exception as e:  # PIL raises several types for broken files
            pr.error("unreadable scribble", f"{shown}: {e}")
            continue
        if values.shape != size:
            pr.error("size mismatch", f"{shown}: {values.shape} != image {size} ({img})")
            continue
        bad = np.setdiff1d(np.unique(values), allowed)
        if bad.size:
            pr.error("bad label values", f"{shown}: values {bad.tolist()[:10]} not in the "
                     f"{a.dataset} release's range")  # fmt: skip
            continue
        lab = decode_s4(a.dataset, values)
        fractions.append(float((lab != 255).mean()))
        write_png(dst, lab)
    if a.dataset == "pascal":
        split = root / S4_TREES["pascal"]["split"]
        if not split.is_file():
            pr.error("missing list", f"{split} (run datasets/prepare_voc_scribble.py first)")
        else:
            ids = read_ids(split)
            missing = [i for i in ids if i not in seen]
            if missing:
                pr.error("missing scribble", f"{len(missing)} of {len(ids)} train_aug ids, e.g. "
                         f"{missing[:5]}")  # fmt: skip
            extra = sorted(set(seen) - set(ids))
            if extra:
                pr.note("scribbles outside train_aug (converted, not used)", ", ".join(extra[:20]))
    if fractions:
        pr.note("labeled pixels (written this run)",
                f"mean {100 * np.mean(fractions):.2f} % over {len(fractions)} images")  # fmt: skip
    status = pr.report()
    if status:  # no success line, and the manifest stays "not complete"
        print(f"FAILED: {out} is incomplete ({len(fractions)} scribble maps written, {kept} "
              f"kept, of {len(files)} files); fix the problems above and run again",
              file=sys.stderr)  # fmt: skip
        return status
    print(f"wrote {out}: {len(fractions)} scribble maps written, {kept} kept "
          f"({len(seen)} in all)")  # fmt: skip
    run.finished()
    return 0


if __name__ == "__main__":
    sys.exit(main())
