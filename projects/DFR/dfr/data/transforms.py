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


def _convert(img: np.ndarray, alpha: float = 1, beta: float = 0) -> np.ndarray:
    """img * alpha + beta in float32, clipped to [0, 255] and truncated to uint8 (mmseg's
    `PhotoMetricDistortion.convert`, applied after every step)."""
    return np.clip(img.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


class PhotometricTransform(Transform):
    """Deterministic photometric change of a uint8 RGB image (labels and coordinates are
    untouched), step for step as mmseg's PhotoMetricDistortion: brightness, contrast (if
    first), saturation, hue, contrast (if last), each truncated to uint8; saturation and hue
    each convert to HSV and back on their own. `None` skips a step. mmseg works on BGR; the
    HSV values of a pixel do not depend on the channel order, so RGB <-> HSV here computes
    the same image."""

    def __init__(self, brightness=None, contrast=None, contrast_first=True, saturation=None,
                 hue=None):  # fmt: skip
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        assert img.dtype == np.uint8 and img.ndim == 3, "PhotometricTransform expects uint8 HWC"
        if self.brightness is not None:
            img = _convert(img, beta=self.brightness)
        if self.contrast is not None and self.contrast_first:
            img = _convert(img, alpha=self.contrast)
        if self.saturation is not None:
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            hsv[..., 1] = _convert(hsv[..., 1], alpha=self.saturation)
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if self.hue is not None:  # OpenCV hue is 0..179
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            hsv[..., 0] = (hsv[..., 0].astype(int) + self.hue) % 180
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if self.contrast is not None and not self.contrast_first:
            img = _convert(img, alpha=self.contrast)
        return img

    def apply_coords(self, coords):
        return coords

    def apply_segmentation(self, segmentation):
        return segmentation

    def inverse(self):
        return NoOpTransform()


class PhotometricDistortion(T.Augmentation):
    """mmseg 1.2.2 `PhotoMetricDistortion`: each of brightness (delta ~ U(-32, 32)), contrast
    (x U(0.5, 1.5), before or after the HSV steps with probability 0.5 each), saturation
    (x U(0.5, 1.5)) and hue (integer delta in [-18, 18) on OpenCV's 0..179 scale) is applied
    with probability 0.5. The draws come from `np.random` in mmseg's order, so a seed gives
    mmseg's image (tests/data/test_mapper.py, fixture from tools/check_mmseg_parity.py --photometric-fixture).
    Detectron2's ColorAugSSDTransform (PointRend) is not this: it draws from Python's `random`
    inside `apply_image` and its hue delta includes +18."""

    def __init__(self, brightness_delta=32, contrast_range=(0.5, 1.5),
                 saturation_range=(0.5, 1.5), hue_delta=18):  # fmt: skip
        super().__init__()
        self._init(locals())

    def _contrast(self):
        return np.random.uniform(*self.contrast_range) if np.random.randint(2) else None

    def get_transform(self, image):
        r = np.random
        d = self.brightness_delta
        bright = r.uniform(-d, d) if r.randint(2) else None
        contrast_first = bool(r.randint(2))  # mmseg's `mode == 1`
        contrast = self._contrast() if contrast_first else None
        sat = r.uniform(*self.saturation_range) if r.randint(2) else None
        hue = r.randint(-self.hue_delta, self.hue_delta) if r.randint(2) else None
        if not contrast_first:
            contrast = self._contrast()
        return PhotometricTransform(bright, contrast, contrast_first, sat, hue)
