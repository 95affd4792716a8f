"""ScribbleDatasetMapper: dataset dict -> model input (uint8 RGB image, label ids, 255 = unlabeled).

Training: mmseg's default pipeline as Detectron2 augmentations (random keep-ratio resize,
random crop with category-max-ratio, horizontal flip, photometric distortion). mmseg then
normalises and pads to the crop size; normalising needs floats, so the model does both
(`DFRSegmentor`, pad value 0 = the mean colour, label 255, `valid` False).
Test: INPUT.DFR.TEST_RESIZE = mmseg's keep-ratio resize to RESIZE_SCALE (2048, 512), else
the original size; "height"/"width" stay the original size, so predictions are resized back.
Images stay uint8 RGB (the model normalises). Labels are checked: a label map whose size
differs from its image, or with values outside {0..C-1, 255}, raises ValueError naming the file.
"""

import copy
import logging
from typing import List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .classes import IGNORE_LABEL
from .labels import check_label_values, read_label
from .transforms import KeepRatioResize, PhotometricDistortion, RandomScaleKeepRatio

__all__ = ["ScribbleDatasetMapper", "build_train_augmentations"]


def build_train_augmentations(
    crop_size=(512, 512),
    resize_scale=(2048, 512),
    ratio_range=(0.5, 2.0),
    cat_max_ratio: float = 0.75,
    flip_prob: float = 0.5,
    photometric: bool = True,
    ignore_label: int = IGNORE_LABEL,
) -> List[T.Augmentation]:
    augs = [RandomScaleKeepRatio(tuple(resize_scale), tuple(ratio_range))]
    if crop_size:
        # Detectron2's version of mmseg's RandomCrop(cat_max_ratio): up to 10 tries for a crop
        # where no single class covers more than cat_max_ratio of the labeled pixels.
        augs.append(
            T.RandomCrop_CategoryAreaConstraint("absolute", tuple(crop_size), cat_max_ratio,
                                                ignore_label)  # fmt: skip
        )
    if flip_prob > 0:
        augs.append(T.RandomFlip(prob=flip_prob, horizontal=True, vertical=False))
    if photometric:
        augs.append(PhotometricDistortion())
    return augs


class ScribbleDatasetMapper:
    """Maps a record {file_name, sem_seg_file_name?, height, width, image_id} to
    {"image": uint8 (3, H, W) RGB, "sem_seg": long (H, W) (255 = unlabeled), "height",
    "width" (original size), "file_name", "image_id"}. Nothing is padded here."""

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: List[T.Augmentation],
        num_classes: int,
        image_format: str = "RGB",
        ignore_label: int = IGNORE_LABEL,
    ):
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.num_classes = num_classes
        self.image_format = image_format
        self.ignore_label = ignore_label
        mode = "training" if is_train else "inference"
        logging.getLogger(__name__).info(
            f"[ScribbleDatasetMapper] Augmentations used in {mode}: {augmentations}"
        )

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, test_resize: Optional[bool] = None):
        """test_resize: override INPUT.DFR.TEST_RESIZE (False for TTA, which resizes the
        original image itself for every scale)."""
        crop = cfg.INPUT.CROP
        crop_size = tuple(crop.SIZE) if crop.ENABLED else None
        if crop_size is not None and crop.TYPE != "absolute":
            raise ValueError(f"INPUT.CROP.TYPE must be 'absolute' for DFR, got {crop.TYPE!r}")
        augs = []
        if test_resize is None:
            test_resize = cfg.INPUT.DFR.TEST_RESIZE
        if not is_train and test_resize:
            augs = [KeepRatioResize(tuple(cfg.INPUT.DFR.RESIZE_SCALE))]
        if is_train:
            augs = build_train_augmentations(
                crop_size=crop_size,
                resize_scale=tuple(cfg.INPUT.DFR.RESIZE_SCALE),
                ratio_range=tuple(cfg.INPUT.DFR.RATIO_RANGE),
                cat_max_ratio=crop.SINGLE_CATEGORY_MAX_AREA,
                flip_prob=cfg.INPUT.DFR.FLIP_PROB,
                photometric=cfg.INPUT.DFR.PHOTOMETRIC,
                ignore_label=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            )
        return {
            "is_train": is_train,
            "augmentations": augs,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "image_format": cfg.INPUT.FORMAT,
            "ignore_label": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        }

    def _read(self, d):
        path = d["file_name"]
        try:
            image = utils.read_image(path, format=self.image_format)
        except Exception as e:
            raise ValueError(f"cannot read image {path}: {type(e).__name__}: {e}") from e
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {path} has shape {image.shape}, expected (H, W, 3)")
        label = None
        if "sem_seg_file_name" in d:
            lpath = d["sem_seg_file_name"]
            label = read_label(lpath)
            if label.shape != image.shape[:2]:
                raise ValueError(
                    f"label map {lpath} is {label.shape[1]}x{label.shape[0]} (WxH) but its image "
                    f"{path} is {image.shape[1]}x{image.shape[0]}"
                )
            check_label_values(label, lpath, self.num_classes, self.ignore_label)
            label = label.astype(np.uint8)
        return image, label

    def __call__(self, dataset_dict):
        d = copy.deepcopy(dataset_dict)
        image, label = self._read(d)
        h0, w0 = image.shape[:2]
        aug_input = T.AugInput(image, sem_seg=label)
        self.augmentations(aug_input)
        image, label = aug_input.image, aug_input.sem_seg
        out = {
            "image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "height": d.get("height", h0),
            "width": d.get("width", w0),
            "file_name": d["file_name"],
            "image_id": d.get("image_id", d["file_name"]),
        }
        if label is not None:
            out["sem_seg"] = torch.as_tensor(label.astype(np.int64))
        return out
