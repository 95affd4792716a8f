"""Detectron2 augmentations reproducing mmseg's default training pipeline
(Resize(ratio_range) -> RandomCrop(cat_max_ratio) -> RandomFlip -> PhotoMetricDistortion -> Pad).
Adapted in behaviour from mmsegmentation's `mmseg/datasets/pipelines/transforms.py`
(Apache-2.0); the code is our own. Label maps are only ever resized with nearest neighbour
(Detectron2's ResizeTransform.apply_segmentation) and photometric changes touch images only.
"""

from typing import Tuple

import cv2
import numpy as np
from detectron2.data import transforms as T
from fvcore.transforms.transform import NoOpTransform, Transform
from PIL import Image

__all__ = ["RandomScaleKeepRatio", "PhotometricDistortion", "PhotometricTransform"]


class RandomScaleKeepRatio(T.Augmentation):
    """mmseg `Resize(img_scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True)`: draw
    r ~ U(ratio_range), then rescale so the image fits (long * r, short * r) with its aspect
    ratio kept. Image: bilinear; label: nearest."""

    def __init__(self, scale: Tuple[int, int] = (2048, 512), ratio_range=(0.5, 2.0)):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        h, w = image.shape[:2]
        r = np.random.uniform(*self.ratio_range)
        long_t, short_t = max(self.scale) * r, min(self.scale) * r
        f = min(long_t / max(h, w), short_t / min(h, w))
        nh, nw = int(h * f + 0.5), int(w * f + 0.5)
        return T.ResizeTransform(h, w, nh, nw, Image.BILINEAR)


class PhotometricTransform(Transform):
    """Deterministic photometric change of a uint8 RGB image (labels and coordinates are
    untouched). Order as mmseg: brightness, contrast (if first), saturation, hue, contrast
    (if last). `None` skips a step."""

    def __init__(self, brightness=None, contrast=None, contrast_first=True, saturation=None,
                 hue=None):  # fmt: skip
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        assert img.dtype == np.uint8 and img.ndim == 3, "PhotometricTransform expects uint8 HWC"
        out = img.astype(np.float32)
        if self.brightness is not None:
            out = np.clip(out + self.brightness, 0, 255)
        if self.contrast is not None and self.contrast_first:
            out = np.clip(out * self.contrast, 0, 255)
        if self.saturation is not None or self.hue is not None:
            hsv = cv2.cvtColor(out.astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
            if self.saturation is not None:
                hsv[..., 1] = np.clip(hsv[..., 1] * self.saturation, 0, 255)
            if self.hue is not None:  # OpenCV hue is 0..179
                hsv[..., 0] = (hsv[..., 0] + self.hue) % 180
            out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        if self.contrast is not None and not self.contrast_first:
            out = np.clip(out * self.contrast, 0, 255)
        return out.astype(np.uint8)

    def apply_coords(self, coords):
        return coords

    def apply_segmentation(self, segmentation):
        return segmentation

    def inverse(self):
        return NoOpTransform()


class PhotometricDistortion(T.Augmentation):
    """mmseg `PhotoMetricDistortion`: each of brightness (delta ~ U(-32, 32)), contrast
    (x U(0.5, 1.5), before or after the HSV steps at random), saturation (x U(0.5, 1.5)) and
    hue (delta ~ U(-18, 18) on OpenCV's 0..179 scale) is applied with probability 0.5."""

    def __init__(self, brightness_delta=32, contrast_range=(0.5, 1.5),
                 saturation_range=(0.5, 1.5), hue_delta=18):  # fmt: skip
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        r = np.random
        bright = r.uniform(-self.brightness_delta, self.brightness_delta) if r.randint(2) else None
        contrast_first = bool(r.randint(2))
        contrast = r.uniform(*self.contrast_range) if r.randint(2) else None
        sat = r.uniform(*self.saturation_range) if r.randint(2) else None
        hue = r.randint(-self.hue_delta, self.hue_delta) if r.randint(2) else None
        return PhotometricTransform(bright, contrast, contrast_first, sat, hue)
