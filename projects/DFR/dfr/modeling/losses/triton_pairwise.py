"""Fused Triton kernels of the pairwise losses Ldfr, Lfd, Lfr (Eq. 4-13) and the feature-branch
diagnostics: one launch for the forward (values, pair counts, diagnostic sums), one for the
backward (the gradients w.r.t. P and F), whatever the radius, channels or switched-on terms.

Each program takes a tile of BLOCK pixels of one image with all their channels in registers and
loops over the FULL (2r+1)² window (the ordered pairs (i, j), j != i, of Eq. 3): the value sums
over its pixels' ordered pairs, and the gradient of pixel i collects the derivatives of (i, j)
and (j, i), which are equal because every term is symmetric, so no program writes another
program's pixels (no atomics, deterministic). Twice the reads of the torch pass's half window,
two launches instead of ~2,300 ops: the trade a launch-bound GPU step wants. Imported only when
the Triton implementation is selected (`dfr.modeling.losses` alone does not import Triton); on a
CPU the kernels run under `TRITON_INTERPRET=1` (slow: tests use tiny shapes).
"""
import torch
import triton
import triton.language as tl

from .pairwise import LOG_EPS

__all__ = ["ACC", "pairwise_forward", "pairwise_backward"]

#: slots of the per-program sums written by the forward kernel (ordered pairs everywhere)
ACC = ("dfr", "fd_bg", "fd_fg", "fd_neg", "n_bg", "n_fg", "n_neg", "fr", "pairs", "k0", "k",
       "dist", "same", "n_same", "diff", "n_diff")
N_ACC = 16
_SLOT = {k: i for i, k in enumerate(ACC)}


@triton.jit
def _one_minus_exp_neg(x):
    """1 − exp(−x) for x ≥ 0 without cancellation near 0 (Lfd's 1 − D, Eq. 11)."""
    taylor = x * (1.0 - x * (0.5 - x * (1.0 / 6.0 - x / 24.0)))
    return tl.where(x < 1e-2, taylor, 1.0 - tl.exp(-x))


@triton.jit
def _rgb(I, b, HW, idx, mask):
    """The three channels of the normalised image at flat positions idx."""
    base = I + b * 3 * HW + idx
    return (tl.load(base, mask=mask, other=0.0), tl.load(base + HW, mask=mask, other=0.0),
            tl.load(base + 2 * HW, mask=mask, other=0.0))


@triton.jit
def _tile(V, H, W, BLOCK: tl.constexpr):
    """This program's image b and tile of BLOCK flat positions: (b, h·w, positions, in-image
    mask, rows, columns, validity 0/1)."""
    b = tl.program_id(1)
    HW = H * W
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inimg = offs < HW
    vi = tl.load(V + b * HW + offs, mask=inimg, other=0.0)
    return b, HW, offs, inimg, offs // W, offs % W, vi


@triton.jit
def _pair(V, b, HW, H, W, offs, y, x, inimg, vi, dy, dx):
    """The neighbour j of each pixel of the tile at (dy, dx): (in-window mask, flat j,
    both-valid 0/1)."""
    yj = y + dy
    xj = x + dx
    m = inimg & (yj >= 0) & (yj < H) & (xj >= 0) & (xj < W) & ((dy != 0) | (dx != 0))
    j = offs + dy * W + dx
    return m, j, vi * tl.load(V + b * HW + j, mask=m, other=0.0)


