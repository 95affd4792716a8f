"""The naive vectorised pairwise losses: every tensor unfolded over the (2r+1)^2 window positions
(as GatedCRF does), differentiable by plain autograd. Memory grows as (2r+1)^2 x the inputs, which
is why the model uses the offset loop of `pairwise.py` instead; these are the baseline of
tools/benchmark_losses.py and a second reference in tests/modeling/test_losses.py. Never used by the model.

`unfold_dfr` = Eq. 4-6, `unfold_fd` = Eq. 8-11, `unfold_fr` = Eq. 12-13 (the DFR paper,
arXiv:2108.01296), with the arguments of `dfr_loss`, `feature_distance_loss` and
`feature_regularized_loss`.
"""
import torch
import torch.nn.functional as F

from .pairwise import LOG_EPS

__all__ = ["unfold_dfr", "unfold_fd", "unfold_fr"]


def _unfold(x, r):
    """(B, K, h, w) -> (B, K, (2r+1)^2, h, w), zero outside the map."""
    b, k, h, w = x.shape
    return F.unfold(x, 2 * r + 1, padding=r).view(b, k, (2 * r + 1) ** 2, h, w)


def _spatial(r, stride, sigma_xy, like):
    ys, xs = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    d2 = (ys**2 + xs**2).reshape(-1).to(like)
    return torch.exp(-(stride**2) * d2 / (2 * sigma_xy**2)).view(1, -1, 1, 1)


def _pair_mask(valid, r, like):
    """(B, k², h, w): both pixels valid, j != i."""
    v = valid.unsqueeze(1).to(like)
    m = v * _unfold(v, r)[:, 0]
    m[:, (2 * r + 1) ** 2 // 2] = 0
    return m


def unfold_dfr(probs, image, feats, valid=None, radius=5, sigma_xy=6.0, sigma_rgb=0.5,
               sigma_feat=50.0, stride=1.0, use_xy=True, use_rgb=True, use_feat=True):
    b, c, h, w = probs.shape
    r = radius
    if valid is None:
        valid = torch.ones(b, h, w, dtype=torch.bool, device=probs.device)
    logk = 0.0
    if use_rgb:
        logk = logk - ((image.unsqueeze(2) - _unfold(image, r)) ** 2).sum(1) / (2 * sigma_rgb**2)
    if use_feat:
        f = feats.detach()
        logk = logk - ((f.unsqueeze(2) - _unfold(f, r)) ** 2).sum(1) / (2 * sigma_feat**2)
    k = torch.exp(logk) if torch.is_tensor(logk) else torch.ones(1, device=probs.device)
    if use_xy:
        k = k * _spatial(r, stride, sigma_xy, probs)
    k = k * _pair_mask(valid, r, probs)
    phi = k * (1 - (probs.unsqueeze(2) * _unfold(probs, r)).sum(1))
    return phi.sum() / valid.sum()


def _unfold_codes(labels, valid, r, ignore_index):
    code = torch.where(valid & (labels != ignore_index), labels.long() + 1,
                       torch.zeros_like(labels, dtype=torch.long))
    cu = _unfold(code.unsqueeze(1).double(), r)[:, 0].long()  # 0 = not labeled / outside
    return code.unsqueeze(1), cu


def unfold_fd(feats, labels, valid=None, radius=5, background=0, ignore_index=255):
    b, d, h, w = feats.shape
    r = radius
    if valid is None:
        valid = torch.ones(b, h, w, dtype=torch.bool, device=feats.device)
    ci, cj = _unfold_codes(labels, valid, r, ignore_index)
    both = (ci > 0) & (cj > 0)
    both[:, (2 * r + 1) ** 2 // 2] = False
    same = both & (ci == cj)
    bg = same & (ci == background + 1)
    fg = same & ~bg
    neg = both & ~same
    x = (feats.unsqueeze(2) - _unfold(feats, r)).abs().sum(1) / d
    D = torch.exp(-x)
    loss = feats.sum() * 0
    for mask, term, wgt in ((bg, x, 1.0), (fg, x, 1.0), (neg, -torch.log(1 - D + LOG_EPS), 2.0)):
        n = mask.sum()
        if n > 0:
            loss = loss + wgt * (term * mask).sum() / n
    return loss


def unfold_fr(feats, image, labels, valid=None, radius=5, sigma_xy=6.0, sigma_rgb=0.5, stride=1.0,
              pairs="RA", ignore_index=255):
    b, d, h, w = feats.shape
    r = radius
    if valid is None:
        valid = torch.ones(b, h, w, dtype=torch.bool, device=feats.device)
    if pairs == "RA":
        ci, cj = _unfold_codes(labels, valid, r, ignore_index)
        m = ((ci > 0) & (cj > 0)).to(feats.dtype)
        m[:, (2 * r + 1) ** 2 // 2] = 0
    else:
        m = _pair_mask(valid, r, feats)
    logk = -((image.unsqueeze(2) - _unfold(image, r)) ** 2).sum(1) / (2 * sigma_rgb**2)
    k = torch.exp(logk) * _spatial(r, stride, sigma_xy, feats) * m
    x = (feats.unsqueeze(2) - _unfold(feats, r)).abs().sum(1) / d
    return (k * x).sum() / valid.sum()
