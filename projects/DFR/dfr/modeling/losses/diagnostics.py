"""Diagnostics of the feature branch: what Ldfr's kernel, Lfd and Lfr actually see.

Pure torch, no gradient, from the tensors the pairwise losses already have at the loss map
(B, ., h, w), with the losses' own M (`confident_labels`), pair codes (`pair_codes`), pair sets
(`pair_sets`) and kernel (`spatial_log_kernel`, `log_kernel`); `DFRCriterion` passes the M of
its training step, so that losses and diagnostics read one computation. Window pairs are the
ordered pairs (i, j), j != i, of the (2r+1)x(2r+1) window (Eq. 3) with both pixels valid, the
same set as Ldfr; every count below is of ORDERED pairs (the half-window offsets of
`pairwise.WindowLayout`, each counted twice).

    m_frac          fraction of the valid pixels that M (Eq. 7, γ) labels
    pairs_bg/fg/neg |A+bg|, |A+fg|, |A-| (Eq. 8) of the labels supervising the feature head
    feat_norm       mean ‖F(i)‖₂ over valid pixels
    feat_dead_frac  fraction of the d channels that are <= 0 at every valid pixel of the batch
    feat_dist       mean ‖F(i) − F(j)‖₂ over window pairs (the scale σ3 is compared with)
    ffac_same/diff  mean exp(−‖ΔF‖²/2σ3²) over window pairs of two scribble pixels with the
                    same / a different class
    k_mean          mean K over window pairs, with the feature term (Eq. 6)
    k_nofeat_mean   the same K without the feature term (XY and RGB terms as switched on)
"""
from typing import Dict, Optional

import torch

from ._checks import compute_dtype, no_autocast
from .dfr import confident_labels
from .pairwise import WindowLayout, log_kernel, pair_codes, pair_sets, spatial_log_kernel

__all__ = ["feature_branch_diagnostics", "window_feature_distance", "window_feature_distance_sum",
           "DIAGNOSTIC_KEYS"]

DIAGNOSTIC_KEYS = ("m_frac", "pairs_bg", "pairs_fg", "pairs_neg", "feat_norm", "feat_dead_frac",
                   "feat_dist", "ffac_same", "ffac_diff", "k_mean", "k_nofeat_mean")


@torch.no_grad()
def window_feature_distance(feats: torch.Tensor, valid: torch.Tensor, radius: int = 5):
    """Mean ‖F(i) − F(j)‖₂ over the window pairs (j != i, both valid) of the batch, a 0-d
    tensor without gradient (NaN when there is no pair). feats (B, d, h, w), valid (B, h, w)."""
    num, den = window_feature_distance_sum(feats, valid, radius)
    return num / den


@torch.no_grad()
def window_feature_distance_sum(feats: torch.Tensor, valid: torch.Tensor, radius: int = 5):
    """(Σ ‖F(i) − F(j)‖₂, number of pairs) over the half-window pairs of the batch: two 0-d
    tensors, which summed over processes give the sums of their joint batch. Computed in float32
    (float64 for float64 feats) with autocast off, as the losses."""
    b, _, h, w = feats.shape
    lay = WindowLayout(h, w, radius)
    dt = compute_dtype(feats)
    with no_autocast(feats.device):
        V = lay.flat(valid.unsqueeze(1).to(dt))[..., 0]
        Fl = lay.flat(feats.detach().to(dt))
        L = lay.L
        num = V.new_zeros(())
        den = V.new_zeros(())
        for _, _, s in lay.offsets:
            vv = V[:, :L] * V[:, s:s + L]
            num += (torch.linalg.vector_norm(Fl[:, :L] - Fl[:, s:s + L], 2, dim=-1) * vv).sum()
            den += vv.sum()
    return num, den


