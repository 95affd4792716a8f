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

`window_pass` evaluates any subset of {Ldfr, Lfd, Lfr} and the diagnostic sums in one pass,
sharing the feature and RGB differences between them.
"""
import torch

__all__ = ["LOG_EPS", "WindowLayout", "pair_codes", "pair_sets", "spatial_log_kernel",
           "log_kernel", "feature_distance_counts", "window_pass", "DIAG_SUMS"]

#: epsilon inside -log(1 - D + eps) of Lfd's A- term (Eq. 11): caps the term at -log(eps) ~ 13.8
#: and its derivative at 1/eps when two features coincide (D = 1).
LOG_EPS = 1e-6

#: offsets per chunk of `window_pass` (per-pixel buffers are CHUNK x B x L each)
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


def window_pass(layout, valid, spec, terms, *, probs=None, image=None, feats=None,
                codes=None, scribbles=None, inv2s3=None, scale=None, fd_inv=None,
                grad_probs=False, grad_feats=False, diag=False):
    """One pass over the half-window offsets evaluating the requested terms and diagnostic sums.

    Args:
        layout: the `WindowLayout` of the maps.
        valid: (B, Lp, 1) 0/1 validity; probs (B, Lp, C), image (B, Lp, 3), feats (B, Lp, d);
            codes, scribbles (B, Lp, 1) pair codes (`pair_codes`) of the labels supervising
            the feature head and of the scribbles; all in `layout` and one floating dtype.
        spec: `PairwiseParams`; terms: subset of ("dfr", "fd", "fr").
        inv2s3: 0-d tensor 1/(2σ3²) (σ3 may be a tensor of this step: no host synchronisation).
        scale: 0-d tensor 1/#valid pixels (ordered pairs are twice the half-window pairs).
        fd_inv: (3,) tensor 1/|A+bg|, 1/|A+fg|, 1/|A−| in half-window counts (0 if empty).
        grad_probs, grad_feats: accumulate the gradients in the same pass.
        diag: also accumulate the diagnostic sums (keys of `DIAG_SUMS`, ordered pairs).

    Returns:
        ({name: 0-d tensor} of the terms and, with diag, the sums; grad of Ldfr w.r.t. probs or
        None; {"fd" / "fr": grad w.r.t. feats}).

    Ldfr  = scale · Σ_ordered K·(1 − P(i)·P(j))                                   (Eq. 4-6)
    Lfd   = Σ_set mean over the set of −log D, 2·mean_{A−} −log(1 − D + eps)      (Eq. 8-11)
    Lfr   = scale · Σ_ordered Kf·‖Fi − Fj‖₁/d over RA (or R)                      (Eq. 12-13)

    Offsets are processed in chunks of G: the channel reductions run per offset into (G, B, L)
    per-pixel buffers, the per-pixel arithmetic once per chunk, and the gradients are scattered
    per offset (recomputing sign(ΔF), which costs less than keeping it).
    """
    L = layout.L
    dt = valid.dtype
    offsets = layout.offsets
    has_dfr, has_fd, has_fr = "dfr" in terms, "fd" in terms, "fr" in terms
    zero = valid.new_zeros(())
    sums = {k: zero for k in terms}
    if diag:
        sums.update({k: zero for k in DIAG_SUMS})
    gP = torch.zeros_like(probs) if (has_dfr and grad_probs) else None
    gF = {k: torch.zeros_like(feats) for k in ("fd", "fr") if k in terms and grad_feats}
    use_rgb = spec.use_rgb and image is not None
    dfr_feat = has_dfr and spec.use_feat and feats is not None
    need_rgb = has_fr or ((has_dfr or diag) and use_rgb)
    need_df2 = dfr_feat or (diag and feats is not None)
    need_l1 = has_fd or has_fr
    d = feats.shape[-1] if feats is not None else 1
    G = max(1, min(len(offsets), CHUNK))
    # eager: one reused (B, L, d) buffer for the feature differences (a fresh tensor per
    # offset costs a page-faulting allocation each time on a CPU); compiled: plain ops
    buf = torch.empty_like(feats[:, :L]) if (feats is not None and
                                             not torch.compiler.is_compiling()) else None
    Va = valid[:, :L, 0]
    codeA = codes[:, :L, 0] if codes is not None else None
    scrA = scribbles[:, :L, 0] if (diag and scribbles is not None) else None
    for c0 in range(0, len(offsets), G):
        chunk = offsets[c0:c0 + G]
        shifts = [s for _, _, s in chunk]
        # ---- per offset: channel reductions into per-pixel buffers (g, B, L) ----
        vv = torch.stack([valid[:, s:s + L, 0] for s in shifts]) * Va  # both valid
        codeB = torch.stack([codes[:, s:s + L, 0] for s in shifts]) if codes is not None \
            else None
        norm = torch.linalg.vector_norm
        di2 = torch.stack([norm(image[:, :L] - image[:, s:s + L], dim=-1)
                           for s in shifts]).square() if need_rgb else None
        df2 = l1 = None
        if need_df2 or need_l1:
            n2, n1 = [], []
            for s in shifts:  # one (B, L, d) difference alive at a time
                x = _difference(feats[:, :L], feats[:, s:s + L], buf)
                if need_df2:
                    n2.append(norm(x, dim=-1))
                if need_l1:  # after the 2-norm: |x| in place (ord-1 norms are slow on CPU)
                    n1.append(x.abs_().sum(-1))
            df2 = torch.stack(n2).square() if need_df2 else None
            l1 = torch.stack(n1) / d if need_l1 else None  # −log D (Eq. 10)
        spatial = _spatial_column(chunk, spec.stride, spec.sigma_xy, vv)
        k0 = None
        if has_dfr or diag:
            k0 = log_kernel(vv, spatial if spec.use_xy else None,
                            di2 if use_rgb else None, sigma_rgb=spec.sigma_rgb).exp()
        # ---- per chunk: per-pixel arithmetic ----
        kd = g_fd = kf = None
        if has_dfr:
            kd = k0 * torch.exp(-df2 * inv2s3) if dfr_feat else k0
            kd = kd * vv * (2.0 * scale)  # scale · K on ordered pairs, 0 off valid pairs
            dot = torch.stack([torch.linalg.vecdot(probs[:, :L], probs[:, s:s + L])
                               for s in shifts])
            sums["dfr"] = sums["dfr"] + (kd * (1.0 - dot)).sum()
        sets = None
        if codes is not None and (has_fd or diag):
            sets = bg, fgm, neg = pair_sets(codeA, codeB, spec.background)
        if has_fd:
            w_pos = bg.to(dt) * fd_inv[0] + fgm.to(dt) * fd_inv[1]
            w_neg = neg.to(dt) * (2.0 * fd_inv[2])
            one_minus = -torch.expm1(-l1) + LOG_EPS  # 1 − D + eps
            sums["fd"] = sums["fd"] + (w_pos * l1).sum() - (w_neg * one_minus.log()).sum()
            if "fd" in gF:
                g_fd = (w_pos - w_neg * torch.exp(-l1) / one_minus) / d
        if has_fr:
            m = vv if spec.fr_pairs == "R" else ((codeA >= 0) & (codeB >= 0)).to(dt)
            kf = log_kernel(m, spatial, di2, sigma_rgb=spec.sigma_rgb).exp() * m * (2.0 * scale)
            sums["fr"] = sums["fr"] + (kf * l1).sum()
            kf = kf / d
        if diag:
            _add_diag_sums(sums, vv, k0, df2, inv2s3, sets, scrA, scribbles, shifts, L)
        # ---- per offset: gradients ----
        for i, s in enumerate(shifts):
            if gP is not None:
                k = kd[i].unsqueeze(-1)
                gP[:, :L].addcmul_(probs[:, s:s + L], k, value=-1.0)
                gP[:, s:s + L].addcmul_(probs[:, :L], k, value=-1.0)
            if gF:
                sg = _difference(feats[:, :L], feats[:, s:s + L], buf).sign_()
                for name, coef in (("fd", g_fd), ("fr", kf)):
                    if name in gF:
                        c = coef[i].unsqueeze(-1)
                        gF[name][:, :L].addcmul_(sg, c)
                        gF[name][:, s:s + L].addcmul_(sg, c, value=-1.0)
    return sums, gP, gF


#: diagnostic sums of `window_pass` (ordered pairs): window pairs, Σ K without / with its
#: feature term, Σ ‖ΔF‖₂, pair counts of the feature-head labels, and the feature factor
#: exp(−‖ΔF‖²/2σ3²) summed over scribble pairs of the same / a different class with their counts
DIAG_SUMS = ("pairs", "k0", "k", "dist", "n_bg", "n_fg", "n_neg", "same", "n_same", "diff",
             "n_diff")


def _add_diag_sums(sums, vv, k0, df2, inv2s3, sets, scrA, scribbles, shifts, L):
    """Add one chunk's diagnostic sums (half-window pairs counted twice: ordered pairs)."""
    def add(key, value):
        sums[key] = sums[key] + 2.0 * value

    add("pairs", vv.sum())
    add("k0", (k0 * vv).sum())
    for key, m in zip(("n_bg", "n_fg", "n_neg"), sets or ()):
        add(key, m.sum().to(vv.dtype))
    if df2 is not None:
        ffac = torch.exp(-df2 * inv2s3)
        add("k", (k0 * ffac * vv).sum())
        add("dist", (df2.sqrt() * vv).sum())
        if scrA is not None:
            sb = torch.stack([scribbles[:, s:s + L, 0] for s in shifts])
            both = (scrA >= 0) & (sb >= 0)
            same, other = both & (scrA == sb), both & (scrA != sb)
            add("same", (ffac * same).sum())
            add("n_same", same.sum().to(vv.dtype))
            add("diff", (ffac * other).sum())
            add("n_diff", other.sum().to(vv.dtype))


def _difference(a, b, out=None):
    """a − b, written into `out` when given."""
    return torch.sub(a, b, out=out) if out is not None else a - b


def _spatial_column(chunk, stride, sigma_xy, like):
    """(g, 1, 1) tensor of −‖ΔS‖²/2σ1² for the offsets of a chunk."""
    vals = [spatial_log_kernel(dy, dx, stride, sigma_xy) for dy, dx, _ in chunk]
    return torch.tensor(vals, dtype=like.dtype, device=like.device).view(-1, 1, 1)
