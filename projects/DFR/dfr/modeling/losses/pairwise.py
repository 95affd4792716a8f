"""Offset machinery shared by the pairwise losses (Eq. 4-6, 8-13).

Every pairwise loss here is a sum over ordered pairs (i, j), j != i, of a (2r+1)x(2r+1) window of
a term that is symmetric in i and j. Instead of unfolding the (2r+1)^2 neighbours of every tensor
(GatedCRF style, (2r+1)^2 x the input memory), we loop over the window offsets (dy, dx) and pair
each pixel with its neighbour at that offset through two shifted *views* of the same tensor.
Symmetry halves the work: only the offsets with dy > 0, or dy == 0 and dx > 0, are visited, each
standing for the pairs (i, i + off) and (i + off, i).

Layout trick: a (B, K, h, w) map is padded with r zero columns on the right and flattened to
(B, K, L), L = h * (w + r). The neighbour at (dy, dx) of flat position p is then p + s with
s = dy * (w + r) + dx > 0, for every half-window offset: a neighbour that falls left or right of
the image lands in a padding column, one below the image falls past L. Pixel pairs of one offset
are therefore the contiguous slices x[..., :L - s] and x[..., s:]; padding columns carry
valid = 0, so they never contribute.

Gradients are accumulated in the same pass that computes the value (the losses are sums over
pairs, each pair's derivative is local), into one buffer the size of the input; the autograd
Functions store only that buffer, so peak memory is O(B * (C + d) * h * w) in forward and
backward, independent of r. Backward multiplies the stored gradient by grad_output (the functions
are first-order differentiable only).
"""
import math

import torch

__all__ = ["WindowLayout", "dfr_pairwise_sum", "feature_distance_sums", "feature_regularized_sum"]

#: epsilon inside -log(1 - D + eps) of Lfd's A- term (Eq. 11): caps the term at -log(eps) ~ 13.8
#: and its derivative at 1/eps when two features coincide (D = 1).
LOG_EPS = 1e-6


