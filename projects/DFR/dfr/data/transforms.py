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

__all__ = [
    "CV2ResizeTransform",
    "KeepRatioResize",
    "RandomScaleKeepRatio",
    "PhotometricDistortion",
    "PhotometricTransform",
    "keep_ratio_size",
]


def keep_ratio_size(h: int, w: int, scale: Tuple[int, int]) -> Tuple[int, int]:
    """mmcv `rescale_size` with a (long, short) bound: the largest keep-ratio size that fits
    max(scale) on the long side and min(scale) on the short side. Returns (new_h, new_w)."""
    f = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * f + 0.5), int(w * f + 0.5)


class CV2ResizeTransform(Transform):
    """Resize with OpenCV as mmcv's `imresize` does: images `INTER_LINEAR` (uint8 in, uint8
    out), label maps `INTER_NEAREST`. Detectron2's ResizeTransform uses PIL, whose bilinear
    filter anti-aliases when shrinking and so computes a different image than mmseg."""

    def __init__(self, h: int, w: int, new_h: int, new_w: int):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.shape[:2] == (self.new_h, self.new_w):
            return img
        return cv2.resize(img, (self.new_w, self.new_h), interpolation=cv2.INTER_LINEAR)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        if segmentation.shape[:2] == (self.new_h, self.new_w):
            return segmentation
        size = (self.new_w, self.new_h)
        return cv2.resize(segmentation, size, interpolation=cv2.INTER_NEAREST)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] = coords[:, 0] * (self.new_w * 1.0 / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h * 1.0 / self.h)
        return coords

    def inverse(self) -> Transform:
        return CV2ResizeTransform(self.new_h, self.new_w, self.h, self.w)


class KeepRatioResize(T.Augmentation):
    """mmseg's test-time `Resize(scale=(2048, 512), keep_ratio=True)`: rescale so that the
    image fits (long, short) = `scale`, aspect ratio kept (OpenCV bilinear)."""

    def __init__(self, scale: Tuple[int, int] = (2048, 512)):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        h, w = image.shape[:2]
        return CV2ResizeTransform(h, w, *keep_ratio_size(h, w, self.scale))


class RandomScaleKeepRatio(T.Augmentation):
    """mmseg `Resize(img_scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True)`: draw
    r ~ U(ratio_range), then rescale (OpenCV, as mmcv) so the image fits
    (int(long * r), int(short * r)) with its aspect ratio kept. Image: bilinear; label:
    nearest."""

    def __init__(self, scale: Tuple[int, int] = (2048, 512), ratio_range=(0.5, 2.0)):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        h, w = image.shape[:2]
        r = np.random.uniform(*self.ratio_range)
        target = (int(max(self.scale) * r), int(min(self.scale) * r))
        return CV2ResizeTransform(h, w, *keep_ratio_size(h, w, target))


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
