"""Inference wrappers of mmseg's test modes around a model exposing

    predict_logits(images: uint8 RGB (B, 3, h, w)) -> logits (B, C, h, w)   (mmseg encode_decode)

- "ms": multi-scale + flip test-time augmentation. Each scale is a resize of the ORIGINAL
  image (OpenCV bilinear, as mmcv): with INPUT.DFR.TEST_RESIZE, ratio r rescales it to fit
  (int(2048·r), int(512·r)), keep ratio — mmseg 0.x `MultiScaleFlipAug(img_scale=(2048, 512),
  img_ratios=...)`, which the official Swin segmentation code and the paper's era use (mmseg
  1.x `TestTimeAug` multiplies the original size instead, which is what happens here without
  TEST_RESIZE). Each view's logits are resized to the original size, THEN softmax-ed and
  the probabilities averaged (mmseg `aug_test`).
- "slide": mmseg's `slide_inference`, overlapping windows whose LOGITS are averaged.

So a single scale without flip equals the plain model exactly, at any size. The output follows
Detectron2's convention `[{"sem_seg": (C, height, width)}]`, so every DatasetEvaluator works.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.config import configurable
from torch import nn

from ..data.transforms import CV2ResizeTransform, keep_ratio_size
from ..utils import resize

__all__ = ["SemSegTTA", "slide_logits", "tta_sizes"]


def slide_logits(predict_logits: Callable, image: torch.Tensor, crop_size, stride) -> torch.Tensor:
    """mmseg's `slide_inference`: logits of overlapping crops, averaged where they overlap.

    Args:
        predict_logits: callable (B, 3, h, w) uint8 -> (B, C, h, w) logits at crop size.
        image: (B, 3, H, W) uint8.
        crop_size, stride: (h, w) of a window and of the step (paper setting: 512, 341).
    Returns:
        (B, C, H, W) logits.
    """
    h_crop, w_crop = crop_size
    h_stride, w_stride = stride
    _, _, H, W = image.shape
    h_grids = max(H - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(W - w_crop + w_stride - 1, 0) // w_stride + 1
    out, count = None, None
    for hi in range(h_grids):
        for wi in range(w_grids):
            y2, x2 = min(hi * h_stride + h_crop, H), min(wi * w_stride + w_crop, W)
            y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
            y = predict_logits(image[:, :, y1:y2, x1:x2])
            if out is None:
                out = y.new_zeros((y.shape[0], y.shape[1], H, W))
                count = y.new_zeros((1, 1, H, W))
            out[:, :, y1:y2, x1:x2] += y
            count[:, :, y1:y2, x1:x2] += 1
    return out / count


def tta_sizes(h: int, w: int, ratios: Sequence[float], scale=None) -> List[Tuple[int, int]]:
    """(h, w) of each test view. `scale` (long, short) given: mmseg 0.x MultiScaleFlipAug,
    ratio r -> keep-ratio fit of (int(long·r), int(short·r)); None: round(h·r), round(w·r)."""
    sizes = []
    for r in ratios:
        if scale:
            sizes.append(keep_ratio_size(h, w, (int(max(scale) * r), int(min(scale) * r))))
        else:
            sizes.append((max(1, int(h * r + 0.5)), max(1, int(w * r + 0.5))))
    return sizes


class SemSegTTA(nn.Module):
    """Average of softmax probabilities over scales × {identity, h-flip}, at original size.
    Takes the ORIGINAL image (the Trainer builds its loader with TEST_RESIZE off)."""

    @configurable
    def __init__(
        self,
        model: nn.Module,
        *,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        test_scale: Optional[Sequence[int]] = None,
        mode: str = "whole",
        crop_size=(512, 512),
        stride=(341, 341),
    ):
        """
        Args:
            model: a DFRSegmentor (or DDP around one), anything with `predict_logits`.
            scales: ratios of each view (mmseg `img_ratios`).
            flip: add the horizontally flipped view of every scale.
            test_scale: (long, short) base scale the ratios multiply (mmseg 0.x); None: the
                ratios multiply the original size.
            mode: "whole" or "slide" inference of each view.
            crop_size, stride: the windows of "slide".
        """
        super().__init__()
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        if not hasattr(model, "predict_logits"):
            raise TypeError(f"{type(model).__name__} has no predict_logits(images) method")
        if mode not in ("whole", "slide"):
            raise ValueError(f"TEST.MODE must be 'whole' or 'slide', got {mode!r}")
        self.model = model
        self.scales = [float(s) for s in scales]
        self.flip = flip
        self.test_scale = tuple(test_scale) if test_scale else None
        self.mode = mode
        self.crop_size = tuple(crop_size)
        self.stride = tuple(stride)

    @classmethod
    def from_config(cls, cfg, model, tta: bool = True):
        """tta=True: TEST.AUG.SCALES + TEST.AUG.FLIP; False: single scale (for TEST.MODE)."""
        return {
            "model": model,
            "scales": cfg.TEST.AUG.SCALES if tta else [1.0],
            "flip": cfg.TEST.AUG.FLIP if tta else False,
            "test_scale": cfg.INPUT.DFR.RESIZE_SCALE if cfg.INPUT.DFR.TEST_RESIZE else None,
            "mode": cfg.TEST.MODE,
            "crop_size": cfg.TEST.SLIDE.CROP_SIZE,
            "stride": cfg.TEST.SLIDE.STRIDE,
        }

    def _logits(self, image: torch.Tensor) -> torch.Tensor:
        if self.mode == "slide":
            return slide_logits(self.model.predict_logits, image, self.crop_size, self.stride)
        return self.model.predict_logits(image)

    @torch.no_grad()
    def predict_image(self, image: torch.Tensor, out_size) -> torch.Tensor:
        """image (3, H, W) uint8, original size -> (C, *out_size) averaged probabilities."""
        H, W = image.shape[-2:]
        hwc = None
        total, n = None, 0
        for size in tta_sizes(H, W, self.scales, self.test_scale):
            if size == (H, W):
                x = image
            else:
                if hwc is None:
                    hwc = np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())
                x = CV2ResizeTransform(H, W, *size).apply_image(hwc)
                x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
            x = x[None].to(self.model.device)
            views = torch.cat([x, x.flip(-1)]) if self.flip else x
            y = self._logits(views)
            if self.flip:
                y = torch.cat([y[:1], y[1:].flip(-1)])
            p = resize(y, tuple(out_size)).softmax(dim=1).sum(0)
            total = p if total is None else total + p
            n += y.shape[0]
        return total / n

    def forward(self, batched_inputs: List[dict]) -> List[dict]:
        outputs = []
        for d in batched_inputs:
            size = (d.get("height", d["image"].shape[-2]), d.get("width", d["image"].shape[-1]))
            outputs.append({"sem_seg": self.predict_image(d["image"], size)})
        return outputs
