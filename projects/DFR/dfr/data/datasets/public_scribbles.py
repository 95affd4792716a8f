"""Public scribble benchmarks made from dense datasets: Scribbles4All's s4 sets (NeurIPS 2024
D&B, github.com/wbkit/Scribbles4All) and CDSP's ScribbleCOCO / ScribbleCityscapes (AAAI 2024,
github.com/Zxl19990529/ScribbleSimulation), as written by datasets/prepare_s4_scribbles.py and
datasets/prepare_cdsp_scribbles.py.

Registered names (lazy; paths under $DETECTRON2_DATASETS, read when a name is loaded):

- ``voc_2012_train_aug_s4``: ``VOC2012/s4_scribble/<id>.png`` (eval: voc_2012_val_sem_seg)
- ``ade20k_sem_seg_train_s4``: ``ADEChallengeData2016/s4_scribbles_detectron2/training/
  <name>.png`` (eval: ade20k_sem_seg_val)
- ``cityscapes_fine_sem_seg_train_s4``: ``cityscapes/s4_scribbles/train/<city>/
  <key>_gtFine_labelTrainIds.png`` (eval: cityscapes_fine_sem_seg_val)
- ``scribble_{coco,cityscapes}_train_cdsp_r{1,2,3}``: ``ScribbleCOCO`` / ``ScribbleCityscapes``
  ``/scribble_r{k}/<id>.png``; ``scribble_*_train_full`` / ``scribble_*_val_sem_seg``: their
  ``SegmentationClassAug`` (eval: ``scribble_*_val_sem_seg``)

Every written label map is the project's format: 8-bit single-channel PNG, class ids of the
evaluation set, 255 = unlabeled. The released s4 encodings are converted by ``decode_s4``;
CDSP's values are the ids already. Both formats: docs/datasets_simulated.md.
"""
import io
import os
from typing import Dict, List

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from ..classes import IGNORE_LABEL, VOC_CLASSES
from ..images import image_hw
from ..paths import get_datasets_root, require_path
from .split_files import VOC_TREE, register_sem_seg_split

__all__ = [
    "S4_TREES",
    "CDSP_TREES",
    "CITYSCAPES_LABELID_TO_TRAINID",
    "cdsp_classes",
    "decode_s4",
    "read_released_label",
    "register_public_scribbles",
]

PREPARE_S4 = "python datasets/prepare_s4_scribbles.py  (docs/datasets_simulated.md)"
PREPARE_CDSP = "python datasets/prepare_cdsp_scribbles.py  (docs/datasets_simulated.md)"

# Output trees, relative to $DETECTRON2_DATASETS.
S4_TREES = {
    "pascal": {"labels": "VOC2012/s4_scribble", "images": "VOC2012/JPEGImages",
               "split": "VOC2012/ImageSets/Segmentation/train_aug.txt"},
    "ade20k": {"labels": "ADEChallengeData2016/s4_scribbles_detectron2/training",
               "images": "ADEChallengeData2016/images/training"},
    "cityscapes": {"labels": "cityscapes/s4_scribbles/train",
                   "images": "cityscapes/leftImg8bit/train"},
}  # fmt: skip
CDSP_TREES = {"coco": "ScribbleCOCO", "cityscapes": "ScribbleCityscapes"}
CDSP_ROUNDS = (1, 2, 3)  # the release's three simulated scribble sets (r1, r2, r3)

# Cityscapes labelId -> trainId (cityscapesScripts helpers/labels.py); every other id -> 255.
CITYSCAPES_LABELID_TO_TRAINID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8,
                                 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16,
                                 32: 17, 33: 18}  # fmt: skip


def _lut(mapping: Dict[int, int]) -> np.ndarray:
    lut = np.full(256, IGNORE_LABEL, np.uint8)
    for k, v in mapping.items():
        lut[k] = v
    return lut


_S4_LUT = {
    # s4Pascal: the VOC ids 0..20 (background is a labeled class), 255 = no scribble
    "pascal": _lut({i: i for i in range(21)}),
    # s4ADE20K: ADEChallengeData2016 values 1..150 (class k-1 in Detectron2's ADE20K), 0 = none
    "ade20k": _lut({i: i - 1 for i in range(1, 151)}),
    # s4Cityscapes: gtFine labelIds (0 = unlabeled = no scribble) -> the 19 trainIds
    "cityscapes": _lut(CITYSCAPES_LABELID_TO_TRAINID),
}


def decode_s4(dataset: str, values: np.ndarray) -> np.ndarray:
    """Released s4 label values (one channel) -> class ids of the evaluation set, 255 unlabeled."""
    if dataset not in _S4_LUT:
        raise ValueError(f"unknown s4 dataset {dataset!r}; known: {', '.join(_S4_LUT)}")
    return _S4_LUT[dataset][np.asarray(values, np.uint8)]


def cdsp_classes(dataset: str) -> List[str]:
    """CDSP's classes: 0 = background, then COCO's 80 things in category-id order (ScribbleCOCO,
    81) or Cityscapes' 8 instance classes (ScribbleCityscapes, 9)."""
    if dataset == "coco":
        from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

        return ["background"] + [c["name"] for c in COCO_CATEGORIES if c["isthing"]]
    if dataset == "cityscapes":
        return ["background", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                "bicycle"]  # fmt: skip
    raise ValueError(f"unknown CDSP dataset {dataset!r}; known: {', '.join(CDSP_TREES)}")


