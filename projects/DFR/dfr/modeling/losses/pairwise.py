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
import torch

__all__ = ["LOG_EPS", "WindowLayout", "pair_codes", "pair_sets", "spatial_log_kernel",
           "log_kernel", "feature_distance_counts", "pairwise_loop"]

#: epsilon inside -log(1 - D + eps) of Lfd's A- term (Eq. 11): caps the term at -log(eps) ~ 13.8
#: and its derivative at 1/eps when two features coincide (D = 1).
LOG_EPS = 1e-6

#: offsets per chunk of `pairwise_loop` (per-pixel buffers are CHUNK x B x L each)
CHUNK = 16


class WindowLayout:
    """Flat, right-padded, channels-last layout of (B, K, h, w) maps and the half-window
    offsets (dy, dx, s) for radius r. Flat tensors are (B, L + s_max, K): the tail of s_max
    padding positions lets every offset use slices of the same length L."""

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
        self.Lp = self.L + max((s for _, _, s in offsets), default=0)

    def flat(self, x: torch.Tensor, fill=0) -> torch.Tensor:
        """(B, K, h, w) -> (B, Lp, K) contiguous, padding columns and tail set to `fill`."""
        b, k = x.shape[:2]
        out = x.new_full((b, self.Lp, k), fill)
        out[:, : self.L].view(b, self.h, self.wp, k)[:, :, : self.w] = x.permute(0, 2, 3, 1)
        return out

    def unflat(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Lp, K) -> (B, K, h, w) contiguous, dropping the padding."""
        b, _, k = x.shape
        return x[:, : self.L].view(b, self.h, self.wp, k)[:, :, : self.w].permute(
            0, 3, 1, 2).contiguous()


def pair_codes(labels, valid, layout, ignore_index):
    """(B, h, w) labels + valid -> (B, L, 1) long, -1 where ignored / invalid / padding."""
    lab = labels.long()
    lab = torch.where(valid & (lab != ignore_index), lab, torch.full_like(lab, -1))
    return layout.flat(lab.unsqueeze(1), fill=-1)


def pair_sets(a, b, background):
    """Eq. 8-9 and 11 for pair codes a, b (from `pair_codes`, -1 = none): boolean masks of A+bg
    (same label = background), A+fg (same label, not background) and A− (different labels)."""
    both = (a >= 0) & (b >= 0)
    same = both & (a == b)
    bg = same & (a == background)
    return bg, same & ~bg, both & ~same


def feature_distance_counts(code, layout, background):
    """Half-window pair counts of (A+bg, A+fg, A-) per offset: (n_offsets, 3) long."""
    rows = []
    L = layout.L
    for _, _, s in layout.offsets:
        rows.append(torch.stack([m.sum() for m in pair_sets(code[:, :L], code[:, s:s + L],
                                                            background)]))
    if not rows:
        return torch.zeros(0, 3, dtype=torch.long, device=code.device)
    return torch.stack(rows)


def spatial_log_kernel(dy, dx, stride, sigma_xy):
    """−‖ΔS‖²/2σ1² of the window offset (dy, dx), S = stride·(x, y) (Eq. 6), a Python float."""
    return -((dx * dx + dy * dy) * stride * stride) / (2.0 * sigma_xy * sigma_xy)


def log_kernel(like, spatial=None, di2=None, df2=None, sigma_rgb=0.5, sigma_feat=50.0):
    """Exponent of the Gaussian kernel K of Eq. 6 (Kf of Eq. 13: without df2):
    spatial − ‖ΔI‖²/2σ2² − ‖ΔF‖²/2σ3², each term only when given (none: K = 1).

    like: a tensor with the shape and dtype of the result; spatial: −‖ΔS‖²/2σ1² (a float from
    `spatial_log_kernel`, or a tensor broadcasting to `like`); di2, df2: squared RGB / feature
    distances of the pairs. The one kernel of the losses and of the diagnostics."""
    logk = torch.zeros_like(like)
    if spatial is not None:
        logk += spatial
    if di2 is not None:
        logk.add_(di2, alpha=-0.5 / sigma_rgb ** 2)
    if df2 is not None:
        logk.add_(df2, alpha=-0.5 / sigma_feat ** 2)
    return logk


def pairwise_loop(layout, V, *, P=None, I=None, F=None, code=None, dfr=None, fd=None, fr=None,
                  grad_P=False, grad_F=False):
    """One pass over the half-window offsets evaluating the requested terms.

    V (B, Lp, 1) 0/1 validity, P (B, Lp, C) probabilities, I (B, Lp, 3) image, F (B, Lp, d)
    features, code (B, Lp, 1) from `pair_codes`, all in `layout` and one floating dtype.
    dfr: dict(sigma_xy, sigma_rgb, sigma_feat, stride, use_xy, use_rgb, use_feat, scale) ->
         scale · Σ_ordered K·(1 − P(i)·P(j))                                     (Eq. 4-6)
    fd:  dict(background, inv=(1/|A+bg|, 1/|A+fg|, 1/|A−|) in half-window counts, active=[bool
         per offset]) -> Lfd                                                       (Eq. 8-11)
    fr:  dict(sigma_xy, sigma_rgb, stride, all_pairs, scale) ->
         scale · Σ_ordered Kf·‖Fi − Fj‖₁ over RA (or R)                            (Eq. 12-13)
    Returns ({name: value}, grad of Ldfr w.r.t. P or None, {name: grad w.r.t. F} for fd / fr).

    Offsets are processed in chunks of G: the channel reductions (‖ΔF‖², ‖ΔF‖₁, P(i)·P(j),
    ‖ΔI‖²) run per offset into (G, B, L) per-pixel buffers, all per-pixel arithmetic then runs
    once per chunk, and the gradients are scattered per offset (recomputing sign(ΔF), which
    costs less than keeping it). With G = CHUNK = 16 the ~10 per-pixel buffers weigh about as
    much as one (B, C + d, h, w) tensor; per-offset Python/dispatch overhead drops ~G-fold.
    """
    L, dt = layout.L, V.dtype
    b = V.shape[0]
    offsets = layout.offsets
    zero = V.new_zeros(())
    values = {k: zero for k, t in (("dfr", dfr), ("fd", fd), ("fr", fr)) if t is not None}
    gP = torch.zeros_like(P) if (dfr is not None and grad_P) else None
    gF = {k: torch.zeros_like(F) for k in ("fd", "fr") if k in values and grad_F}
    dfr_feat = dfr is not None and dfr["use_feat"]
    need_rgb = fr is not None or (dfr is not None and dfr["use_rgb"])
    need_l1 = fd is not None or fr is not None
    active = fd["active"] if fd is not None else [True] * len(offsets)
    only_fd = fd is not None and dfr is None and fr is None
    G = max(1, min(len(offsets), CHUNK))
    diff_buf = torch.empty((b, L, F.shape[-1]), dtype=dt, device=V.device) \
        if F is not None else None
    Va, codeA = V[:, :L, 0], (code[:, :L, 0] if code is not None else None)
    for c0 in range(0, len(offsets), G):
        chunk = offsets[c0:c0 + G]
        on = [not only_fd or active[c0 + i] for i in range(len(chunk))]
        g = len(chunk)
        # ---- per offset: channel reductions into per-pixel buffers (g, B, L) ----
        di2 = V.new_zeros((g, b, L)) if need_rgb else None
        df2 = V.new_zeros((g, b, L)) if dfr_feat else None
        l1 = V.new_zeros((g, b, L)) if need_l1 else None
        dot = V.new_zeros((g, b, L)) if dfr is not None else None
        Vb = V.new_zeros((g, b, L))
        codeB = code.new_full((g, b, L), -1) if code is not None else None
        for i, (_, _, s) in enumerate(chunk):
            if not on[i]:
                continue
            Vb[i] = V[:, s:s + L, 0]
            if codeB is not None:
                codeB[i] = code[:, s:s + L, 0]
            if need_rgb:
                torch.linalg.vector_norm(I[:, :L] - I[:, s:s + L], 2, dim=2, out=di2[i])
            if F is not None and (need_l1 or dfr_feat):
                diff = torch.sub(F[:, :L], F[:, s:s + L], out=diff_buf)
                if dfr_feat:
                    torch.linalg.vector_norm(diff, 2, dim=2, out=df2[i])
                if need_l1:
                    torch.sum(diff.abs_(), 2, out=l1[i])
            if dfr is not None:
                torch.linalg.vecdot(P[:, :L], P[:, s:s + L], dim=-1, out=dot[i])
        # ---- per chunk: per-pixel arithmetic ----
        if need_rgb:
            di2.square_()
        vv = Vb.mul_(Va)  # both valid
        kd = g_fd = kf = None
        if dfr is not None:
            logk = log_kernel(
                vv, _spatial_column(chunk, dfr["stride"], dfr["sigma_xy"], vv)
                if dfr["use_xy"] else None, di2 if dfr["use_rgb"] else None,
                df2.square_() if dfr_feat else None, dfr["sigma_rgb"], dfr["sigma_feat"])
            kd = logk.exp_().mul_(vv).mul_(dfr["scale"])  # scale · K, 0 off valid pairs
            values["dfr"] = values["dfr"] + (kd.sum() - (kd * dot).sum())
        if fd is not None:
            bg, fgm, neg = pair_sets(codeA, codeB, fd["background"])
            inv_bg, inv_fg, inv_neg = fd["inv"]
            x = l1 / F.shape[-1]  # −log D
            w_pos = bg.to(dt).mul_(inv_bg).add_(fgm.to(dt), alpha=inv_fg)
            w_neg = neg.to(dt).mul_(2.0 * inv_neg)
            one_minus = torch.expm1(-x).neg_().add_(LOG_EPS)  # 1 − D + eps
            values["fd"] = values["fd"] + (w_pos * x).sum() - (w_neg * one_minus.log()).sum()
            if "fd" in gF:
                g_fd = (w_pos - w_neg * torch.exp(-x) / one_minus).div_(F.shape[-1])
        if fr is not None:
            if fr["all_pairs"]:
                m = vv
            else:
                m = ((codeA >= 0) & (codeB >= 0)).to(dt)
            logk = log_kernel(m, _spatial_column(chunk, fr["stride"], fr["sigma_xy"], m), di2,
                              sigma_rgb=fr["sigma_rgb"])
            kf = logk.exp_().mul_(m).mul_(fr["scale"] / F.shape[-1])
            values["fr"] = values["fr"] + (kf * l1).sum()
        # ---- per offset: gradients ----
        for i, (_, _, s) in enumerate(chunk):
            if not on[i]:
                continue
            if gP is not None:
                k = kd[i].unsqueeze(-1)
                gP[:, :L].addcmul_(P[:, s:s + L], k, value=-1.0)
                gP[:, s:s + L].addcmul_(P[:, :L], k, value=-1.0)
            if gF:
                sg = torch.sub(F[:, :L], F[:, s:s + L], out=diff_buf).sign_()
                for name, coef in (("fd", g_fd), ("fr", kf)):
                    if name in gF:
                        c = coef[i].unsqueeze(-1)
                        gF[name][:, :L].addcmul_(sg, c)
                        gF[name][:, s:s + L].addcmul_(sg, c, value=-1.0)
    return values, gP, gF


def _spatial_column(chunk, stride, sigma_xy, like):
    """(g, 1, 1) tensor of −‖ΔS‖²/2σ1² for the offsets of a chunk."""
    vals = [spatial_log_kernel(dy, dx, stride, sigma_xy) for dy, dx, _ in chunk]
    return torch.tensor(vals, dtype=like.dtype, device=like.device).view(-1, 1, 1)
