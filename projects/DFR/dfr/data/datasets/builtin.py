"""Builtin dataset registration: PASCAL VOC 2012 (+SBD) and PASCAL Context with ScribbleSup
scribbles, the embedded synthetic benchmark and the public scribble sets (public_scribbles.py).

Registration is lazy: `register_all()` only puts loader functions into DatasetCatalog;
`$DETECTRON2_DATASETS` (default `./datasets`) is read and files are touched when a dataset
is first requested. A missing root, folder or split file raises FileNotFoundError naming
the path and the `datasets/prepare_*.py` command that creates it. Detectron2's own ADE20K and
Cityscapes semantic names (the ADE20K / Cityscapes configs' sets) keep their loaders, wrapped
to fail the same way (`guard_detectron2_sem_seg`).
The expected tree (the contract with datasets/prepare_*.py) is split_files.VOC_TREE /
CONTEXT_TREE.
"""
import os

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..classes import CONTEXT59_CLASSES, CONTEXT60_CLASSES, VOC_CLASSES
from ..paths import require_path
from ..synthetic import TINY_SPEC, register_synthetic
from .public_scribbles import register_public_scribbles
from .split_files import (
    CONTEXT_TREE,
    PREPARE_CONTEXT,
    PREPARE_VOC,
    VOC_TREE,
    register_sem_seg_split,
)

__all__ = ["SCRIBBLE_LENGTHS", "SCRIBBLE_DROPS", "register_all", "guard_detectron2_sem_seg",
           "PREPARE_ADE20K", "PREPARE_CITYSCAPES"]

# Fig. 3 scribble-length study and the drop study: label roots written by
# tools/shorten_scribbles.py next to the original scribbles (suffix _len30, _drop50, ...).
SCRIBBLE_LENGTHS = (0, 30, 50, 70)
SCRIBBLE_DROPS = (10, 30, 50, 70)


def _register_voc():
    t = VOC_TREE
    sp = t["splits"]
    reg = register_sem_seg_split
    reg(
        "voc_2012_train_aug_scribble",
        sp["train_aug"],
        t["images"],
        t["scribble"],
        VOC_CLASSES,
        PREPARE_VOC,
    )
    reg(
        "voc_2012_train_aug_full",
        sp["train_aug"],
        t["images"],
        t["dense"],
        VOC_CLASSES,
        PREPARE_VOC,
    )
    reg("voc_2012_val_sem_seg", sp["val"], t["images"], t["dense"], VOC_CLASSES, PREPARE_VOC)
    reg("voc_2012_test", sp["test"], t["images"], None, VOC_CLASSES, PREPARE_VOC)
    for suffix in [f"len{p}" for p in SCRIBBLE_LENGTHS] + [f"drop{p}" for p in SCRIBBLE_DROPS]:
        prepare = f"python tools/shorten_scribbles.py --voc-variant {suffix}  (after {PREPARE_VOC})"
        reg(
            f"voc_2012_train_aug_scribble_{suffix}",
            sp["train_aug"],
            t["images"],
            f"{t['scribble']}_{suffix}",
            VOC_CLASSES,
            prepare,
        )


def _register_context():
    t = CONTEXT_TREE
    sp = t["splits"]
    for n, classes in ((59, CONTEXT59_CLASSES), (60, CONTEXT60_CLASSES)):
        register_sem_seg_split(
            f"context_{n}_train_scribble",
            sp["train"],
            t["images"],
            t["scribble"][n],
            classes,
            PREPARE_CONTEXT,
        )
        register_sem_seg_split(
            f"context_{n}_val_sem_seg",
            sp["val"],
            t["images"],
            t["dense"][n],
            classes,
            PREPARE_CONTEXT,
        )


