"""Small helpers shared across the package (no detectron2 imports, no config)."""
import contextlib
import math

import torch
import torch.nn.functional as F

__all__ = ["json_safe", "meta_device", "resize", "resize_nearest"]


def resize(x: torch.Tensor, size, mode: str = "bilinear") -> torch.Tensor:
    """(..., H, W) float map -> (..., *size), `align_corners=False` (mmseg's `resize`);
    returned unchanged when it already has that size."""
    size = tuple(int(v) for v in size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def resize_nearest(x: torch.Tensor, size) -> torch.Tensor:
    """(B, H, W) integer/bool map -> (B, h, w) by nearest neighbour, sampling each output
    pixel's centre ("nearest-exact": pixel 4i+2 at stride 4, where the bilinear / area maps
    are centred too)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    y = F.interpolate(x[:, None].float(), size=tuple(size), mode="nearest-exact")[:, 0]
    return y.to(x.dtype)


@contextlib.contextmanager
def meta_device():
    """Build modules on the `meta` device (shapes and parameter counts, no memory). timm's Swin
    turns `torch.linspace(...)` into Python floats for its drop-path rates, which needs real
    data, so that one call is kept on the CPU while the context is active."""
    linspace = torch.linspace

    def cpu_linspace(*args, **kwargs):
        return linspace(*args, **{**kwargs, "device": "cpu"})

    torch.linspace = cpu_linspace
    try:
        with torch.device("meta"):
            yield
    finally:
        torch.linspace = linspace


def json_safe(obj):
    """`obj` with every non-finite float (NaN: a class absent from the ground truth) as None,
    so that `json.dump(..., allow_nan=False)` writes valid JSON (`null`)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
