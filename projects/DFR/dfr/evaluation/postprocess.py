"""Class labels at the original image size with memory bounded independently of classes x pixels.

The model's inference (mmseg `postprocess_result`, Detectron2 `sem_seg_postprocess`) resizes
the logits of EVERY class to the original size in float32, then takes a softmax: C x H x W floats
two or three times over (a 4000x3000 photo with 150 classes: 7.2 GB each; 8000x6000: 28.8 GB).
Evaluation and the demo need only the argmax. Here the resize runs on a few classes at a time
(as many as `chunk_bytes` of output allows, at least one) while a running maximum keeps the
best class of each pixel:

- one view (plain inference, sliding window): the labels are the argmax over classes of the
  logits resized to the original size, bit for bit: bilinear resizing treats each class plane
  on its own, so a chunk of planes resizes to exactly the planes of the full resize, and ties
  go to the lowest class as `torch.argmax`'s do. (The softmax the model applies does not change
  the argmax, except where two classes' probabilities round to the same float.)
- several views (multi-scale / flip TTA): the argmax of the summed softmax probabilities,
  in two passes over the class chunks: each view's log-sum-exp at the original size, then the
  chunks' probabilities exp(logit - lse) summed over views. The same labels as summing full
  softmax maps, up to float rounding of near-ties.

Peak memory: the views' logits at network resolution, one chunk at the original size
(`chunk_bytes`), and a few per-pixel maps (best value, mask, labels; one log-sum-exp per view
with TTA). `inference_bytes` estimates it (plus the network's activations), so that an image
that still cannot fit is refused by name with the size that would (`InferenceMemoryError`).
"""
import math
import os
from typing import List, Optional, Sequence, Tuple

import torch

from ..utils import resize

__all__ = ["InferenceMemoryError", "View", "labels_at_size", "label_dtype", "inference_bytes",
           "network_bytes_per_pixel", "available_bytes", "fitting_size"]  # fmt: skip

View = Tuple[torch.Tensor, Optional[Tuple[int, int]], bool]  # (logits (C,h,w), via size, flip)


class InferenceMemoryError(MemoryError):
    """An image whose inference would need more memory than TEST.MEMORY_LIMIT_MB allows; the
    message names the image, the estimate and the size that would fit."""


def label_dtype(num_classes: int) -> torch.dtype:
    """uint8 up to 256 classes, else int32: the label map is the one full-size map kept."""
    return torch.uint8 if num_classes <= 256 else torch.int32


def _resized(view: View, c0: int, c1: int, size) -> torch.Tensor:
    """Classes c0:c1 of a view at `size`: (logits -> via) -> flip -> size, as the model's
    inference and SemSegTTA resize them (each class plane on its own)."""
    logits, via, flip = view
    y = logits[None, c0:c1]
    if via is not None:
        y = resize(y, via)
    if flip:
        y = y.flip(-1)
    return resize(y, size)[0]


