"""Shared driver of the pairwise losses: input preparation, one autograd Function for any subset
of {Ldfr, Lfd, Lfr}, and `pairwise_losses`, which evaluates all three in one pass."""
import torch

from ._checks import (check_labels, check_map, check_probs, check_radius, check_valid,
                      compute_dtype, no_autocast)
from .pairwise import WindowLayout, feature_distance_counts, pair_codes, pairwise_loop

__all__ = ["pairwise_losses"]


class _PairwiseFunction(torch.autograd.Function):
    """Values of the requested terms; their gradients are accumulated in the forward pass and
    scaled by grad_output in backward."""

    @staticmethod
    def forward(ctx, probs, feats, run):
        names, values, g_p, g_f = run(ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        ctx.names = names
        ctx.has_p, ctx.f_names = g_p is not None, [k for k in names if k in g_f]
        ctx.save_for_backward(*([g_p] if g_p is not None else []),
                              *[g_f[k] for k in ctx.f_names])
        return tuple(values[k] for k in names)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grad_outs):
        saved = list(ctx.saved_tensors)
        go = dict(zip(ctx.names, grad_outs))
        g_probs = saved.pop(0) * go["dfr"] if ctx.has_p else None
        g_feats = None
        for k, g in zip(ctx.f_names, saved):
            g_feats = g * go[k] if g_feats is None else g_feats.add_(g * go[k])
        return g_probs, g_feats, None


def evaluate(*, probs=None, image=None, feats=None, labels=None, valid=None, radius=5,
             dfr=None, fd=None, fr=None, ignore_index=255):
    """Validate, then compute the requested terms (dicts of parameters, see `pairwise_loop`)
    in one pass. Returns {name: scalar tensor} in float64 for float64 inputs, else float32."""
    ref = probs if probs is not None else feats
    b, _, h, w = ref.shape
    size = (h, w)
    if dfr is not None:
        if dfr["use_rgb"]:
            check_map("image", image, b, size, channels=3)
        if dfr["use_feat"]:
            check_map("feats", feats, b, size)
    if fd is not None or fr is not None:
        check_map("feats", feats, b, size)
        check_labels("labels", labels, b, size)
    if fr is not None:
        check_map("image", image, b, size, channels=3)
    valid = check_valid(valid, b, size, ref.device)
    radius = check_radius(radius)
    if dfr is not None:
        check_probs(probs, probs.dtype)
    use_img = fr is not None or (dfr is not None and dfr["use_rgb"])
    use_f = fd is not None or fr is not None or (dfr is not None and dfr["use_feat"])
    dt = compute_dtype(probs if dfr is not None else None, image if use_img else None,
                       feats if use_f else None)
    names = [k for k, t in (("dfr", dfr), ("fd", fd), ("fr", fr)) if t is not None]
    n_valid = int(valid.sum())
    grad_on = torch.is_grad_enabled()
    layout = WindowLayout(h, w, radius)
    code = None
    if fd is not None or fr is not None:
        code = pair_codes(labels.to(ref.device), valid, layout, ignore_index)
    with no_autocast(ref.device):
        p = probs.to(dt) if dfr is not None else None
        f = feats.to(dt) if use_f else None
        if f is not None and fd is None and fr is None:
            f = f.detach()  # Ldfr alone: features only enter the kernel
        img = image.detach().to(dt) if use_img else None
        if n_valid == 0:  # nothing valid: every term is 0, with a gradient
            out = {k: (p if k == "dfr" else f).sum() * 0 for k in names}
            return out
        if dfr is not None:
            dfr = dict(dfr, scale=2.0 / n_valid)
        if fr is not None:
            fr = dict(fr, scale=2.0 / n_valid)
        if fd is not None:
            counts = feature_distance_counts(code, layout, fd["background"])
            tot = counts.sum(0).tolist() if counts.numel() else [0, 0, 0]
            fd = dict(fd, inv=[1.0 / c if c else 0.0 for c in tot],
                      active=counts.any(1).tolist() if counts.numel() else [])

        def run(grad_p, grad_f):
            V = layout.flat(valid.unsqueeze(1).to(dt))
            values, g_p, g_f = pairwise_loop(
                layout, V, P=layout.flat(p) if p is not None else None,
                I=layout.flat(img) if img is not None else None,
                F=layout.flat(f.detach()) if f is not None else None, code=code, dfr=dfr,
                fd=fd, fr=fr, grad_P=grad_p, grad_F=grad_f)
            g_p = layout.unflat(g_p) if g_p is not None else None
            g_f = {k: layout.unflat(g) for k, g in g_f.items()}
            return names, values, g_p, g_f

        p_in = p if (p is not None and grad_on and p.requires_grad) else None
        f_in = f if (f is not None and grad_on and f.requires_grad) else None
        if p_in is None and f_in is None:
            with torch.no_grad():
                _, values, _, _ = run(False, False)
            return values
        outs = _PairwiseFunction.apply(p_in, f_in, run)
        return dict(zip(names, outs))


def pairwise_losses(probs, image, feats, labels, valid=None, radius=5, sigma_xy=6.0,
                    sigma_rgb=0.5, sigma_feat=50.0, stride=1.0, use_xy=True, use_rgb=True,
                    use_feat=True, background=0, fr_pairs="RA", ignore_index=255,
                    terms=("dfr", "fd", "fr")):
    """Ldfr, Lfd and Lfr of one batch in a single pass over the window offsets (shared feature
    and RGB differences): the same values and gradients as `dfr_loss`,
    `feature_distance_loss` and `feature_regularized_loss` called with these arguments
    (Lfr uses the same sigma_xy, sigma_rgb and stride as Ldfr). labels (B, h, w) supervise the
    feature head (M of Eq. 7, scribbles, ...; may be None without "fd"/"fr"). `terms` picks
    the subset to compute (the others are not evaluated). Returns {term: scalar}.
    """
    terms = tuple(terms)
    if not terms or not set(terms) <= {"dfr", "fd", "fr"}:
        raise ValueError(f"`terms` must be a non-empty subset of ('dfr', 'fd', 'fr'), got {terms}")
    if "dfr" in terms:
        check_map("probs", probs)
    else:
        check_map("feats", feats)
    if fr_pairs not in ("RA", "R"):
        raise ValueError(f"`fr_pairs` must be 'RA' or 'R', got {fr_pairs!r}")
    dfr = dict(sigma_xy=float(sigma_xy), sigma_rgb=float(sigma_rgb), sigma_feat=float(sigma_feat),
               stride=float(stride), use_xy=bool(use_xy), use_rgb=bool(use_rgb),
               use_feat=bool(use_feat))
    fr = dict(sigma_xy=float(sigma_xy), sigma_rgb=float(sigma_rgb), stride=float(stride),
              all_pairs=fr_pairs == "R")
    return evaluate(
        probs=probs if "dfr" in terms else None, image=image, feats=feats, labels=labels,
        valid=valid, radius=radius, dfr=dfr if "dfr" in terms else None,
        fd=dict(background=int(background)) if "fd" in terms else None,
        fr=fr if "fr" in terms else None, ignore_index=ignore_index)
