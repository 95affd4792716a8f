"""Inference wrappers: multi-scale + flip test-time augmentation ("ms") and mmseg's
sliding-window ("slide") inference, around a model exposing

    predict_probs(images: uint8 RGB (B, 3, H, W)) -> probabilities (B, C, H, W)

Probabilities of every (scale, flip) view are resized back to the ORIGINAL image size
(`height`, `width` of the input dict) and averaged, so the output follows Detectron2's
semantic-segmentation convention `[{"sem_seg": (C, height, width)}]` and every
DatasetEvaluator works unchanged.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from torch import nn

__all__ = ["SemSegTTA", "slide_probs"]


def _resize(x: torch.Tensor, size, mode="bilinear") -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def slide_probs(predict_probs, image: torch.Tensor, crop_size, stride) -> torch.Tensor:
    """mmseg's `slide_inference`: overlapping crops, probabilities averaged where they overlap.

    Args:
        predict_probs: callable (B, 3, h, w) uint8 -> (B, C, h, w) probabilities.
        image: (B, 3, H, W) uint8.
        crop_size, stride: (h, w) of a window and of the step (paper setting: 512, 341).
    Returns:
        (B, C, H, W) probabilities.
    """
    h_crop, w_crop = crop_size
    h_stride, w_stride = stride
    _, _, H, W = image.shape
    h_grids = max(H - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(W - w_crop + w_stride - 1, 0) // w_stride + 1
    out, count = None, image.new_zeros((1, 1, H, W), dtype=torch.float32)
    for hi in range(h_grids):
        for wi in range(w_grids):
            y2, x2 = min(hi * h_stride + h_crop, H), min(wi * w_stride + w_crop, W)
            y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
            p = predict_probs(image[:, :, y1:y2, x1:x2])
            if out is None:
                out = p.new_zeros((p.shape[0], p.shape[1], H, W))
            out[:, :, y1:y2, x1:x2] += p
            count[:, :, y1:y2, x1:x2] += 1
    return out / count.to(out)


class SemSegTTA(nn.Module):
    """Average of softmax probabilities over scales × {identity, h-flip}, at original size.

    `scales` are ratios of the test image size given by the mapper (mmseg's `img_ratios`).
    With scales=[1.0], flip=False and mode="whole" the output equals the model's own
    single-scale prediction.
    """

    @configurable
    def __init__(
        self,
        model: nn.Module,
        *,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        mode: str = "whole",
        crop_size=(512, 512),
        stride=(341, 341),
    ):
        super().__init__()
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        if not hasattr(model, "predict_probs"):
            raise TypeError(f"{type(model).__name__} has no predict_probs(images) method")
        if mode not in ("whole", "slide"):
            raise ValueError(f"TEST.MODE must be 'whole' or 'slide', got {mode!r}")
        self.model = model
        self.scales = [float(s) for s in scales]
        self.flip = flip
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
            "mode": cfg.TEST.MODE,
            "crop_size": cfg.TEST.SLIDE.CROP_SIZE,
            "stride": cfg.TEST.SLIDE.STRIDE,
        }

    def _predict(self, image: torch.Tensor) -> torch.Tensor:
        if self.mode == "slide":
            return slide_probs(self.model.predict_probs, image, self.crop_size, self.stride)
        return self.model.predict_probs(image)

    @torch.no_grad()
    def predict_image(self, image: torch.Tensor, out_size) -> torch.Tensor:
        """image (3, H, W) uint8 -> (C, *out_size) averaged probabilities."""
        image = image.to(self.model.device if hasattr(self.model, "device") else image.device)
        H, W = image.shape[-2:]
        total, n = None, 0
        for s in self.scales:
            size = (max(1, int(H * s + 0.5)), max(1, int(W * s + 0.5)))
            x = image[None]
            if size != (H, W):
                x = _resize(x.float(), size).round_().clamp_(0, 255).to(torch.uint8)
            views = torch.cat([x, x.flip(-1)]) if self.flip else x
            p = self._predict(views)
            if self.flip:
                p = torch.cat([p[:1], p[1:].flip(-1)])
            p = _resize(p.float(), tuple(out_size)).sum(0)
            total = p if total is None else total + p
            n += 2 if self.flip else 1
        return total / n

    def forward(self, batched_inputs: List[dict]) -> List[dict]:
        outputs = []
        for d in batched_inputs:
            size = (d.get("height", d["image"].shape[-2]), d.get("width", d["image"].shape[-1]))
            outputs.append({"sem_seg": self.predict_image(d["image"], size)})
        return outputs
