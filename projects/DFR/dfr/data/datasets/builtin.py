"""Builtin dataset registration: PASCAL VOC 2012 (+SBD) and PASCAL Context with ScribbleSup
scribbles, the embedded synthetic benchmark and the public scribble sets (public_scribbles.py).

Registration is lazy: `register_all()` only puts loader functions into DatasetCatalog;
`$DETECTRON2_DATASETS` (default `./datasets`) is read and files are touched when a dataset
is first requested. A missing root, folder or split file raises FileNotFoundError naming
the path and the `datasets/prepare_*.py` command that creates it.
The expected tree (the contract with datasets/prepare_*.py) is split_files.VOC_TREE /
CONTEXT_TREE.
"""

from ..classes import CONTEXT59_CLASSES, CONTEXT60_CLASSES, VOC_CLASSES
from ..synthetic import TINY_SPEC, register_synthetic
from .public_scribbles import register_public_scribbles
from .split_files import (
    CONTEXT_TREE,
    PREPARE_CONTEXT,
    PREPARE_VOC,
    VOC_TREE,
    register_sem_seg_split,
)

__all__ = ["SCRIBBLE_LENGTHS", "SCRIBBLE_DROPS", "register_all"]

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
    _REGISTERED = True
