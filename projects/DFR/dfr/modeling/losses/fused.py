"""Driver of the pairwise losses (Eq. 4-13): input checks, the choice of implementation (the
torch window pass of `pairwise.py` or the fused Triton kernels of `triton_pairwise.py`), one
autograd Function per implementation for any subset of {Ldfr, Lfd, Lfr}, and `pairwise_losses`,
which evaluates them (and, on request, the diagnostic sums) in one pass.

Nothing here reads a tensor's value on the host: normalisers (1/#valid, 1/|A±|) and σ3 stay
0-d device tensors, so a training step never waits for the device in the losses and the
whole criterion compiles with `torch.compile(fullgraph=True)`.
"""
import logging
import os
from typing import Dict, Optional, Sequence

import torch

from ._checks import (check_labels, check_map, check_probs, check_valid, compute_dtype,
                      no_autocast)
from .pairwise import DIAG_SUMS, WindowLayout, feature_distance_counts, pair_codes, window_pass
from .params import IMPLS, PairwiseParams

__all__ = ["pairwise_losses", "resolve_impl", "TERMS"]

TERMS = ("dfr", "fd", "fr")
logger = logging.getLogger(__name__)
_TRITON_OK: Dict[str, bool] = {}
_SAID: set = set()


def _inv(x):
    """1/x where x > 0, else 0 (an empty pair set adds nothing, Eq. 11)."""
    return torch.where(x > 0, 1.0 / x.clamp(min=1), torch.zeros_like(x))


def _triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _triton_compiles(device: torch.device) -> bool:
    """Whether the fused kernels (forward and backward) build and run on `device` (checked
    once per device type; a failure is logged with its cause)."""
    key = device.type
    if key not in _TRITON_OK:
        try:
            from . import triton_pairwise  # noqa: F401  (imports Triton)
            with torch.enable_grad():
                p = torch.full((1, 2, 2, 2), 0.5, device=device, requires_grad=True)
                f = torch.ones(1, 2, 2, 2, device=device, requires_grad=True)
                out = _triton_losses(
                    PairwiseParams(radius=1), TERMS, p, torch.zeros(1, 3, 2, 2, device=device),
                    f, torch.zeros(1, 2, 2, dtype=torch.long, device=device),
                    torch.ones(1, 2, 2, dtype=torch.bool, device=device), None, 50.0, False)
                sum(out).backward()
            _TRITON_OK[key] = True
        except Exception as e:  # no Triton, no compiler, unsupported device
            logger.warning("Triton pairwise kernels unavailable on %s (%s: %s); using the "
                           "torch implementation", key, type(e).__name__, e)
            _TRITON_OK[key] = False
    return _TRITON_OK[key]