def read_released_label(data: bytes, name: str) -> np.ndarray:
    """A released label PNG -> (H, W) uint8 values: L / P (index) / I as they are; RGB(A) only
    when its three channels are equal (cv2.imwrite of a grey value), else ValueError."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        mode, arr = im.mode, np.asarray(im)
    if mode in ("L", "P", "I", "I;16"):
        if arr.max(initial=0) > 255:
            raise ValueError(f"{name}: values above 255")
        return arr.astype(np.uint8)
    if mode in ("RGB", "RGBA", "LA"):
        if mode == "LA":
            return arr[..., 0].astype(np.uint8)
        rgb = arr[..., :3]
        same = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        if not same:
            raise ValueError(f"{name}: colour PNG whose channels differ (expected one grey value "
                             "per pixel, as the release writes)")  # fmt: skip
        return rgb[..., 0].astype(np.uint8)
    raise ValueError(f"{name}: PNG mode {mode!r}, expected a grey-value label map")


def _load_pairs(label_dir: str, image_dir: str, image_suffix: str, label_suffix: str,
                prepare: str) -> List[Dict]:  # fmt: skip
    """Records for every `<key><label_suffix>` under label_dir (recursively) with its image
    `<key><image_suffix>` at the same relative folder under image_dir."""
    require_path(label_dir, "scribble folder", prepare, under_root=True)
    require_path(image_dir, "image folder", prepare, under_root=True)
    records, missing = [], []
    for dirpath, dirnames, filenames in os.walk(label_dir):
        dirnames.sort()
        rel = os.path.relpath(dirpath, label_dir)
        for fn in sorted(filenames):
            if not fn.endswith(label_suffix):
                continue
            key = fn[: -len(label_suffix)]
            img = os.path.normpath(os.path.join(image_dir, rel, key + image_suffix))
            if not os.path.isfile(img):
                missing.append(img)
                continue
            h, w = image_hw(img)
            records.append({"file_name": img, "sem_seg_file_name": os.path.join(dirpath, fn),
                            "height": h, "width": w, "image_id": key})  # fmt: skip
    if missing or not records:
        raise FileNotFoundError(
            f"{len(missing)} images missing for the scribbles in {label_dir}, e.g. {missing[:3]}"
            if missing else f"no *{label_suffix} scribble maps in {label_dir}"
        )
    return records


def _copy_meta(name: str, source: str, **extra):
    # the dense label folders of the source are not this set's
    drop = ("name", "sem_seg_root", "gt_dir")
    meta = {k: v for k, v in MetadataCatalog.get(source).as_dict().items() if k not in drop}
    meta.update(extra)
    MetadataCatalog.get(name).set(**meta)


def _register_s4():
    t = S4_TREES["pascal"]
    register_sem_seg_split("voc_2012_train_aug_s4", VOC_TREE["splits"]["train_aug"],
                           VOC_TREE["images"], t["labels"], VOC_CLASSES, PREPARE_S4,
                           scribble_source="s4Pascal")  # fmt: skip

    def ade():
        r, t = get_datasets_root(), S4_TREES["ade20k"]
        return _load_pairs(os.path.join(r, t["labels"]), os.path.join(r, t["images"]),
                           ".jpg", ".png", PREPARE_S4)  # fmt: skip

    def cityscapes():
        r, t = get_datasets_root(), S4_TREES["cityscapes"]
        return _load_pairs(os.path.join(r, t["labels"]), os.path.join(r, t["images"]),
                           "_leftImg8bit.png", "_gtFine_labelTrainIds.png", PREPARE_S4)  # fmt: skip

    for name, loader, source, what in (
        ("ade20k_sem_seg_train_s4", ade, "ade20k_sem_seg_train", "s4ADE20K"),
        ("cityscapes_fine_sem_seg_train_s4", cityscapes, "cityscapes_fine_sem_seg_train",
         "s4Cityscapes"),
    ):  # fmt: skip
        DatasetCatalog.register(name, loader)
        _copy_meta(name, source, scribble_source=what)


def _register_cdsp():
    for ds, folder in CDSP_TREES.items():
        classes = cdsp_classes(ds)
        split = lambda s, f=folder: f"{f}/ImageSets/{s}.txt"  # noqa: E731
        prepare = f"{PREPARE_CDSP} --dataset {ds}"
        register_sem_seg_split(f"scribble_{ds}_val_sem_seg", split("val"), f"{folder}/JPEGImages",
                               f"{folder}/SegmentationClassAug", classes, prepare)  # fmt: skip
        register_sem_seg_split(f"scribble_{ds}_train_full", split("train"),
                               f"{folder}/JPEGImages", f"{folder}/SegmentationClassAug", classes,
                               prepare)  # fmt: skip
        for k in CDSP_ROUNDS:
            register_sem_seg_split(f"scribble_{ds}_train_cdsp_r{k}", split("train"),
                                   f"{folder}/JPEGImages", f"{folder}/scribble_r{k}", classes,
                                   prepare, scribble_source=f"CDSP {folder} r{k}")  # fmt: skip


_REGISTERED = False


def register_public_scribbles():
    """Register the names of the module docstring once (reads nothing from disk)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _register_s4()
    _register_cdsp()
    _REGISTERED = True
