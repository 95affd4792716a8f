"""Losses of the feature-consistency head: feature distance Lfd (Eq. 8-11) and feature
regularized Lfr (Eq. 12-13)."""
import torch

from ._checks import (check_labels, check_map, check_radius, check_valid, compute_dtype,
                      no_autocast)
from .pairwise import (LOG_EPS, WindowLayout, feature_distance_sums, feature_regularized_sum,
                       pair_codes)

__all__ = ["feature_distance_loss", "feature_regularized_loss", "LOG_EPS"]


class _FeatureLossFunction(torch.autograd.Function):
    """A loss of feats whose gradient is accumulated in the forward offset loop by `fn`."""

    @staticmethod
    def forward(ctx, feats, fn):
        value, grad = fn(feats, True)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None


def _apply(feats, fn, dt):
    with no_autocast(feats.device):
        f = feats.to(dt)
        if torch.is_grad_enabled() and feats.requires_grad:
            return _FeatureLossFunction.apply(f, fn)
        with torch.no_grad():
            return fn(f, False)[0]


def feature_distance_loss(feats, labels, valid=None, radius=5, background=0, ignore_index=255):
    """Eq. 8-11: Lfd = mean_{A+bg}(−log D) + mean_{A+fg}(−log D) + 2·mean_{A−}(−log(1 − D)).

    feats (B, d, h, w); labels (B, h, w) integer (M of Eq. 7, scribbles, ...); valid (B, h, w)
    bool or None. RA = ordered window pairs (j ≠ i, Eq. 3) with both pixels valid and labeled
    (≠ ignore_index); A+bg / A+fg: same label, background / not; A−: different labels.
    D = exp(−‖Fi − Fj‖₁/d). Each mean is pooled over the batch; an empty set adds 0.
    −log(1 − D) is computed as −log(1 − D + LOG_EPS) (LOG_EPS = 1e-6), so equal features give
    a finite value; the subgradient of |x| at 0 is 0. Returns a scalar.
    """
    check_map("feats", feats)
    b, d, h, w = feats.shape
    check_labels("labels", labels, b, (h, w))
    valid = check_valid(valid, b, (h, w), feats.device)
    radius = check_radius(radius)
    dt = compute_dtype(feats)
    layout = WindowLayout(h, w, radius)
    code = pair_codes(labels.to(feats.device), valid, layout, ignore_index)

    def fn(f, need_grad):
        value, grad = feature_distance_sums(layout.flat(f), code, layout, int(background),
                                            need_grad)
        return value, (layout.unflat(grad) if need_grad else None)

    return _apply(feats, fn, dt)


def feature_regularized_loss(feats, image, labels, valid=None, radius=5, sigma_xy=6.0,
                             sigma_rgb=0.5, stride=1.0, pairs="RA", ignore_index=255):
    """Eq. 12-13: Lfr = Σ_{(i,j)∈RA, j≠i} Kf(i,j)·‖Fi − Fj‖₁/d / #valid pixels.

    feats (B, d, h, w); image (B, 3, h, w) normalised RGB; labels (B, h, w) integer, the labels
    supervising the feature head (they define RA, Eq. 8); valid (B, h, w) bool or None.
    Kf = exp(−‖ΔS‖²/2σ1² − ‖ΔI‖²/2σ2²), S = stride·(x, y). pairs="R" sums over every valid window
    pair instead of RA. Gradient flows to feats only. 0 with a gradient when nothing is valid.
    """
    check_map("feats", feats)
    b, d, h, w = feats.shape
    check_map("image", image, b, (h, w), channels=3)
    check_labels("labels", labels, b, (h, w))
    if pairs not in ("RA", "R"):
        raise ValueError(f"`pairs` must be 'RA' or 'R', got {pairs!r}")
    valid = check_valid(valid, b, (h, w), feats.device)
    radius = check_radius(radius)
    dt = compute_dtype(feats, image)
    n_valid = float(valid.sum())
    if n_valid == 0:
        return feats.sum().to(dt) * 0
    layout = WindowLayout(h, w, radius)
    code = pair_codes(labels.to(feats.device), valid, layout, ignore_index)
    with no_autocast(feats.device):
        I = layout.flat(image.detach().to(dt))
        V = layout.flat(valid.unsqueeze(1).to(dt))

    def fn(f, need_grad):
        value, grad = feature_regularized_sum(
            layout.flat(f), I, code, V, layout, stride=float(stride), sigma_xy=float(sigma_xy),
            sigma_rgb=float(sigma_rgb), all_pairs=(pairs == "R"), need_grad=need_grad)
        if need_grad:
            grad = layout.unflat(grad.div_(n_valid))
        return value / n_valid, grad

    return _apply(feats, fn, dt)
