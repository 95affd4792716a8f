"""Offset machinery shared by the pairwise losses (Eq. 4-6, 8-13).

Every pairwise loss here is a sum over ordered pairs (i, j), j != i, of a (2r+1)x(2r+1) window of
a term that is symmetric in i and j. Instead of unfolding the (2r+1)^2 neighbours of every tensor
(GatedCRF style, (2r+1)^2 x the input memory), we loop over the window offsets (dy, dx) and pair
each pixel with its neighbour at that offset through two shifted *views* of the same tensor.
Symmetry halves the work: only the offsets with dy > 0, or dy == 0 and dx > 0, are visited, each
standing for the pairs (i, i + off) and (i + off, i).

Layout: a (B, K, h, w) map is padded with r zero columns on the right, moved to channels-last and
flattened to (B, L, K), L = h * (w + r). The neighbour at (dy, dx) of flat position p is then
p + s with s = dy * (w + r) + dx > 0 for every half-window offset: a neighbour that falls left or
right of the image lands in a padding column, one below the image falls past L. The pairs of one
offset are therefore the two contiguous slices x[:, :L - s] and x[:, s:]; padding columns carry
valid = 0, so they never contribute. Channels-last makes the per-pixel reductions over C or d
run along contiguous memory (several times faster on CPU than reducing over dim 1 of NCHW).

Gradients are accumulated in the same pass that computes the value (each pair's derivative is
local), into one buffer the size of the input; the autograd Functions keep only that buffer, so
peak memory is O(B * (C + d) * h * w) in forward and backward, independent of r. Recomputing
per offset in backward would cost a second pass for nothing: the losses are scalars, so their
gradient is the stored buffer times grad_output (first-order differentiable only).

`pairwise_loop` evaluates any subset of {Ldfr, Lfd, Lfr} in one pass, sharing the feature and
RGB differences between them.
"""
import math

import torch

__all__ = ["LOG_EPS", "WindowLayout", "pair_codes", "feature_distance_counts", "pairwise_loop"]

#: epsilon inside -log(1 - D + eps) of Lfd's A- term (Eq. 11): caps the term at -log(eps) ~ 13.8
#: and its derivative at 1/eps when two features coincide (D = 1).
LOG_EPS = 1e-6