def resolve_impl(impl: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """"torch" or "triton" for `impl` in IMPLS on `device`. "auto": Triton on CUDA for float32
    when the kernels compile, else torch; the choice is logged once per device type."""
    if impl not in IMPLS:
        raise ValueError(f"pairwise implementation must be one of {IMPLS}, got {impl!r}")
    if impl == "torch":
        return "torch"
    if impl == "triton":
        if device.type != "cuda" and not _triton_interpreted():
            raise RuntimeError("the Triton pairwise kernels need CUDA tensors (or "
                               f"TRITON_INTERPRET=1 on a CPU), got device {device}")
        if dtype == torch.float64:
            raise ValueError("the Triton pairwise kernels compute in float32; use impl 'torch' "
                             "for float64 inputs")
        return "triton"
    use = device.type == "cuda" and dtype != torch.float64 and _triton_compiles(device)
    choice = "triton" if use else "torch"
    if device.type not in _SAID:
        _SAID.add(device.type)
        logger.info("pairwise losses on %s: %s implementation", device.type, choice)
    return choice


class _TorchPairwise(torch.autograd.Function):
    """Values (and diagnostic sums) of the torch window pass; the gradients are accumulated in
    the forward pass and scaled by grad_output in backward (first-order only)."""

    @staticmethod
    def forward(ctx, probs, feats, image, valid, codes, scribbles, inv2s3, scale, fd_inv,
                spec, terms, diag, layout):
        flat = [layout.flat(x) if x is not None else None for x in (probs, feats, image)]
        sums, g_p, g_f = window_pass(
            layout, valid, spec, terms, probs=flat[0], feats=flat[1], image=flat[2],
            codes=codes, scribbles=scribbles, inv2s3=inv2s3, scale=scale, fd_inv=fd_inv,
            grad_probs=ctx.needs_input_grad[0], grad_feats=ctx.needs_input_grad[1], diag=diag)
        g_p = layout.unflat(g_p) if g_p is not None else None
        g_f = {k: layout.unflat(g) for k, g in g_f.items()}
        ctx.terms = terms
        ctx.has_p = g_p is not None
        ctx.f_terms = tuple(t for t in terms if t in g_f)
        ctx.save_for_backward(*([g_p] if g_p is not None else []),
                              *[g_f[t] for t in ctx.f_terms])
        keys = list(terms) + (list(DIAG_SUMS) if diag else [])
        return tuple(sums[k] for k in keys)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grad_out):
        saved = list(ctx.saved_tensors)
        go = {t: grad_out[i] for i, t in enumerate(ctx.terms)}
        g_probs = saved.pop(0) * go["dfr"] if ctx.has_p else None
        g_feats = None
        for t, g in zip(ctx.f_terms, saved):
            g_feats = g * go[t] if g_feats is None else g_feats + g * go[t]
        return (g_probs, g_feats) + (None,) * 11


def _torch_losses(spec, terms, probs, image, feats, labels, valid, scribbles, sigma_feat, diag):
    """The torch implementation on (B, K, h, w) maps: a tuple of the term values followed,
    with diag, by the sums of DIAG_SUMS."""
    b, h, w = valid.shape
    layout = WindowLayout(h, w, spec.radius)
    dt = valid.dtype
    V = layout.flat(valid.unsqueeze(1))
    codes = pair_codes(labels, valid > 0, layout, spec.ignore_index) \
        if labels is not None else None
    scr = pair_codes(scribbles, valid > 0, layout, spec.ignore_index) \
        if scribbles is not None else None
    fd_inv = None
    if "fd" in terms:
        counts = feature_distance_counts(codes, layout, spec.background)
        tot = counts.sum(0).to(dt) if counts.numel() else V.new_zeros(3)
        fd_inv = _inv(tot)
    scale = 1.0 / valid.sum().clamp(min=1)
    inv2s3 = 0.5 / torch.as_tensor(sigma_feat, dtype=dt, device=V.device) ** 2
    grad_p = probs is not None and probs.requires_grad and torch.is_grad_enabled()
    grad_f = feats is not None and feats.requires_grad and torch.is_grad_enabled()
    if not (grad_p or grad_f):
        flat = [layout.flat(x) if x is not None else None for x in (probs, feats, image)]
        with torch.no_grad():
            sums, _, _ = window_pass(layout, V, spec, terms, probs=flat[0], feats=flat[1],
                                     image=flat[2], codes=codes, scribbles=scr, inv2s3=inv2s3,
                                     scale=scale, fd_inv=fd_inv, diag=diag)
        keys = list(terms) + (list(DIAG_SUMS) if diag else [])
        return tuple(sums[k] for k in keys)
    return _TorchPairwise.apply(probs, feats, image, V, codes, scr, inv2s3, scale,
                                fd_inv, spec, terms, diag, layout)


