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
Detectron2's convention `[{"sem_seg": (C, height, width)}]`, so every DatasetEvaluator works;
with `output="labels"` it is `[{"sem_seg_labels": (height, width)}]` instead, computed with
memory bounded independently of classes x pixels (`postprocess.labels_at_size`: the same
labels), which the project's evaluators and the demo read (`labels_of`). Before each image the
memory it needs is estimated and an image over TEST.MEMORY_LIMIT_MB is refused by name with the
size that would fit (`InferenceMemoryError`).
"""
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.config import configurable
from torch import nn

from ..data.transforms import CV2ResizeTransform, keep_ratio_size
from ..utils import resize
from .postprocess import (
    InferenceMemoryError,
    available_bytes,
    fitting_size,
    inference_bytes,
    labels_at_size,
    network_bytes_per_pixel,
)

__all__ = ["SemSegTTA", "slide_logits", "tta_sizes", "labels_of", "check_inference_memory"]


def labels_of(output: Dict) -> torch.Tensor:
    """(H, W) class labels of a model output: its "sem_seg_labels", else the argmax of its
    "sem_seg" scores (C, H, W)."""
    if "sem_seg_labels" in output:
        return output["sem_seg_labels"]
    return output["sem_seg"].argmax(dim=0)


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
    """Average of softmax probabilities over scales × {identity, h-flip}, at original size
    (`output="probs"`), or the class labels of that average (`output="labels"`, memory-bounded).
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
        output: str = "probs",
        chunk_mb: float = 256,
        memory_limit_mb: float = 0,
        net_bytes_per_px: float = 0.0,
        num_classes: Optional[int] = None,
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
            output: "probs" ({"sem_seg": (C, H, W)}) or "labels" ({"sem_seg_labels": (H, W)}).
            chunk_mb: MB of logits resized to the original size at a time ("labels").
            memory_limit_mb: refuse an image whose inference would need more (an estimate,
                `postprocess.inference_bytes`); 0: the memory available at that moment;
                < 0: no check.
            net_bytes_per_px: the network's activation bytes per input pixel, for that
                estimate (`postprocess.network_bytes_per_pixel(cfg)`).
            num_classes: the model's classes, for that estimate (None: no check).
        """
        super().__init__()
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        if not hasattr(model, "predict_logits"):
            raise TypeError(f"{type(model).__name__} has no predict_logits(images) method")
        if mode not in ("whole", "slide"):
            raise ValueError(f"TEST.MODE must be 'whole' or 'slide', got {mode!r}")
        if output not in ("probs", "labels"):
            raise ValueError(f"output must be 'probs' or 'labels', got {output!r}")
        self.model = model
        self.scales = [float(s) for s in scales]
        self.flip = flip
        self.test_scale = tuple(test_scale) if test_scale else None
        self.mode = mode
        self.crop_size = tuple(crop_size)
        self.stride = tuple(stride)
        self.output = output
        self.chunk_bytes = int(chunk_mb * 2**20)
        self.memory_limit_mb = memory_limit_mb
        self.net_bytes_per_px = float(net_bytes_per_px)
        self.num_classes = num_classes

    @classmethod
    def from_config(cls, cfg, model, tta: bool = True, output: str = "probs"):
        """tta=True: TEST.AUG.SCALES + TEST.AUG.FLIP; False: single scale (for TEST.MODE)."""
        return {
            "model": model,
            "scales": cfg.TEST.AUG.SCALES if tta else [1.0],
            "flip": cfg.TEST.AUG.FLIP if tta else False,
            "test_scale": cfg.INPUT.DFR.RESIZE_SCALE if cfg.INPUT.DFR.TEST_RESIZE else None,
            "mode": cfg.TEST.MODE,
            "crop_size": cfg.TEST.SLIDE.CROP_SIZE,
            "stride": cfg.TEST.SLIDE.STRIDE,
            "output": output,
            "chunk_mb": cfg.TEST.RESIZE_CHUNK_MB,
            "memory_limit_mb": cfg.TEST.MEMORY_LIMIT_MB,
            "net_bytes_per_px": network_bytes_per_pixel(cfg),
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
        }

    def _logits(self, image: torch.Tensor) -> torch.Tensor:
        if self.mode == "slide":
            return slide_logits(self.model.predict_logits, image, self.crop_size, self.stride)
        return self.model.predict_logits(image)

    def _coarse_logits(self, image: torch.Tensor):
        """(logits, size they are resized to first or None) with `predict_logits(image) ==
        resize(logits, size)`: a DFR segmentor's stride-4 logits and its input size (its
        `predict_logits` is that resize), so that the full-resolution logits of every class
        never exist; any other model's (or a sliding window's) `_logits`."""
        m = self.model
        if self.mode == "whole" and hasattr(m, "forward_features") and hasattr(m, "normalize"):
            return m.forward_features(m.normalize(image))["logits"], tuple(image.shape[-2:])
        return self._logits(image), None

    def estimate_bytes(self, out_hw, num_classes: int) -> int:
        """Estimated peak bytes of predicting an image of original size `out_hw`."""
        return _estimate(self, out_hw, num_classes)

    def check_memory(self, out_hw, num_classes: int, name: str = "image"):
        """InferenceMemoryError naming `name`, the estimate and the size that would fit when
        predicting it needs more than `memory_limit_mb` (0: the memory available now)."""
        _check_memory(self, out_hw, num_classes, name, self.model.device)

    def _scaled(self, image: torch.Tensor):
        """(1, 3, h, w) on the model's device for each test scale of image (3, H, W) uint8."""
        H, W = image.shape[-2:]
        hwc = None
        for size in tta_sizes(H, W, self.scales, self.test_scale):
            if size == (H, W):
                x = image
            else:
                if hwc is None:
                    hwc = np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())
                x = CV2ResizeTransform(H, W, *size).apply_image(hwc)
                x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
            yield x[None].to(self.model.device)

    @torch.no_grad()
    def predict_image(self, image: torch.Tensor, out_size) -> torch.Tensor:
        """image (3, H, W) uint8, original size -> (C, *out_size) averaged probabilities."""
        total, n = None, 0
        for x in self._scaled(image):
            views = torch.cat([x, x.flip(-1)]) if self.flip else x
            y = self._logits(views)
            if self.flip:
                y = torch.cat([y[:1], y[1:].flip(-1)])
            p = resize(y, tuple(out_size)).softmax(dim=1).sum(0)
            total = p if total is None else total + p
            n += y.shape[0]
        return total / n

    @torch.no_grad()
    def predict_labels(self, image: torch.Tensor, out_size) -> torch.Tensor:
        """image (3, H, W) uint8, original size -> (*out_size) class labels of the averaged
        probabilities (one view: of the logits), `postprocess.labels_at_size`."""
        views = []
        for x in self._scaled(image):
            y, via = self._coarse_logits(torch.cat([x, x.flip(-1)]) if self.flip else x)
            views += [(y[i], via, i == 1) for i in range(y.shape[0])]
        return labels_at_size(views, tuple(out_size), self.chunk_bytes)

    def forward(self, batched_inputs: List[dict]) -> List[dict]:
        outputs = []
        for d in batched_inputs:
            size = (d.get("height", d["image"].shape[-2]), d.get("width", d["image"].shape[-1]))
            if self.num_classes is not None:
                self.check_memory(size, self.num_classes, d.get("file_name", "image"))
            if self.output == "labels":
                labels = self.predict_labels(d["image"], size)
                outputs.append({"sem_seg_labels": labels.to("cpu")})
            else:
                outputs.append({"sem_seg": self.predict_image(d["image"], size)})
        return outputs