class WindowLayout:
    """Flat, right-padded, channels-last layout of (B, K, h, w) maps and the half-window
    offsets (dy, dx, s) for radius r."""

    def __init__(self, height: int, width: int, radius: int):
        self.h, self.w, self.r = int(height), int(width), int(radius)
        self.wp = self.w + self.r
        self.L = self.h * self.wp
        offsets = []
        for dy in range(0, min(self.r, self.h - 1) + 1):
            for dx in range(-self.r, self.r + 1):
                if (dy == 0 and dx <= 0) or abs(dx) >= self.w:
                    continue
                offsets.append((dy, dx, dy * self.wp + dx))
        self.offsets = offsets

    def flat(self, x: torch.Tensor, fill=0) -> torch.Tensor:
        """(B, K, h, w) -> (B, L, K) contiguous, padding columns set to `fill`."""
        b, k = x.shape[:2]
        out = x.new_full((b, self.h, self.wp, k), fill)
        out[:, :, : self.w] = x.permute(0, 2, 3, 1)
        return out.view(b, self.L, k)

    def unflat(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, K) -> (B, K, h, w) contiguous, dropping the padding columns."""
        b, _, k = x.shape
        return x.view(b, self.h, self.wp, k)[:, :, : self.w].permute(0, 3, 1, 2).contiguous()


def pair_codes(labels, valid, layout, ignore_index):
    """(B, h, w) labels + valid -> (B, L, 1) long, -1 where ignored / invalid / padding."""
    lab = labels.long()
    lab = torch.where(valid & (lab != ignore_index), lab, torch.full_like(lab, -1))
    return layout.flat(lab.unsqueeze(1), fill=-1)


def _pair_sets(a, b, background):
    both = (a >= 0) & (b >= 0)
    same = both & (a == b)
    bg = same & (a == background)
    return bg, same & ~bg, both & ~same


def feature_distance_counts(code, layout, background):
    """Half-window pair counts of (A+bg, A+fg, A-) per offset: (n_offsets, 3) long."""
    rows = []
    for _, _, s in layout.offsets:
        n = layout.L - s
        rows.append(torch.stack([m.sum() for m in _pair_sets(code[:, :n], code[:, s:],
                                                             background)]))
    if not rows:
        return torch.zeros(0, 3, dtype=torch.long, device=code.device)
    return torch.stack(rows)


def _spatial(dy, dx, stride, sigma_xy):
    return -((dx * dx + dy * dy) * stride * stride) / (2.0 * sigma_xy * sigma_xy)


def pairwise_loop(layout, V, *, P=None, I=None, F=None, code=None, dfr=None, fd=None, fr=None,
                  grad_P=False, grad_F=False):
    """One pass over the half-window offsets evaluating the requested terms.

    V (B, L, 1) 0/1 validity, P (B, L, C) probabilities, I (B, L, 3) image, F (B, L, d) features,
    code (B, L, 1) from `pair_codes`, all in `layout` and one floating dtype.
    dfr: dict(sigma_xy, sigma_rgb, sigma_feat, stride, use_xy, use_rgb, use_feat, scale) ->
         scale · Σ_ordered K·(1 − P(i)·P(j))                                     (Eq. 4-6)
    fd:  dict(background, inv=(1/|A+bg|, 1/|A+fg|, 1/|A−|) in half-window counts, active=[bool
         per offset]) -> Lfd                                                       (Eq. 8-11)
    fr:  dict(sigma_xy, sigma_rgb, stride, all_pairs, scale) ->
         scale · Σ_ordered Kf·‖Fi − Fj‖₁ over RA (or R)                            (Eq. 12-13)
    Returns ({name: value}, grad of Ldfr w.r.t. P or None, {name: grad w.r.t. F} for fd / fr).
    """
    L = layout.L
    zero = V.new_zeros(())
    values = {k: zero for k, t in (("dfr", dfr), ("fd", fd), ("fr", fr)) if t is not None}
    gP = torch.zeros_like(P) if (dfr is not None and grad_P) else None
    gF = {k: torch.zeros_like(F) for k in ("fd", "fr") if values.get(k) is not None and grad_F}
    dfr_feat = dfr is not None and dfr["use_feat"]
    need_rgb = fr is not None or (dfr is not None and dfr["use_rgb"])
    need_l1 = fd is not None or fr is not None
    if F is not None and (need_l1 or dfr_feat):
        diff_buf = torch.empty_like(F)
        sign_buf = torch.empty_like(F) if gF else None
    if fd is not None:
        inv_bg, inv_fg, inv_neg = fd["inv"]
        active = fd["active"]
    if fr is not None:
        fr_mask = V if fr["all_pairs"] else (code >= 0).to(V.dtype)
        d = F.shape[-1]
    for o, (dy, dx, s) in enumerate(layout.offsets):
        n = L - s
        fd_on = fd is not None and active[o]
        if not (fd_on or dfr is not None or fr is not None):
            continue
        if need_rgb:
            di = I[:, :n] - I[:, s:]
            di2 = di.mul_(di).sum(2, keepdim=True)  # ‖Ii − Ij‖², (B, n, 1)
        if F is not None and (fd_on or fr is not None or dfr_feat):
            diff = torch.sub(F[:, :n], F[:, s:], out=diff_buf[:, :n])
            if dfr_feat:
                df2 = torch.linalg.vector_norm(diff, 2, dim=2, keepdim=True).square_()
            if fd_on or fr is not None:
                sg = torch.sign(diff, out=sign_buf[:, :n]) if gF else None
                l1 = diff.abs_().sum(2, keepdim=True)  # ‖Fi − Fj‖₁, (B, n, 1)
        vv = V[:, :n] * V[:, s:]
        if dfr is not None:
            logk = None
            if dfr["use_rgb"]:
                logk = di2 * (-0.5 / dfr["sigma_rgb"] ** 2)
            if dfr_feat:
                t = df2.mul_(-0.5 / dfr["sigma_feat"] ** 2)
                logk = t if logk is None else logk.add_(t)
            k = vv if logk is None else logk.exp_().mul_(vv)
            c = dfr["scale"]
            if dfr["use_xy"]:
                c = c * math.exp(_spatial(dy, dx, dfr["stride"], dfr["sigma_xy"]))
            pa, pb = P[:, :n], P[:, s:]
            dot = (pa * pb).sum(2, keepdim=True)
            values["dfr"] = values["dfr"] + c * (k.sum() - (k * dot).sum())
            if gP is not None:
                gP[:, :n].addcmul_(k, pb, value=-c)
                gP[:, s:].addcmul_(k, pa, value=-c)
        if fd_on:
            bg, fg, neg = _pair_sets(code[:, :n], code[:, s:], fd["background"])
            w_pos = bg.to(V.dtype) * inv_bg + fg.to(V.dtype) * inv_fg
            w_neg = neg.to(V.dtype) * (2.0 * inv_neg)
            x = l1 / F.shape[-1]  # −log D
            one_minus = torch.expm1(-x).neg_().add_(LOG_EPS)  # 1 − D + eps
            values["fd"] = values["fd"] + (w_pos * x).sum() - (w_neg * one_minus.log()).sum()
            if "fd" in gF:
                dmap = torch.exp(-x)
                g = (w_pos - w_neg * dmap / one_minus).div_(F.shape[-1])
                gF["fd"][:, :n].addcmul_(sg, g)
                gF["fd"][:, s:].addcmul_(sg, g, value=-1.0)
        if fr is not None:
            logk = di2 * (-0.5 / fr["sigma_rgb"] ** 2)
            logk.add_(_spatial(dy, dx, fr["stride"], fr["sigma_xy"]))
            kf = logk.exp_().mul_(fr_mask[:, :n]).mul_(fr_mask[:, s:]).mul_(fr["scale"] / d)
            values["fr"] = values["fr"] + (kf * l1).sum()
            if "fr" in gF:
                gF["fr"][:, :n].addcmul_(sg, kf)
                gF["fr"][:, s:].addcmul_(sg, kf, value=-1.0)
    return values, gP, gF
