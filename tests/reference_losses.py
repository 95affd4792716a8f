"""Two independent references for dfr.modeling.losses (used by tests/modeling/test_losses.py).

1. ``brute_*``: float64 Python loops written straight from Eq. 2-13 of the paper (with the pair
   sets and normalisations of the paper, Sect. 3). Slow; for maps of a few pixels only.
2. ``unfold_*``: the naive vectorised implementation that unfolds every tensor over the
   (2r+1)^2 window positions (as GatedCRF does); it lives in the package
   (`dfr.modeling.losses.unfold`) because tools/benchmark_losses.py measures it too.
"""
import math

import numpy as np
import torch

from dfr.modeling.losses.unfold import unfold_dfr, unfold_fd, unfold_fr  # noqa: F401

LOG_EPS = 1e-6  # must match dfr.modeling.losses.LOG_EPS


# ------------------------------------------------------------------ brute force (float64 loops)
def _np(x):
    return None if x is None else x.detach().to(torch.float64).cpu().numpy()


def _valid(valid, b, h, w):
    return np.ones((b, h, w), bool) if valid is None else valid.cpu().numpy().astype(bool)


def _window_pairs(b, h, w, r, valid):
    """Every ordered pair (n, y, x, y2, x2), j != i, inside the map, both valid (Eq. 3)."""
    for n in range(b):
        for y in range(h):
            for x in range(w):
                if not valid[n, y, x]:
                    continue
                for y2 in range(max(0, y - r), min(h, y + r + 1)):
                    for x2 in range(max(0, x - r), min(w, x + r + 1)):
                        if (y2, x2) != (y, x) and valid[n, y2, x2]:
                            yield n, y, x, y2, x2


def brute_pce(logits, labels, ignore_index=255):
    lg, lab = _np(logits), labels.cpu().numpy()
    total, count = 0.0, 0
    for n, y, x in np.ndindex(*lab.shape):
        t = lab[n, y, x]
        if t == ignore_index:
            continue
        z = lg[n, :, y, x]
        m = z.max()
        logp = z[t] - (m + math.log(np.exp(z - m).sum()))
        total -= logp
        count += 1
    return total / count if count else 0.0


def brute_dfr(probs, image, feats, valid=None, radius=5, sigma_xy=6.0, sigma_rgb=0.5,
              sigma_feat=50.0, stride=1.0, use_xy=True, use_rgb=True, use_feat=True):
    P, I, Fe = _np(probs), _np(image), _np(feats)
    b, _, h, w = P.shape
    V = _valid(valid, b, h, w)
    total = 0.0
    for n, y, x, y2, x2 in _window_pairs(b, h, w, radius, V):
        e = 0.0
        if use_xy:
            e -= stride**2 * ((x - x2) ** 2 + (y - y2) ** 2) / (2 * sigma_xy**2)
        if use_rgb:
            e -= ((I[n, :, y, x] - I[n, :, y2, x2]) ** 2).sum() / (2 * sigma_rgb**2)
        if use_feat:
            e -= ((Fe[n, :, y, x] - Fe[n, :, y2, x2]) ** 2).sum() / (2 * sigma_feat**2)
        # Eq. 5, first form: Σ_c Σ_c' [c != c'] K P_c(i) P_c'(j)
        pi, pj = P[n, :, y, x], P[n, :, y2, x2]
        phi = math.exp(e) * (pi.sum() * pj.sum() - (pi * pj).sum())
        total += phi
    nv = V.sum()
    return total / nv if nv else 0.0


def brute_confident(probs, gamma=0.98, ignore_index=255):
    P = _np(probs)
    b, _, h, w = P.shape
    out = np.full((b, h, w), ignore_index, np.int64)
    for n, y, x in np.ndindex(b, h, w):
        if P[n, :, y, x].max() > gamma:
            out[n, y, x] = int(np.argmax(P[n, :, y, x]))
    return out


def brute_fd(feats, labels, valid=None, radius=5, background=0, ignore_index=255):
    Fe, M = _np(feats), labels.cpu().numpy()
    b, d, h, w = Fe.shape
    V = _valid(valid, b, h, w)
    sums = {"bg": 0.0, "fg": 0.0, "neg": 0.0}
    cnt = {"bg": 0, "fg": 0, "neg": 0}
    for n, y, x, y2, x2 in _window_pairs(b, h, w, radius, V):
        mi, mj = M[n, y, x], M[n, y2, x2]
        if mi == ignore_index or mj == ignore_index:  # not in RA (Eq. 8)
            continue
        D = math.exp(-np.abs(Fe[n, :, y, x] - Fe[n, :, y2, x2]).sum() / d)  # Eq. 10
        if mi == mj:  # A = 1
            key = "bg" if mi == background else "fg"
            sums[key] += -math.log(D)
        else:  # A = 0
            key = "neg"
            sums[key] += -math.log(1 - D + LOG_EPS)
        cnt[key] += 1
    loss = 0.0
    for key, wgt in (("bg", 1.0), ("fg", 1.0), ("neg", 2.0)):
        if cnt[key]:
            loss += wgt * sums[key] / cnt[key]
    return loss


def brute_fr(feats, image, labels, valid=None, radius=5, sigma_xy=6.0, sigma_rgb=0.5, stride=1.0,
             pairs="RA", ignore_index=255):
    Fe, I, M = _np(feats), _np(image), labels.cpu().numpy()
    b, d, h, w = Fe.shape
    V = _valid(valid, b, h, w)
    total = 0.0
    for n, y, x, y2, x2 in _window_pairs(b, h, w, radius, V):
        if pairs == "RA" and (M[n, y, x] == ignore_index or M[n, y2, x2] == ignore_index):
            continue
        e = -stride**2 * ((x - x2) ** 2 + (y - y2) ** 2) / (2 * sigma_xy**2)
        e -= ((I[n, :, y, x] - I[n, :, y2, x2]) ** 2).sum() / (2 * sigma_rgb**2)
        total += math.exp(e) * np.abs(Fe[n, :, y, x] - Fe[n, :, y2, x2]).sum() / d
    nv = V.sum()
    return total / nv if nv else 0.0
