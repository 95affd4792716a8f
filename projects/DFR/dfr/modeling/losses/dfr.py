"""Dynamic feature regularized loss (Eq. 3-6) and confident labels M (Eq. 7)."""
import torch

from ._checks import (check_map, check_probs, check_radius, check_valid, compute_dtype,
                      no_autocast)
from .pairwise import WindowLayout, dfr_pairwise_sum

__all__ = ["dfr_loss", "confident_labels"]


class _DFRLossFunction(torch.autograd.Function):
    """Ldfr with its gradient w.r.t. probs accumulated in the forward offset loop."""

    @staticmethod
    def forward(ctx, probs, image, feats, valid, kw):
        b, _, h, w = probs.shape
        layout = WindowLayout(h, w, kw["radius"])
        dt = probs.dtype
        v = valid.unsqueeze(1)
        V = layout.flat(v.to(dt))
        P = layout.flat(probs)
        I = layout.flat(image) if kw["use_rgb"] else None
        Fe = layout.flat(feats) if kw["use_feat"] else None
        n_valid = float(v.sum())
        value, grad = dfr_pairwise_sum(
            P, I, Fe, V, layout, stride=kw["stride"], sigma_xy=kw["sigma_xy"],
            sigma_rgb=kw["sigma_rgb"], sigma_feat=kw["sigma_feat"], use_xy=kw["use_xy"],
            use_rgb=kw["use_rgb"], use_feat=kw["use_feat"], need_grad=kw["need_grad"])
        if kw["need_grad"]:
            ctx.save_for_backward(layout.unflat(grad.div_(n_valid)))
        return value / n_valid

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None, None, None, None


def dfr_loss(probs, image, feats, valid=None, radius=5, sigma_xy=6.0, sigma_rgb=0.5,
             sigma_feat=50.0, stride=1.0, use_xy=True, use_rgb=True, use_feat=True):
    """Eq. 4-6: Ldfr = Σ_{(i,j)∈R, j≠i, i,j valid} K(i,j)·(1 − Σ_c P_c(i)P_c(j)) / #valid pixels.

    probs (B, C, h, w) softmax probabilities; image (B, 3, h, w) normalised RGB at the same size
    (may be None when use_rgb=False); feats (B, d, h, w), detached (may be None when
    use_feat=False); valid (B, h, w) bool or None (all valid). R is the (2r+1)x(2r+1) window
    (|dx|, |dy| <= radius, Eq. 3), pairs summed over the batch as ordered pairs.
    K = exp(−‖ΔS‖²/2σ1² − ‖ΔI‖²/2σ2² − ‖ΔF‖²/2σ3²), S = stride·(x, y); each term can be
    switched off (all off: K = 1). Gradient flows to probs only. Returns a scalar (float64 for
    float64 inputs, else float32); 0 with a gradient when no pixel is valid.
    """
    check_map("probs", probs)
    b, c, h, w = probs.shape
    if use_rgb:
        check_map("image", image, b, (h, w), channels=3)
    if use_feat:
        check_map("feats", feats, b, (h, w))
    valid = check_valid(valid, b, (h, w), probs.device)
    radius = check_radius(radius)
    check_probs(probs, probs.dtype)
    dt = compute_dtype(probs, image if use_rgb else None, feats if use_feat else None)
    need_grad = torch.is_grad_enabled() and probs.requires_grad
    if not bool(valid.any()):
        return probs.sum().to(dt) * 0
    kw = dict(radius=radius, sigma_xy=float(sigma_xy), sigma_rgb=float(sigma_rgb),
              sigma_feat=float(sigma_feat), stride=float(stride), use_xy=bool(use_xy),
              use_rgb=bool(use_rgb), use_feat=bool(use_feat), need_grad=need_grad)
    with no_autocast(probs.device):
        p = probs.to(dt)
        img = image.detach().to(dt) if use_rgb else None
        f = feats.detach().to(dt) if use_feat else None
        if need_grad:
            return _DFRLossFunction.apply(p, img, f, valid, kw)
        with torch.no_grad():
            return _DFRLossFunction.forward(None, p, img, f, valid, kw)


@torch.no_grad()
def confident_labels(probs, gamma=0.98, ignore_index=255):
    """Eq. 7: M(i) = argmax_c P_c(i) if max_c P_c(i) > gamma else ignore_index.

    probs (B, C, h, w) -> (B, h, w) long, no gradient.
    """
    check_map("probs", probs)
    conf, arg = probs.max(dim=1)
    return torch.where(conf > gamma, arg, torch.full_like(arg, ignore_index))