@torch.no_grad()
def feature_branch_diagnostics(
    probs: torch.Tensor,
    image: Optional[torch.Tensor],
    feats: Optional[torch.Tensor],
    scribbles: torch.Tensor,
    target: Optional[torch.Tensor],
    valid: torch.Tensor,
    *,
    radius: int = 5,
    sigma_xy: float = 6.0,
    sigma_rgb: float = 0.5,
    sigma_feat: float = 50.0,
    stride: float = 1.0,
    use_xy: bool = True,
    use_rgb: bool = True,
    gamma: float = 0.98,
    background: int = 0,
    ignore_index: int = 255,
    m_labels: Optional[torch.Tensor] = None,
) -> Dict[str, float]:
    """probs (B, C, h, w) softmax; image (B, 3, h, w) normalised RGB (None: no RGB term);
    feats (B, d, h, w) or None (no feature head: the feature keys are left out); scribbles
    (B, h, w) the scribble labels at this size (ignore_index = none); target (B, h, w) the
    labels supervising the feature head (None: M is used for the pair counts); valid (B, h, w)
    bool; m_labels (B, h, w): M of Eq. 7 when already computed (None: from probs and gamma).
    Returns {key: float} (keys of DIAGNOSTIC_KEYS; a mean over an empty set is NaN)."""
    b, _, h, w = probs.shape
    dt = torch.float64
    valid = valid.bool()
    n_valid = max(int(valid.sum()), 1)
    m_lab = confident_labels(probs, gamma, ignore_index) if m_labels is None else m_labels
    out = {"m_frac": int(((m_lab != ignore_index) & valid).sum()) / n_valid}
    target = m_lab if target is None else target

    lay = WindowLayout(h, w, radius)

    def codes(lab):  # -1 where unlabeled / invalid / padding
        return pair_codes(lab, valid, lay, ignore_index)[..., 0]

    V = lay.flat(valid.unsqueeze(1).to(dt))[..., 0]
    T, S = codes(target), codes(scribbles)
    I = lay.flat(image.to(dt)) if (image is not None and use_rgb) else None
    Fl = lay.flat(feats.to(dt)) if feats is not None else None
    L = lay.L
    acc = {k: torch.zeros((), dtype=dt, device=probs.device) for k in (
        "bg", "fg", "neg", "pairs", "k", "k0", "dist", "same", "n_same", "diff", "n_diff")}
    for dy, dx, s in lay.offsets:
        vv = V[:, :L] * V[:, s:s + L]
        for key, m in zip(("bg", "fg", "neg"), pair_sets(T[:, :L], T[:, s:s + L], background)):
            acc[key] += m.sum()
        di2 = (I[:, :L] - I[:, s:s + L]).square().sum(-1) if I is not None else None
        k0 = log_kernel(vv, spatial_log_kernel(dy, dx, stride, sigma_xy) if use_xy else None,
                        di2, sigma_rgb=sigma_rgb).exp_()  # K without its feature term
        acc["pairs"] += vv.sum()
        acc["k0"] += (k0 * vv).sum()
        if Fl is not None:
            d2 = (Fl[:, :L] - Fl[:, s:s + L]).square().sum(-1)
            ffac = log_kernel(vv, df2=d2, sigma_feat=sigma_feat).exp_()  # its feature term
            acc["k"] += (k0 * ffac * vv).sum()
            acc["dist"] += (d2.sqrt() * vv).sum()
            sa, sb = S[:, :L], S[:, s:s + L]
            sboth = (sa >= 0) & (sb >= 0)
            ssame, sdiff = sboth & (sa == sb), sboth & (sa != sb)
            acc["same"] += (ffac * ssame).sum()
            acc["n_same"] += ssame.sum()
            acc["diff"] += (ffac * sdiff).sum()
            acc["n_diff"] += sdiff.sum()
    vals = {k: float(v) for k, v in acc.items()}

    def mean(num, den):
        return vals[num] / vals[den] if vals[den] > 0 else float("nan")

    out.update(pairs_bg=2 * vals["bg"], pairs_fg=2 * vals["fg"], pairs_neg=2 * vals["neg"],
               k_nofeat_mean=mean("k0", "pairs"))
    if feats is not None:
        vmask = valid.unsqueeze(1)
        out["feat_norm"] = float(feats.to(dt).square().sum(1).sqrt()[valid].mean()) \
            if bool(valid.any()) else float("nan")
        alive = ((feats > 0) & vmask).flatten(2).any(-1).any(0)  # (d,)
        out["feat_dead_frac"] = float(1.0 - alive.to(dt).mean())
        out["feat_dist"] = mean("dist", "pairs")
        out["ffac_same"] = mean("same", "n_same")
        out["ffac_diff"] = mean("diff", "n_diff")
        out["k_mean"] = mean("k", "pairs")
    return out