class _TritonPairwise(torch.autograd.Function):
    """Fused kernels: one launch for the values and sums, one for the gradients."""

    @staticmethod
    def forward(ctx, probs, feats, image, valid, codes, scribbles, inv2s3, spec, terms, diag):
        from .triton_pairwise import pairwise_forward

        acc = pairwise_forward(spec, terms, probs, image, feats, valid, codes, scribbles,
                               inv2s3, diag)
        n_valid = valid.sum()
        ctx.save_for_backward(probs, feats, image, valid, codes, inv2s3, acc, n_valid)
        ctx.spec, ctx.terms = spec, terms
        return _triton_outputs(acc, n_valid, terms, diag)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grad_out):
        from .triton_pairwise import ACC, pairwise_backward

        probs, feats, image, valid, codes, inv2s3, acc, n_valid = ctx.saved_tensors
        terms = ctx.terms
        go = {t: grad_out[i] for i, t in enumerate(terms)}
        z = grad_out[0].new_zeros(())
        nv = 1.0 / n_valid.clamp(min=1)
        g_fd = go.get("fd", z)
        coef = torch.stack([
            go.get("dfr", z) * nv,
            g_fd * _inv(acc[ACC.index("n_bg")]),
            g_fd * _inv(acc[ACC.index("n_fg")]),
            2.0 * g_fd * _inv(acc[ACC.index("n_neg")]),
            go.get("fr", z) * nv]).float().contiguous()
        gp, gf = pairwise_backward(ctx.spec, terms, probs, image, feats, valid, codes, inv2s3,
                                   coef, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return (gp, gf) + (None,) * 8


def _triton_outputs(acc, n_valid, terms, diag):
    """Term values and diagnostic sums from the kernel's ordered-pair sums (slots `ACC`)."""
    from .triton_pairwise import ACC

    a = dict(zip(ACC, acc.unbind(0)))
    nv = 1.0 / n_valid.clamp(min=1)
    vals = {"dfr": a["dfr"] * nv, "fr": a["fr"] * nv,
            "fd": a["fd_bg"] * _inv(a["n_bg"]) + a["fd_fg"] * _inv(a["n_fg"])
            + 2.0 * a["fd_neg"] * _inv(a["n_neg"])}
    out = [vals[t] for t in terms]
    if diag:
        out += [a[k] for k in DIAG_SUMS]
    return tuple(out)


def _triton_losses(spec, terms, probs, image, feats, labels, valid, scribbles, sigma_feat, diag):
    """The Triton implementation: float32 contiguous NCHW inputs, int32 pair codes."""
    def f32(x):
        return x.float().contiguous() if x is not None else None

    def code(lab):
        if lab is None:
            return None
        ok = (valid > 0) & (lab != spec.ignore_index)
        return torch.where(ok, lab.long(), torch.full_like(lab.long(), -1)).to(torch.int32)

    v = f32(valid)
    inv2s3 = (0.5 / torch.as_tensor(sigma_feat, dtype=torch.float32, device=v.device) ** 2
              ).reshape(1).contiguous()
    probs, feats = f32(probs), f32(feats)
    if not torch.is_grad_enabled() or not any(
            x is not None and x.requires_grad for x in (probs, feats)):
        from .triton_pairwise import pairwise_forward

        with torch.no_grad():
            acc = pairwise_forward(spec, terms, probs, f32(image), feats, v, code(labels),
                                   code(scribbles), inv2s3, diag)
            return _triton_outputs(acc, v.sum(), terms, diag)
    return _TritonPairwise.apply(probs, feats, f32(image), v, code(labels), code(scribbles),
                                 inv2s3, spec, terms, diag)


def pairwise_losses(probs: Optional[torch.Tensor], image: Optional[torch.Tensor],
                    feats: Optional[torch.Tensor], labels: Optional[torch.Tensor],
                    valid: Optional[torch.Tensor] = None,
                    params: Optional[PairwiseParams] = None, *,
                    terms: Sequence[str] = TERMS, impl: str = "torch",
                    scribbles: Optional[torch.Tensor] = None, diagnostics: bool = False,
                    validate: bool = True, **settings) -> Dict[str, torch.Tensor]:
    """Ldfr (Eq. 4-6), Lfd (Eq. 8-11) and Lfr (Eq. 12-13) of one batch in a single pass over
    the window, sharing the feature and RGB differences.

    Args:
        probs: (B, C, h, w) softmax probabilities (None without "dfr").
        image: (B, 3, h, w) normalised RGB (None when no term uses it).
        feats: (B, d, h, w) features F (Ldfr reads them without gradient; Lfd / Lfr train them).
        labels: (B, h, w) integer labels supervising the feature head (M of Eq. 7, scribbles,
            ...); needed by "fd", "fr" and the diagnostics' pair counts.
        valid: (B, h, w) bool, or None (all valid).
        params: the `PairwiseParams`; `settings` (its field names, e.g. radius=3) override it.
            `sigma_feat` may be a 0-d tensor: σ3 of this step, never read on the host.
        terms: the subset of ("dfr", "fd", "fr") to compute (the others are not evaluated).
        impl: "torch", "triton" or "auto" (`resolve_impl`).
        scribbles: (B, h, w) scribble labels, for the diagnostics' same / different class sums.
        diagnostics: also return {"diag": {key of DIAG_SUMS: 0-d tensor}}, ordered-pair sums
            accumulated in the same pass.
        validate: check that probs are probabilities (reads them on the host; the criterion,
            which makes them by softmax, passes False).

    Returns:
        {term: 0-d tensor} (float64 for float64 inputs, else float32, also under autocast); 0
        with a gradient when nothing is valid.
    """
    terms = tuple(terms)
    if (not terms and not diagnostics) or not set(terms) <= set(TERMS) \
            or len(set(terms)) != len(terms):
        raise ValueError(f"`terms` must be a non-empty subset of {TERMS}, got {terms}")
    sigma_feat = settings.pop("sigma_feat", None)
    params = params if params is not None else PairwiseParams()
    if sigma_feat is not None and not torch.is_tensor(sigma_feat):
        settings["sigma_feat"] = sigma_feat
        sigma_feat = None
    if settings:
        params = params.replace(**settings)
    use_probs = "dfr" in terms or (not terms and probs is not None)
    ref = probs if use_probs else feats
    check_map("probs" if use_probs else "feats", ref)
    b, _, h, w = ref.shape
    size = (h, w)
    use_rgb = "fr" in terms or ("dfr" in terms and params.use_rgb) or \
        (diagnostics and params.use_rgb and image is not None)
    use_feat = "fd" in terms or "fr" in terms or ("dfr" in terms and params.use_feat) or \
        (diagnostics and feats is not None)
    if use_rgb:
        check_map("image", image, b, size, channels=3)
    if use_feat:
        check_map("feats", feats, b, size)
    if "fd" in terms or "fr" in terms or (diagnostics and labels is not None):
        check_labels("labels", labels, b, size)
    if scribbles is not None:
        check_labels("scribbles", scribbles, b, size)
    valid = check_valid(valid, b, size, ref.device)
    if "dfr" in terms and validate and not torch.compiler.is_compiling():
        check_probs(probs, probs.dtype)
    dt = compute_dtype(probs if "dfr" in terms else None, image if use_rgb else None,
                       feats if use_feat else None)
    which = resolve_impl(impl, ref.device, dt)
    with no_autocast(ref.device):
        p = probs.to(dt) if "dfr" in terms else None
        f = feats.to(dt) if use_feat else None
        if f is not None and "fd" not in terms and "fr" not in terms:
            f = f.detach()  # Ldfr alone: features only enter the kernel
        img = image.detach().to(dt) if use_rgb else None
        lab = labels.to(ref.device) if labels is not None else None
        scr = scribbles.to(ref.device) if (diagnostics and scribbles is not None) else None
        s3 = sigma_feat if sigma_feat is not None else params.sigma_feat
        run = _triton_losses if which == "triton" else _torch_losses
        out = run(params, terms, p, img, f, lab, valid.to(dt), scr, s3, diagnostics)
    result = {t: out[i] for i, t in enumerate(terms)}
    if diagnostics:
        result["diag"] = {k: out[len(terms) + i] for i, k in enumerate(DIAG_SUMS)}
    return result