@triton.jit
def _fwd_kernel(P, I, Fe, V, T, S, SIG3, ACCP,
                H, W, C, D, R, c_xy, c_rgb, eps, background,
                HAS_DFR: tl.constexpr, HAS_FD: tl.constexpr, HAS_FR: tl.constexpr,
                FR_ALL: tl.constexpr, USE_XY: tl.constexpr, USE_RGB: tl.constexpr,
                USE_FEAT: tl.constexpr, HAS_F: tl.constexpr, HAS_I: tl.constexpr,
                HAS_T: tl.constexpr, DIAG: tl.constexpr, HAS_S: tl.constexpr,
                BLOCK: tl.constexpr, CP: tl.constexpr, DP: tl.constexpr):
    b, HW, offs, inimg, y, x, vi = _tile(V, H, W, BLOCK)
    c3 = tl.load(SIG3)  # 1 / (2 σ3²), a device scalar: no host synchronisation
    if HAS_DFR:
        cc = tl.arange(0, CP)
        pm = inimg[:, None] & (cc[None, :] < C)
        Pi = tl.load(P + b * C * HW + cc[None, :] * HW + offs[:, None], mask=pm, other=0.0)
    if HAS_F:
        dd = tl.arange(0, DP)
        fm = inimg[:, None] & (dd[None, :] < D)
        Fi = tl.load(Fe + b * D * HW + dd[None, :] * HW + offs[:, None], mask=fm, other=0.0)
    if HAS_I:
        i0, i1, i2 = _rgb(I, b, HW, offs, inimg)
    if HAS_T:
        ti = tl.load(T + b * HW + offs, mask=inimg, other=-1)
    if HAS_S:
        si = tl.load(S + b * HW + offs, mask=inimg, other=-1)
    zero = tl.zeros((BLOCK,), dtype=tl.float32)
    a_dfr = zero
    a_bg = zero
    a_fg = zero
    a_neg = zero
    n_bg = zero
    n_fg = zero
    n_neg = zero
    a_fr = zero
    a_pairs = zero
    a_k0 = zero
    a_k = zero
    a_dist = zero
    a_same = zero
    n_same = zero
    a_diff = zero
    n_diff = zero
    for dy in range(-R, R + 1):
        for dx in range(-R, R + 1):
            m, j, vv = _pair(V, b, HW, H, W, offs, y, x, inimg, vi, dy, dx)
            sp = (dy * dy + dx * dx) * c_xy  # ‖ΔS‖²/2σ1²
            if HAS_I:
                j0, j1, j2 = _rgb(I, b, HW, j, m)
                e0 = i0 - j0
                e1 = i1 - j1
                e2 = i2 - j2
                rgb = (e0 * e0 + e1 * e1 + e2 * e2) * c_rgb  # ‖ΔI‖²/2σ2²
            if HAS_F:
                Fj = tl.load(Fe + b * D * HW + dd[None, :] * HW + j[:, None],
                             mask=fm & m[:, None], other=0.0)
                diff = Fi - Fj
                df2 = tl.sum(diff * diff, 1)
                l1 = tl.sum(tl.abs(diff), 1) / D  # −log D of Eq. 10
            if HAS_T:
                tj = tl.load(T + b * HW + j, mask=m, other=-1)
                both = (ti >= 0) & (tj >= 0) & m
                same = both & (ti == tj)
                bg = same & (ti == background)
                fg = same & (ti != background)
                neg = both & (ti != tj)
            if HAS_DFR or DIAG:
                logk0 = zero
                if USE_XY:
                    logk0 -= sp
                if USE_RGB:
                    logk0 -= rgb
            if HAS_DFR:
                logk = logk0
                if USE_FEAT:
                    logk -= df2 * c3
                kd = tl.exp(logk) * vv
                Pj = tl.load(P + b * C * HW + cc[None, :] * HW + j[:, None],
                             mask=pm & m[:, None], other=0.0)
                a_dfr += kd * (1.0 - tl.sum(Pi * Pj, 1))
            if HAS_FD:
                a_bg += tl.where(bg, l1, 0.0)
                a_fg += tl.where(fg, l1, 0.0)
                a_neg += tl.where(neg, -tl.log(_one_minus_exp_neg(l1) + eps), 0.0)
            if HAS_T:
                n_bg += bg.to(tl.float32)
                n_fg += fg.to(tl.float32)
                n_neg += neg.to(tl.float32)
            if HAS_FR:
                if FR_ALL:
                    mfr = vv
                else:
                    mfr = both.to(tl.float32)
                a_fr += tl.exp(-sp - rgb) * mfr * l1
            if DIAG:
                k0 = tl.exp(logk0) * vv
                a_pairs += vv
                a_k0 += k0
                if HAS_F:
                    ffac = tl.exp(-df2 * c3)
                    a_k += k0 * ffac
                    a_dist += tl.sqrt(df2) * vv
                    if HAS_S:
                        sj = tl.load(S + b * HW + j, mask=m, other=-1)
                        sboth = (si >= 0) & (sj >= 0) & m
                        ssame = sboth & (si == sj)
                        sdiff = sboth & (si != sj)
                        a_same += tl.where(ssame, ffac, 0.0)
                        n_same += ssame.to(tl.float32)
                        a_diff += tl.where(sdiff, ffac, 0.0)
                        n_diff += sdiff.to(tl.float32)
    out = ACCP + (b * tl.num_programs(0) + tl.program_id(0)) * 16
    tl.store(out + 0, tl.sum(a_dfr, 0))
    tl.store(out + 1, tl.sum(a_bg, 0))
    tl.store(out + 2, tl.sum(a_fg, 0))
    tl.store(out + 3, tl.sum(a_neg, 0))
    tl.store(out + 4, tl.sum(n_bg, 0))
    tl.store(out + 5, tl.sum(n_fg, 0))
    tl.store(out + 6, tl.sum(n_neg, 0))
    tl.store(out + 7, tl.sum(a_fr, 0))
    tl.store(out + 8, tl.sum(a_pairs, 0))
    tl.store(out + 9, tl.sum(a_k0, 0))
    tl.store(out + 10, tl.sum(a_k, 0))
    tl.store(out + 11, tl.sum(a_dist, 0))
    tl.store(out + 12, tl.sum(a_same, 0))
    tl.store(out + 13, tl.sum(n_same, 0))
    tl.store(out + 14, tl.sum(a_diff, 0))
    tl.store(out + 15, tl.sum(n_diff, 0))


