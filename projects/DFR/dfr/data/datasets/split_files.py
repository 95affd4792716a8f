"""Datasets listed in split files: the VOC / Context folder trees (the contract with
datasets/prepare_*.py) and the loader / registration of one split, shared by the builtin
registrations (builtin.py) and the public scribble sets (public_scribbles.py)."""

import os
from typing import Dict, List, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..classes import IGNORE_LABEL, voc_colors
from ..images import image_hw
from ..paths import get_datasets_root, require_path

__all__ = [
    "VOC_TREE",
    "CONTEXT_TREE",
    "PREPARE_VOC",
    "PREPARE_CONTEXT",
    "load_sem_seg_split",
    "register_sem_seg_split",
]

# Paths relative to $DETECTRON2_DATASETS.
VOC_TREE = {
    "root": "VOC2012",
    "images": "VOC2012/JPEGImages",
    "dense": "VOC2012/SegmentationClassAug",
    "scribble": "VOC2012/pascal_2012_scribble",
    "splits": {
        "train_aug": "VOC2012/ImageSets/Segmentation/train_aug.txt",
        "val": "VOC2012/ImageSets/Segmentation/val.txt",
        "test": "VOC2012/ImageSets/Segmentation/test.txt",
    },
}
CONTEXT_TREE = {
    "root": "PascalContext",
    "images": "PascalContext/JPEGImages",
    "dense": {
        60: "PascalContext/SegmentationClassContext60",
        59: "PascalContext/SegmentationClassContext59",
    },
    "scribble": {60: "PascalContext/scribble_context60", 59: "PascalContext/scribble_context59"},
    "splits": {
        "train": "PascalContext/ImageSets/train.txt",
        "val": "PascalContext/ImageSets/val.txt",
    },
}
PREPARE_VOC = "python datasets/prepare_voc_scribble.py  (see datasets/README.md)"
PREPARE_CONTEXT = "python datasets/prepare_context_scribble.py  (see datasets/README.md)"


def load_sem_seg_split(
    split_file: str,
    image_dir: str,
    label_dir: Optional[str],
    prepare: str,
    image_ext: str = ".jpg",
    label_ext: str = ".png",
) -> List[Dict]:
    """Records {file_name, sem_seg_file_name, height, width, image_id} for the ids listed in
    `split_file` (one id per line). `label_dir=None`: images only (test split)."""
    require_path(split_file, "split file", prepare, under_root=True)
    require_path(image_dir, "image folder", prepare, under_root=True)
    if label_dir is not None:
        require_path(label_dir, "label folder", prepare, under_root=True)
    with open(split_file) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    records, missing = [], []
    for image_id in ids:
        img = os.path.join(image_dir, image_id + image_ext)
        rec = {"file_name": img, "image_id": image_id}
        if not os.path.isfile(img):
            missing.append(img)
            continue
        if label_dir is not None:
            lab = os.path.join(label_dir, image_id + label_ext)
            if not os.path.isfile(lab):
                missing.append(lab)
                continue
            rec["sem_seg_file_name"] = lab
        rec["height"], rec["width"] = image_hw(img)  # after EXIF orientation, as read_image
        records.append(rec)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(ids)} files listed in {split_file} are missing, "
            f"e.g. {missing[:3]}. Create them with: {prepare}"
        )
    return records


def register_sem_seg_split(
    name: str,
    split: str,
    images: str,
    labels: Optional[str],
    classes: List[str],
    prepare: str,
    **extra_metadata,
):
    """Register `name`; `split`, `images`, `labels` are paths relative to the datasets root
    (resolved when the dataset is loaded)."""

    def _load():
        root = get_datasets_root()
        return load_sem_seg_split(
            os.path.join(root, split),
            os.path.join(root, images),
            os.path.join(root, labels) if labels is not None else None,
            prepare,
        )

    DatasetCatalog.register(name, _load)
    MetadataCatalog.get(name).set(
        stuff_classes=list(classes),
        stuff_colors=voc_colors(len(classes)),
        ignore_label=IGNORE_LABEL,
        # no labels (the VOC test set): predictions are exported for the evaluation server
        evaluator_type="sem_seg" if labels is not None else "voc_submission",
        # class id of background for Lfd's A+bg / A+fg (-1: no background class, Context-59)
        background_id=0 if classes[0] == "background" else -1,
        **extra_metadata,
    )
