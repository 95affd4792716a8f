"""Dynamic feature regularized loss (Eq. 3-6) and confident labels M (Eq. 7)."""
import torch

from ._checks import check_map
from .fused import pairwise_losses

__all__ = ["dfr_loss", "confident_labels"]


def dfr_loss(probs, image, feats, valid=None, radius=5, sigma_xy=6.0, sigma_rgb=0.5,
             sigma_feat=50.0, stride=1.0, use_xy=True, use_rgb=True, use_feat=True):
    """Eq. 4-6: Ldfr = Σ_{(i,j)∈R, j≠i, i,j valid} K(i,j)·(1 − Σ_c P_c(i)P_c(j)) / #valid pixels.

    probs (B, C, h, w) softmax probabilities; image (B, 3, h, w) normalised RGB at the same size
    (may be None when use_rgb=False); feats (B, d, h, w), detached (may be None when
    use_feat=False); valid (B, h, w) bool or None (all valid). R is the (2r+1)x(2r+1) window
    (|dx|, |dy| <= radius, Eq. 3), pairs summed over the batch as ordered pairs.
    K = exp(−‖ΔS‖²/2σ1² − ‖ΔI‖²/2σ2² − ‖ΔF‖²/2σ3²), S = stride·(x, y); each term can be
    switched off (all off: K = 1). Gradient flows to probs only. Returns a scalar (float64 for
    float64 inputs, else float32, also under autocast); 0 with a gradient when nothing is valid.
    """
    return pairwise_losses(
        probs, image, feats, None, valid, terms=("dfr",), radius=radius, sigma_xy=sigma_xy,
        sigma_rgb=sigma_rgb, sigma_feat=sigma_feat, stride=stride, use_xy=use_xy,
        use_rgb=use_rgb, use_feat=use_feat)["dfr"]


@torch.no_grad()
def confident_labels(probs, gamma=0.98, ignore_index=255):
    """Eq. 7: M(i) = argmax_c P_c(i) if max_c P_c(i) > gamma else ignore_index.

    probs (B, C, h, w) -> (B, h, w) long, no gradient.
    """
    check_map("probs", probs)
    conf, arg = probs.max(dim=1)
    return torch.where(conf > gamma, arg, torch.full_like(arg, ignore_index))