@triton.jit
def _bwd_kernel(P, I, Fe, V, T, SIG3, COEF, GP, GF,
                H, W, C, D, R, c_xy, c_rgb, eps, background,
                GRAD_P: tl.constexpr, GRAD_F: tl.constexpr, HAS_FD: tl.constexpr,
                HAS_FR: tl.constexpr, FR_ALL: tl.constexpr, USE_XY: tl.constexpr,
                USE_RGB: tl.constexpr, USE_FEAT: tl.constexpr, HAS_F: tl.constexpr,
                HAS_I: tl.constexpr, HAS_T: tl.constexpr,
                BLOCK: tl.constexpr, CP: tl.constexpr, DP: tl.constexpr):
    b, HW, offs, inimg, y, x, vi = _tile(V, H, W, BLOCK)
    c3 = tl.load(SIG3)
    # COEF: ∂L/∂value of each term times its normaliser (0 where the term is off)
    k_dfr = tl.load(COEF + 0)
    k_bg = tl.load(COEF + 1)
    k_fg = tl.load(COEF + 2)
    k_neg = tl.load(COEF + 3)
    k_fr = tl.load(COEF + 4)
    if GRAD_P:
        cc = tl.arange(0, CP)
        pm = inimg[:, None] & (cc[None, :] < C)
        gp = tl.zeros((BLOCK, CP), dtype=tl.float32)
    if HAS_F:
        dd = tl.arange(0, DP)
        fm = inimg[:, None] & (dd[None, :] < D)
        Fi = tl.load(Fe + b * D * HW + dd[None, :] * HW + offs[:, None], mask=fm, other=0.0)
    if GRAD_F:
        gf = tl.zeros((BLOCK, DP), dtype=tl.float32)
    if HAS_I:
        i0, i1, i2 = _rgb(I, b, HW, offs, inimg)
    if HAS_T:
        ti = tl.load(T + b * HW + offs, mask=inimg, other=-1)
    zero = tl.zeros((BLOCK,), dtype=tl.float32)
    for dy in range(-R, R + 1):
        for dx in range(-R, R + 1):
            m, j, vv = _pair(V, b, HW, H, W, offs, y, x, inimg, vi, dy, dx)
            sp = (dy * dy + dx * dx) * c_xy
            if HAS_I:
                j0, j1, j2 = _rgb(I, b, HW, j, m)
                e0 = i0 - j0
                e1 = i1 - j1
                e2 = i2 - j2
                rgb = (e0 * e0 + e1 * e1 + e2 * e2) * c_rgb
            if HAS_F:
                Fj = tl.load(Fe + b * D * HW + dd[None, :] * HW + j[:, None],
                             mask=fm & m[:, None], other=0.0)
                diff = Fi - Fj
            if GRAD_P:
                logk = zero
                if USE_XY:
                    logk -= sp
                if USE_RGB:
                    logk -= rgb
                if USE_FEAT:
                    logk -= tl.sum(diff * diff, 1) * c3
                kd = tl.exp(logk) * vv
                Pj = tl.load(P + b * C * HW + cc[None, :] * HW + j[:, None],
                             mask=pm & m[:, None], other=0.0)
                gp += kd[:, None] * Pj
            if GRAD_F:
                l1 = tl.sum(tl.abs(diff), 1) / D
                coef = zero
                if HAS_T:
                    tj = tl.load(T + b * HW + j, mask=m, other=-1)
                    both = (ti >= 0) & (tj >= 0) & m
                if HAS_FD:
                    same = both & (ti == tj)
                    bg = same & (ti == background)
                    fg = same & (ti != background)
                    neg = both & (ti != tj)
                    om = _one_minus_exp_neg(l1)
                    coef += tl.where(bg, k_bg, 0.0) + tl.where(fg, k_fg, 0.0)
                    coef -= tl.where(neg, k_neg * tl.exp(-l1) / (om + eps), 0.0)
                if HAS_FR:
                    if FR_ALL:
                        mfr = vv
                    else:
                        mfr = both.to(tl.float32)
                    coef += k_fr * tl.exp(-sp - rgb) * mfr
                sgn = tl.where(diff > 0, 1.0, tl.where(diff < 0, -1.0, 0.0))
                gf += coef[:, None] * sgn
    if GRAD_P:
        tl.store(GP + b * C * HW + cc[None, :] * HW + offs[:, None], -2.0 * k_dfr * gp, mask=pm)
    if GRAD_F:
        tl.store(GF + b * D * HW + dd[None, :] * HW + offs[:, None], (2.0 / D) * gf, mask=fm)