class WindowLayout:
    """Flat, right-padded layout of (B, K, h, w) maps and the half-window offsets for radius r."""

    def __init__(self, height: int, width: int, radius: int):
        self.h, self.w, self.r = int(height), int(width), int(radius)
        self.wp = self.w + self.r
        self.L = self.h * self.wp
        offsets = []  # (dy, dx, s)
        for dy in range(0, min(self.r, self.h - 1) + 1):
            for dx in range(-self.r, self.r + 1):
                if dy == 0 and dx <= 0:
                    continue
                if abs(dx) >= self.w:  # no pair inside the map at this offset
                    continue
                s = dy * self.wp + dx
                if s < self.L:
                    offsets.append((dy, dx, s))
        self.offsets = offsets

    def flat(self, x: torch.Tensor, fill=0) -> torch.Tensor:
        """(B, K, h, w) -> (B, K, L), padding columns set to `fill`."""
        b, k = x.shape[:2]
        if self.r == 0:
            return x.reshape(b, k, self.L)
        out = x.new_full((b, k, self.h, self.wp), fill)
        out[..., : self.w] = x
        return out.view(b, k, self.L)

    def unflat(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K, L) -> (B, K, h, w), dropping the padding columns."""
        b, k = x.shape[:2]
        return x.view(b, k, self.h, self.wp)[..., : self.w]


def _spatial_logk(dy, dx, stride, sigma_xy):
    return -((dx * dx + dy * dy) * stride * stride) / (2.0 * sigma_xy * sigma_xy)


def dfr_pairwise_sum(P, I, F, V, layout, *, stride, sigma_xy, sigma_rgb, sigma_feat,
                     use_xy, use_rgb, use_feat, need_grad):
    """Σ over ordered window pairs of K(i,j)·(1 − Σ_c P_c(i)P_c(j)) (Eq. 4-6, unnormalised).

    P (B, C, L), I (B, 3, L) or None, F (B, d, L) or None, V (B, 1, L) 0/1 in P's dtype, all in
    `layout`. Returns (value, dvalue/dP (B, C, L) or None).
    """
    total = P.new_zeros(())
    grad = torch.zeros_like(P) if need_grad else None
    L = layout.L
    for dy, dx, s in layout.offsets:
        n = L - s
        logk = None
        if use_rgb:
            di = I[..., :n] - I[..., s:]
            logk = di.mul_(di).sum(1, keepdim=True).mul_(-0.5 / (sigma_rgb * sigma_rgb))
        if use_feat:
            df = F[..., :n] - F[..., s:]
            t = df.mul_(df).sum(1, keepdim=True).mul_(-0.5 / (sigma_feat * sigma_feat))
            logk = t if logk is None else logk.add_(t)
        k = V[..., :n] * V[..., s:]
        if logk is not None:
            k.mul_(logk.exp_())
        if use_xy:
            k.mul_(math.exp(_spatial_logk(dy, dx, stride, sigma_xy)))
        pa, pb = P[..., :n], P[..., s:]
        dot = (pa * pb).sum(1, keepdim=True)
        total = total + (k.sum() - (k * dot).sum())
        if need_grad:
            grad[..., :n].addcmul_(k, pb, value=-2.0)
            grad[..., s:].addcmul_(k, pa, value=-2.0)
    return 2.0 * total, grad


def pair_codes(labels, valid, layout, ignore_index):
    """(B, h, w) labels + valid -> (B, 1, L) long, -1 where ignored/invalid/padding."""
    lab = labels.long()
    lab = torch.where(valid & (lab != ignore_index), lab, torch.full_like(lab, -1))
    return layout.flat(lab.unsqueeze(1), fill=-1)


def feature_distance_counts(code, layout, background):
    """Half-window pair counts of A+bg, A+fg, A- per offset: (n_offsets, 3) long tensor."""
    rows = []
    for _, _, s in layout.offsets:
        n = layout.L - s
        a, b = code[..., :n], code[..., s:]
        both = (a >= 0) & (b >= 0)
        same = both & (a == b)
        bg = same & (a == background)
        rows.append(torch.stack([bg.sum(), same.sum() - bg.sum(), both.sum() - same.sum()]))
    if not rows:
        return torch.zeros(0, 3, dtype=torch.long, device=code.device)
    return torch.stack(rows)


def feature_distance_sums(F, code, layout, background, need_grad):
    """Lfd (Eq. 8-11) over the half window (means over half counts equal the ordered-pair means).

    F (B, d, L), code (B, 1, L) from `pair_codes`. Returns (value, dvalue/dF or None).
    """
    d = F.shape[1]
    counts = feature_distance_counts(code, layout, background)
    tot = counts.sum(0).tolist() if counts.numel() else [0, 0, 0]
    per_offset = counts.any(1).tolist() if counts.numel() else []
    inv = [1.0 / c if c > 0 else 0.0 for c in tot]
    value = F.new_zeros(())
    grad = torch.zeros_like(F) if need_grad else None
    for (_, _, s), active in zip(layout.offsets, per_offset):
        if not active:
            continue
        n = layout.L - s
        a, b = code[..., :n], code[..., s:]
        both = (a >= 0) & (b >= 0)
        same = both & (a == b)
        bg = same & (a == background)
        fg = same & ~bg
        neg = both & ~same
        diff = F[..., :n] - F[..., s:]
        x = torch.linalg.vector_norm(diff, ord=1, dim=1, keepdim=True).div_(d)  # -log D
        dmap = torch.exp(-x)
        one_minus = torch.expm1(-x).neg_().add_(LOG_EPS)  # 1 - D + eps
        w_pos = bg.to(F.dtype) * inv[0] + fg.to(F.dtype) * inv[1]
        w_neg = neg.to(F.dtype) * (2.0 * inv[2])
        value = value + (w_pos * x).sum() - (w_neg * one_minus.log()).sum()
        if need_grad:
            g = (w_pos - w_neg * dmap / one_minus).div_(d)  # d(term)/d x, / d
            sg = diff.sign_().mul_(g)
            grad[..., :n].add_(sg)
            grad[..., s:].sub_(sg)
    return value, grad


def feature_regularized_sum(F, I, code, V, layout, *, stride, sigma_xy, sigma_rgb, all_pairs,
                            need_grad):
    """Σ over ordered pairs (RA, or R if all_pairs) of Kf·‖Fi − Fj‖₁/d (Eq. 12-13, unnormalised).

    F (B, d, L), I (B, 3, L), code (B, 1, L) from `pair_codes`, V (B, 1, L) 0/1.
    Returns (value, dvalue/dF or None).
    """
    d = F.shape[1]
    value = F.new_zeros(())
    grad = torch.zeros_like(F) if need_grad else None
    known = (code >= 0).to(F.dtype)
    mask_src = V if all_pairs else known
    for dy, dx, s in layout.offsets:
        n = layout.L - s
        di = I[..., :n] - I[..., s:]
        logk = di.mul_(di).sum(1, keepdim=True).mul_(-0.5 / (sigma_rgb * sigma_rgb))
        logk.add_(_spatial_logk(dy, dx, stride, sigma_xy))
        k = logk.exp_().mul_(mask_src[..., :n]).mul_(mask_src[..., s:])
        diff = F[..., :n] - F[..., s:]
        x = torch.linalg.vector_norm(diff, ord=1, dim=1, keepdim=True)
        value = value + (k * x).sum()
        if need_grad:
            sg = diff.sign_().mul_(k)
            grad[..., :n].add_(sg)
            grad[..., s:].sub_(sg)
    value = value * (2.0 / d)
    if need_grad:
        grad.mul_(2.0 / d)
    return value, grad
