"""Losses of the feature-consistency head: feature distance Lfd (Eq. 8-11) and feature
regularized Lfr (Eq. 12-13)."""
from .fused import pairwise_losses
from .pairwise import LOG_EPS

__all__ = ["feature_distance_loss", "feature_regularized_loss", "LOG_EPS"]


def feature_distance_loss(feats, labels, valid=None, radius=5, background=0, ignore_index=255):
    """Eq. 8-11: Lfd = mean_{A+bg}(−log D) + mean_{A+fg}(−log D) + 2·mean_{A−}(−log(1 − D)).

    feats (B, d, h, w); labels (B, h, w) integer (M of Eq. 7, scribbles, ...); valid (B, h, w)
    bool or None. RA = ordered window pairs (j ≠ i, Eq. 3) with both pixels valid and labeled
    (≠ ignore_index); A+bg / A+fg: same label, = / ≠ background; A−: different labels.
    D = exp(−‖Fi − Fj‖₁/d). Each mean is pooled over the batch; an empty set adds 0.
    −log(1 − D) is computed as −log(1 − D + LOG_EPS), LOG_EPS = 1e-6, so equal features give a
    finite value; the subgradient of |x| at 0 is 0. Returns a scalar.
    """
    return pairwise_losses(None, None, feats, labels, valid, terms=("fd",), radius=radius,
                           background=background, ignore_index=ignore_index)["fd"]


def feature_regularized_loss(feats, image, labels, valid=None, radius=5, sigma_xy=6.0,
                             sigma_rgb=0.5, stride=1.0, pairs="RA", ignore_index=255):
    """Eq. 12-13: Lfr = Σ_{(i,j)∈RA, j≠i} Kf(i,j)·‖Fi − Fj‖₁/d / #valid pixels.

    feats (B, d, h, w); image (B, 3, h, w) normalised RGB; labels (B, h, w) integer, the labels
    supervising the feature head (they define RA, Eq. 8); valid (B, h, w) bool or None.
    Kf = exp(−‖ΔS‖²/2σ1² − ‖ΔI‖²/2σ2²), S = stride·(x, y). pairs="R": every valid window pair
    instead of RA. Gradient flows to feats only. 0 with a gradient when nothing is valid.
    """
    if pairs not in ("RA", "R"):
        raise ValueError(f"`pairs` must be 'RA' or 'R', got {pairs!r}")
    return pairwise_losses(None, image, feats, labels, valid, terms=("fr",), radius=radius,
                           sigma_xy=sigma_xy, sigma_rgb=sigma_rgb, stride=stride,
                           fr_pairs=pairs, ignore_index=ignore_index)["fr"]
