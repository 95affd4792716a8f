"""Input validation and dtype handling shared by the losses."""
import contextlib

import torch

__all__ = ["check_map", "check_labels", "check_valid", "check_radius", "check_probs",
           "compute_dtype", "no_autocast"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def check_map(name, x, batch=None, size=None, channels=None):
    """Raise ValueError naming `name` unless x is a floating (B, K, h, w) tensor of that shape."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"`{name}` must be a 4-d tensor (B, K, h, w), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"`{name}` must be a floating-point tensor, got {x.dtype}")
    if batch is not None and (x.shape[0] != batch or tuple(x.shape[2:]) != tuple(size)):
        raise ValueError(
            f"`{name}` has shape {tuple(x.shape)}, expected ({batch}, K, {size[0]}, {size[1]})")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"`{name}` must have {channels} channels, got shape {tuple(x.shape)}")
    return x


def check_labels(name, x, batch, size):
    if not isinstance(x, torch.Tensor) or tuple(x.shape) != (batch, *size):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"`{name}` has shape {shape}, expected ({batch}, {size[0]}, {size[1]})")
    if x.is_floating_point() or x.is_complex():
        raise ValueError(f"`{name}` must be an integer tensor, got {x.dtype}")
    return x


def check_valid(valid, batch, size, device):
    """None -> all True; else a (B, h, w) tensor turned into bool."""
    if valid is None:
        return torch.ones(batch, *size, dtype=torch.bool, device=device)
    if not isinstance(valid, torch.Tensor) or tuple(valid.shape) != (batch, *size):
        shape = tuple(valid.shape) if isinstance(valid, torch.Tensor) else type(valid).__name__
        raise ValueError(f"`valid` has shape {shape}, expected ({batch}, {size[0]}, {size[1]})")
    return valid.to(device=device, dtype=torch.bool)


def check_radius(radius):
    if int(radius) != radius or radius < 0:
        raise ValueError(f"`radius` must be a non-negative integer, got {radius!r}")
    return int(radius)


def check_probs(probs, dtype):
    """Probabilities: no negative entry, channel sums within 1e-3 of 1 (within the dtype's eps
    for fp16/bf16 inputs: rounding each entry alone moves the sum by up to eps/2)."""
    tol = 1e-3
    if dtype in _LOW_PRECISION:
        tol = max(tol, torch.finfo(dtype).eps)
    with torch.no_grad():
        if probs.numel() == 0:
            return
        neg = probs.min() < 0
        off = (probs.sum(1, dtype=torch.float64) - 1).abs().max() > tol
        bad_neg, bad_sum = torch.stack([neg, off]).tolist()
    if bad_neg:
        raise ValueError("`probs` has negative entries; pass softmax probabilities, not logits")
    if bad_sum:
        raise ValueError(f"`probs` does not sum to 1 over channels (tolerance {tol:g}); "
                         "pass softmax probabilities")


def compute_dtype(*tensors):
    """float64 if any input is float64, else float32 (fp16/bf16 are upcast: the pairwise sums
    always run in at least float32, also under autocast)."""
    dt = torch.float32
    for t in tensors:
        if t is not None and t.dtype == torch.float64:
            dt = torch.float64
    return dt


def no_autocast(device):
    """Context that switches autocast off on `device` (no-op where autocast is unsupported)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # device type without autocast
        return contextlib.nullcontext()
