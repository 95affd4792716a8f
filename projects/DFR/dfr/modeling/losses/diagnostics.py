"""Diagnostics of the feature branch: what Ldfr's kernel, Lfd and Lfr actually see.

The window sums are accumulated by the loss pass itself (`pairwise_losses(...,
diagnostics=True)`, torch or Triton), with the losses' own pair codes, pair sets and kernel;
`diagnostic_values` turns them into the keys below, reading the device once per logging period.
`DFRCriterion` passes the M of its training step, so that losses and diagnostics read one
computation. Window pairs are the
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

from .dfr import confident_labels
from .fused import pairwise_losses
from .pairwise import DIAG_SUMS
from .params import PairwiseParams

__all__ = ["feature_branch_diagnostics", "diagnostic_values", "window_feature_distance",
           "window_feature_distance_sum", "DIAGNOSTIC_KEYS"]

DIAGNOSTIC_KEYS = ("m_frac", "pairs_bg", "pairs_fg", "pairs_neg", "feat_norm", "feat_dead_frac",
                   "feat_dist", "ffac_same", "ffac_diff", "k_mean", "k_nofeat_mean")


@torch.no_grad()
def window_feature_distance(feats: torch.Tensor, valid: torch.Tensor, radius: int = 5):
    """Mean ‖F(i) − F(j)‖₂ over the window pairs (j != i, both valid) of the batch, a 0-d
    tensor without gradient (NaN when there is no pair). feats (B, d, h, w), valid (B, h, w)."""
    num, den = window_feature_distance_sum(feats, valid, radius)
    return num / den


@torch.no_grad()
def window_feature_distance_sum(feats: torch.Tensor, valid: torch.Tensor, radius: int = 5,
                                impl: str = "torch"):
    """(Σ ‖F(i) − F(j)‖₂, number of pairs) over the ordered window pairs of the batch: two 0-d
    tensors, which summed over processes give the sums of their joint batch. One pass of the
    losses' own window code (`pairwise_losses(..., diagnostics=True)`, implementation `impl`),
    in float32 (float64 for float64 feats) with autocast off, as the losses."""
    sums = pairwise_losses(None, None, feats.detach(), None, valid, radius=radius, terms=(),
                           impl=impl, diagnostics=True)["diag"]
    return sums["dist"], sums["pairs"]


@torch.no_grad()
def diagnostic_values(sums: Dict[str, torch.Tensor], m_labels: torch.Tensor, valid: torch.Tensor,
                      feats: Optional[torch.Tensor], ignore_index: int = 255) -> Dict[str, float]:
    """The diagnostics (keys of DIAGNOSTIC_KEYS) from the ordered-pair sums that the loss pass
    accumulated (`pairwise_losses(..., diagnostics=True)["diag"]`), M (B, h, w) and the
    per-pixel feature statistics. Reads the device once: call it once per logging period.
    feats None: the feature keys are left out; a mean over an empty set is NaN."""
    valid = valid.bool()
    dt = torch.float64
    n_valid = valid.sum().clamp(min=1).to(dt)
    parts = {"m_frac": ((m_labels != ignore_index) & valid).sum().to(dt) / n_valid}
    if feats is not None:
        f = feats.detach().to(dt)
        norm = f.square().sum(1).sqrt()
        parts["feat_norm"] = torch.where(valid.any(), (norm * valid).sum() / n_valid,
                                         torch.full((), float("nan"), dtype=dt,
                                                    device=f.device))
        alive = ((f > 0) & valid.unsqueeze(1)).flatten(2).any(-1).any(0)  # (d,)
        parts["feat_dead_frac"] = 1.0 - alive.to(dt).mean()
    keys = list(parts)
    host = torch.stack([parts[k].to(dt) for k in keys] + [
        sums[k].to(dt).reshape(()) for k in DIAG_SUMS]).tolist()
    out = dict(zip(keys, host[:len(keys)]))
    s = dict(zip(DIAG_SUMS, host[len(keys):]))

    def mean(num, den):
        return s[num] / s[den] if s[den] > 0 else float("nan")

    out.update(pairs_bg=s["n_bg"], pairs_fg=s["n_fg"], pairs_neg=s["n_neg"],
               k_nofeat_mean=mean("k0", "pairs"))
    if feats is not None:
        out.update(feat_dist=mean("dist", "pairs"), ffac_same=mean("same", "n_same"),
                   ffac_diff=mean("diff", "n_diff"), k_mean=mean("k", "pairs"))
    return out


@torch.no_grad()
def feature_branch_diagnostics(
    probs: torch.Tensor,
    image: Optional[torch.Tensor],
    feats: Optional[torch.Tensor],
    scribbles: torch.Tensor,
    target: Optional[torch.Tensor],
    valid: torch.Tensor,
    params: Optional[PairwiseParams] = None,
    *,
    gamma: float = 0.98,
    m_labels: Optional[torch.Tensor] = None,
    **settings,
) -> Dict[str, float]:
    """The diagnostics of one batch on their own (in float64; the criterion reads them from its
    loss pass instead). probs (B, C, h, w) softmax; image (B, 3, h, w) normalised RGB (None: no
    RGB term); feats (B, d, h, w) or None (no feature head: the feature keys are left out);
    scribbles (B, h, w) the scribble labels at this size (ignore_index = none); target
    (B, h, w) the labels supervising the feature head (None: M is used for the pair counts);
    valid (B, h, w) bool; params / settings: the `PairwiseParams` (fields as keywords, e.g.
    radius=3, use_rgb=False); m_labels: M of Eq. 7 when already computed (None: from probs
    and gamma). Returns {key: float} (keys of DIAGNOSTIC_KEYS)."""
    params = (params or PairwiseParams()).replace(**settings) if settings else \
        (params or PairwiseParams())
    if image is None:
        params = params.replace(use_rgb=False)
    valid = valid.bool()
    m_lab = confident_labels(probs, gamma, params.ignore_index) if m_labels is None \
        else m_labels
    target = m_lab if target is None else target
    f64 = (lambda x: x.to(torch.float64) if x is not None else None)
    sums = pairwise_losses(f64(probs), f64(image), f64(feats), target, valid, params, terms=(),
                           scribbles=scribbles, diagnostics=True, validate=False)["diag"]
    return diagnostic_values(sums, m_lab, valid, feats, params.ignore_index)