def _chunk(num_classes: int, px: int, view_px: int, chunk_bytes: int) -> int:
    return max(1, min(num_classes, int(chunk_bytes) // (4 * (px + view_px))))


@torch.no_grad()
def labels_at_size(views: Sequence[View], size, chunk_bytes: int = 256 << 20) -> torch.Tensor:
    """(H, W) class labels at `size` from one or several views (module docstring).

    Args:
        views: (logits (C, h, w) float, via (h', w') or None, flip) per view: the logits are
            resized to `via` first when given (the network input size of stride-4 logits),
            flipped back horizontally when `flip`, then resized to `size` (bilinear,
            align_corners=False).
        size: (H, W) of the labels.
        chunk_bytes: bytes of resized logits (at `size` and `via`) per chunk of classes.
    Returns:
        (H, W) labels, `label_dtype(C)`, on the logits' device.
    """
    H, W = (int(v) for v in size)
    num_classes = views[0][0].shape[0]
    device = views[0][0].device
    view_px = max(v[1][0] * v[1][1] if v[1] is not None else 0 for v in views)
    k = _chunk(num_classes, H * W, view_px, chunk_bytes)
    labels = torch.zeros((H, W), dtype=label_dtype(num_classes), device=device)
    best = torch.empty((H, W), dtype=torch.float32, device=device)
    mask = torch.empty((H, W), dtype=torch.bool, device=device)
    lse = None
    if len(views) > 1:  # pass 1: each view's log-sum-exp over classes at `size`
        lse = []
        for v in views:
            m = torch.full((H, W), -math.inf, device=device)
            s = torch.zeros((H, W), device=device)
            for c0 in range(0, num_classes, k):
                r = _resized(v, c0, min(c0 + k, num_classes), (H, W)).float()
                new = torch.maximum(m, r.amax(0))
                s.mul_(torch.exp(m - new)).add_(torch.exp(r - new).sum(0))
                m = new
                del r
            lse.append(m.add_(s.log_()))
            del s
    for c0 in range(0, num_classes, k):  # pass 2: running argmax over the class chunks
        c1 = min(c0 + k, num_classes)
        if lse is None:
            r = _resized(views[0], c0, c1, (H, W)).float()
        else:
            r = torch.zeros((c1 - c0, H, W), device=device)
            for v, lv in zip(views, lse):
                r.add_(torch.exp(_resized(v, c0, c1, (H, W)).float() - lv))
        for j in range(c1 - c0):  # one plane at a time: 3 passes over the pixels per class
            if c0 + j == 0:
                best.copy_(r[0])
                continue
            torch.gt(r[j], best, out=mask)  # strict: ties keep the lower class, as argmax
            torch.maximum(best, r[j], out=best)
            labels.masked_fill_(mask, c0 + j)
        del r
    return labels


def network_bytes_per_pixel(cfg) -> float:
    """Rough bytes of activations per input pixel of one inference forward pass of the DFR
    segmentor (no gradient): the stride-4 maps dominate (UperNet's concatenated FPN levels,
    their inputs and the head's conv; Swin's first stage and its MLP), float32. Calibrated
    on a CPU: Swin-B UperNet on a 2048x1536 input, 150 classes (demo.py, ADE20K config with
    INPUT.DFR.TEST_RESIZE False) peaked 4.0 GiB above the loaded model (peak RSS 5.5 GiB);
    `inference_bytes` estimates 4.75 GiB."""
    fused = cfg.MODEL.UPERNET.CHANNELS * len(cfg.MODEL.UPERNET.FUSION_LEVELS)
    embed = cfg.MODEL.SWIN.EMBED_DIM or {"T": 96, "S": 96, "B": 128, "L": 192}.get(
        cfg.MODEL.SWIN.SIZE, 128)  # fmt: skip
    per_stride4_px = 2 * fused + cfg.MODEL.UPERNET.CHANNELS + 6 * embed
    return 4.0 * per_stride4_px / 16 * NETWORK_FACTOR


NETWORK_FACTOR = 1.1  # allocator slack and the deeper stages' maps on top of the count above


def inference_bytes(out_hw, view_hws: Sequence[Tuple[int, int]], num_classes: int, *,
                    net_bytes_per_px: float, chunk_bytes: int = 256 << 20, flip: bool = False,
                    slide_crop: Optional[Tuple[int, int]] = None, labels: bool = True) -> int:
    """Estimated peak bytes of inferring one image at `out_hw` (H, W) from views of the
    network-input sizes `view_hws` (each with its flipped copy when `flip`): the decoded
    image, the network on the largest view (a sliding window: one crop), the views' logits
    and the postprocessing (`labels`: `labels_at_size`; else the full-size probabilities)."""
    H, W = out_hw
    px = H * W
    n_views = len(view_hws) * (2 if flip else 1)
    big = max(h * w for h, w in view_hws)
    net_px = (slide_crop[0] * slide_crop[1] if slide_crop else big) * (2 if flip else 1)
    network = net_bytes_per_px * net_px + 3 * 4 * big * (2 if flip else 1)
    per_view_logits = [num_classes * 4 * (h * w if slide_crop else -(-h // 4) * -(-w // 4))
                       for h, w in view_hws]  # fmt: skip
    logits = sum(per_view_logits) * (2 if flip else 1)
    image = 3 * px + 3 * big
    if not labels:  # full-size float probabilities: the resize, the softmax and the sum
        post = 3 * num_classes * 4 * px + (num_classes * 4 * big if not slide_crop else 0)
        return int(network + logits + image + post)
    k = _chunk(num_classes, px, 0 if slide_crop else big, chunk_bytes)
    chunk = 4 * k * (px + (0 if slide_crop else big)) * (2 if n_views > 1 else 1)
    per_px = 4 + 1 + label_dtype(num_classes).itemsize  # best, mask, labels
    if n_views > 1:
        per_px += 4 * n_views + 3 * 4  # one log-sum-exp per view; m, s and a temporary
    return int(network + logits + image + chunk + per_px * px)


def fitting_size(out_hw, estimate, limit: int) -> Optional[Tuple[int, int]]:
    """The largest (H, W) with the aspect ratio of `out_hw` whose `estimate((H, W))` is within
    `limit` bytes (None when not even 16 px fit)."""
    H, W = out_hw
    lo, hi = 0.0, 1.0
    if estimate((max(1, round(H * 16 / max(H, W))), max(1, round(W * 16 / max(H, W))))) > limit:
        return None
    for _ in range(40):
        mid = (lo + hi) / 2
        if estimate((max(1, int(H * mid)), max(1, int(W * mid)))) <= limit:
            lo = mid
        else:
            hi = mid
    return max(1, int(H * lo)), max(1, int(W * lo))


def available_bytes(device) -> int:
    """Memory available for inference now: free GPU memory (plus what torch's allocator holds
    and would reuse) on CUDA, MemAvailable on a CPU (Linux; else the physical memory)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62