# How to prepare Detectron2's dense ADE20K / Cityscapes (docs/datasets_simulated.md).
PREPARE_ADE20K = (
    "unzip ADEChallengeData2016.zip (http://sceneparsing.csail.mit.edu) in $DETECTRON2_DATASETS, "
    "then run Detectron2's datasets/prepare_ade20k_sem_seg.py there (writes "
    "ADEChallengeData2016/annotations_detectron2/); see docs/datasets_simulated.md"
)
PREPARE_CITYSCAPES = (
    "unzip leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip "
    "(https://www.cityscapes-dataset.com) into $DETECTRON2_DATASETS/cityscapes, then "
    "CITYSCAPES_DATASET=$DETECTRON2_DATASETS/cityscapes python -m "
    "cityscapesscripts.preparation.createTrainIdLabelImgs (writes *_labelTrainIds.png); see "
    "docs/datasets_simulated.md"
)
# Detectron2's names -> (metadata keys of their image and label folders, prepare command)
_ADE20K = (("image_root", "sem_seg_root"), PREPARE_ADE20K)
_CITYSCAPES = (("image_dir", "gt_dir"), PREPARE_CITYSCAPES)
_DETECTRON2_SEM_SEG = {
    "ade20k_sem_seg_train": _ADE20K,
    "ade20k_sem_seg_val": _ADE20K,
    "cityscapes_fine_sem_seg_train": _CITYSCAPES,
    "cityscapes_fine_sem_seg_val": _CITYSCAPES,
    "cityscapes_fine_sem_seg_test": _CITYSCAPES,
}


def _guarded(name, load, folders, prepare):
    def guarded_load():
        meta = MetadataCatalog.get(name)
        image_dir, label_dir = (meta.get(k, None) for k in folders)
        what = name.split("_")[0].replace("ade20k", "ADE20K").replace("cityscapes", "Cityscapes")
        require_path(image_dir, f"{what} image folder of {name!r}", prepare, under_root=True)
        if not os.listdir(image_dir):
            require_path(None, f"{what} images of {name!r} (the folder {image_dir} is empty)",
                         prepare, under_root=True)  # fmt: skip
        require_path(label_dir, f"{what} label folder of {name!r}", prepare, under_root=True)
        try:
            records = load()
        except AssertionError as e:  # Detectron2's Cityscapes loader asserts what it misses
            require_path(None, f"{what} files of {name!r} ({e})", prepare, under_root=True)
        missing = [r["sem_seg_file_name"] for r in records[:1]
                   if not os.path.isfile(r.get("sem_seg_file_name", ""))]  # fmt: skip
        if missing:
            require_path(None, f"{what} label map {missing[0]}", prepare, under_root=True)
        return records

    guarded_load.__wrapped__ = load
    return guarded_load


def guard_detectron2_sem_seg():
    """Wrap the loaders of Detectron2's ADE20K / Cityscapes semantic names: a missing image or
    label folder (or Cityscapes' labelTrainIds maps) raises FileNotFoundError naming it and
    the preparation command, instead of a bare listdir / assertion traceback. Idempotent."""
    for name, (folders, prepare) in _DETECTRON2_SEM_SEG.items():
        load = DatasetCatalog.data.get(name)  # the loader function, not its records
        if load is None or hasattr(load, "__wrapped__"):
            continue
        DatasetCatalog.remove(name)
        DatasetCatalog.register(name, _guarded(name, load, folders, prepare))


_REGISTERED = False


def register_all():
    """Register every builtin name once (idempotent); reads nothing from disk."""
    global _REGISTERED
    if _REGISTERED:
        return
    _register_voc()
    _register_context()
    register_synthetic()  # synthetic_scribble_train / _full_train / _scribble_val
    register_synthetic("synthetic_tiny", TINY_SPEC)  # 16 / 8 images, for smoke runs
    register_public_scribbles()  # Scribbles4All s4 sets, CDSP's ScribbleCOCO / -Cityscapes
    guard_detectron2_sem_seg()  # Detectron2's ADE20K / Cityscapes: guided missing-data errors
    _REGISTERED = True