def _estimate(plan, out_hw, num_classes: int) -> int:
    sizes = tta_sizes(*out_hw, plan.scales, plan.test_scale)
    crop = None
    if plan.mode == "slide":
        crop = tuple(min(c, max(s[i] for s in sizes)) for i, c in enumerate(plan.crop_size))
    return inference_bytes(out_hw, sizes, num_classes, net_bytes_per_px=plan.net_bytes_per_px,
                           chunk_bytes=plan.chunk_bytes, flip=plan.flip, slide_crop=crop,
                           labels=plan.output == "labels")  # fmt: skip


def _check_memory(plan, out_hw, num_classes: int, name: str, device):
    if plan.memory_limit_mb < 0:
        return
    limit = (int(plan.memory_limit_mb * 2**20) if plan.memory_limit_mb > 0
             else available_bytes(device))  # fmt: skip
    need = _estimate(plan, out_hw, num_classes)
    if need <= limit:
        return
    fits = fitting_size(out_hw, lambda hw: _estimate(plan, hw, num_classes), limit)
    what = (f"TEST.MEMORY_LIMIT_MB = {plan.memory_limit_mb:g}" if plan.memory_limit_mb > 0
            else "the memory available")  # fmt: skip
    h, w = out_hw
    n = len(tta_sizes(h, w, plan.scales, plan.test_scale))
    raise InferenceMemoryError(
        f"{name} ({w}x{h} px, {num_classes} classes) needs about {need / 2**20:,.1f} MB for "
        f"inference ({plan.output} at full size, TEST.MODE {plan.mode!r}, {n} scale(s)"
        f"{' x flip' if plan.flip else ''}), more than {what} ({limit / 2**20:,.1f} MB). "
        + (f"It would fit at {fits[1]}x{fits[0]} px or less: resize it"
           if fits else "Not even a 16-px image would fit")
        + "; or raise TEST.MEMORY_LIMIT_MB (-1: no check), or set INPUT.DFR.TEST_RESIZE True "
        "(the network then sees the test scale, not the original size)."
    )  # fmt: skip


def check_inference_memory(cfg, out_hw, name: str, tta: bool = False):
    """`SemSegTTA(cfg, ..., tta, output="labels").check_memory` without a model: refuse an
    image of `out_hw` whose evaluation with `cfg` would not fit (the start-up checks)."""
    plan = SimpleNamespace(**SemSegTTA.from_config(cfg, None, tta=tta, output="labels"))
    plan.scales = [float(x) for x in plan.scales]
    plan.test_scale = tuple(plan.test_scale) if plan.test_scale else None
    plan.chunk_bytes = int(plan.chunk_mb * 2**20)
    plan.crop_size = tuple(plan.crop_size)
    _check_memory(plan, out_hw, plan.num_classes, name, cfg.MODEL.DEVICE)