def _launch_shape(hw, c, d):
    cp = triton.next_power_of_2(max(int(c), 1))
    dp = triton.next_power_of_2(max(int(d), 1))
    block = max(1, min(64, 4096 // max(cp, dp)))
    block = triton.next_power_of_2(block)
    if block > hw:
        block = triton.next_power_of_2(hw)
    return block, cp, dp


def _scalars(spec):
    """Python constants of the kernels from a `PairwiseParams`."""
    return (float(spec.stride) ** 2 / (2.0 * float(spec.sigma_xy) ** 2),
            0.5 / float(spec.sigma_rgb) ** 2, LOG_EPS, int(spec.background))


def pairwise_forward(spec, terms, probs, image, feats, valid, codes, scribbles, inv2s3, diag):
    """One launch: (N_ACC,) float32 sums over the batch (ordered pairs; slots `ACC`).

    probs (B, C, h, w) / image (B, 3, h, w) / feats (B, d, h, w) float32 contiguous or None;
    valid (B, h, w) float32 0/1; codes, scribbles (B, h, w) int32, -1 = none (or None);
    inv2s3: 0-d float32 tensor 1/(2σ3²)."""
    b, h, w = valid.shape
    c = probs.shape[1] if probs is not None else 1
    d = feats.shape[1] if feats is not None else 1
    block, cp, dp = _launch_shape(h * w, c, d)
    tiles = triton.cdiv(h * w, block)
    acc = torch.empty((b * tiles, N_ACC), dtype=torch.float32, device=valid.device)
    dummy = valid
    has_dfr, has_fd, has_fr = "dfr" in terms, "fd" in terms, "fr" in terms
    c_xy, c_rgb, eps, bgid = _scalars(spec)
    _fwd_kernel[(tiles, b)](
        probs if probs is not None else dummy, image if image is not None else dummy,
        feats if feats is not None else dummy, valid,
        codes if codes is not None else dummy, scribbles if scribbles is not None else dummy,
        inv2s3, acc, h, w, c, d, int(spec.radius), c_xy, c_rgb, eps, bgid,
        HAS_DFR=has_dfr, HAS_FD=has_fd, HAS_FR=has_fr, FR_ALL=spec.fr_pairs == "R",
        USE_XY=bool(spec.use_xy), USE_RGB=bool(spec.use_rgb) and image is not None,
        USE_FEAT=bool(spec.use_feat) and feats is not None, HAS_F=feats is not None,
        HAS_I=image is not None, HAS_T=codes is not None,
        DIAG=bool(diag), HAS_S=bool(diag) and scribbles is not None, BLOCK=block, CP=cp,
        DP=dp)
    return acc.sum(0)


def pairwise_backward(spec, terms, probs, image, feats, valid, codes, inv2s3, coef,
                      grad_p, grad_f):
    """One launch: (∂L/∂probs or None, ∂L/∂feats or None). coef (5,) float32 device tensor:
    go_dfr / #valid, go_fd / |A+bg|, go_fd / |A+fg|, 2·go_fd / |A−|, go_fr / #valid (ordered
    counts; 0 for an empty set or an absent term)."""
    b, h, w = valid.shape
    c = probs.shape[1] if probs is not None else 1
    d = feats.shape[1] if feats is not None else 1
    block, cp, dp = _launch_shape(h * w, c, d)
    tiles = triton.cdiv(h * w, block)
    gp = torch.empty_like(probs) if grad_p else None
    gf = torch.empty_like(feats) if grad_f else None
    dummy = valid
    c_xy, c_rgb, eps, bgid = _scalars(spec)
    _bwd_kernel[(tiles, b)](
        probs if probs is not None else dummy, image if image is not None else dummy,
        feats if feats is not None else dummy, valid, codes if codes is not None else dummy,
        inv2s3, coef, gp if gp is not None else dummy, gf if gf is not None else dummy,
        h, w, c, d, int(spec.radius), c_xy, c_rgb, eps, bgid,
        GRAD_P=bool(grad_p), GRAD_F=bool(grad_f), HAS_FD="fd" in terms, HAS_FR="fr" in terms,
        FR_ALL=spec.fr_pairs == "R", USE_XY=bool(spec.use_xy),
        USE_RGB=bool(spec.use_rgb) and image is not None,
        USE_FEAT=bool(spec.use_feat) and feats is not None and "dfr" in terms,
        HAS_F=feats is not None, HAS_I=image is not None, HAS_T=codes is not None,
        BLOCK=block, CP=cp, DP=dp)
    return gp, gf
