"""Small helpers shared across the package (no detectron2 imports, no config)."""
import torch
import torch.nn.functional as F

__all__ = ["resize"]


def resize(x: torch.Tensor, size, mode: str = "bilinear") -> torch.Tensor:
    """(..., H, W) float map -> (..., *size), `align_corners=False` (mmseg's `resize`);
    returned unchanged when it already has that size."""
    size = tuple(int(v) for v in size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=False)
