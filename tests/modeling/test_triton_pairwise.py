"""The fused Triton kernels of the pairwise losses (dfr.modeling.losses.triton_pairwise), run
by Triton's interpreter on the CPU (TRITON_INTERPRET=1, tiny maps): values, gradients and
diagnostic sums equal to the torch window pass and to the float64 brute force over the
equations (Eq. 4-13), for the switch combinations of Tables 4 and 5, ignore and padding masks,
image borders, position strides, odd sizes and batches > 1."""
import math
import os

import pytest
import torch

import reference_losses as ref
from dfr.modeling.losses import PairwiseParams, pairwise_losses
from dfr.modeling.losses.fused import resolve_impl

REL = 1e-5


@pytest.fixture(autouse=True)
def interpreted():
    """On a CPU, conftest sets TRITON_INTERPRET=1 before Triton is imported."""
    pytest.importorskip("triton")
    if not torch.cuda.is_available():
        assert os.environ.get("TRITON_INTERPRET") == "1"


def _inputs(seed, b, c, d, h, w, p_invalid=0.2, p_unlabeled=0.3, n_labels=3, feat_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.randn(b, c, h, w, generator=g, dtype=torch.float64).mul(2).softmax(1)
    image = torch.randn(b, 3, h, w, generator=g, dtype=torch.float64) * 0.5
    feats = torch.randn(b, d, h, w, generator=g, dtype=torch.float64).mul(feat_scale).relu()
    labels = torch.randint(0, n_labels, (b, h, w), generator=g)
    labels[torch.rand(b, h, w, generator=g) < p_unlabeled] = 255
    valid = torch.rand(b, h, w, generator=g) >= p_invalid
    return probs, image, feats, labels, valid


def _run(impl, probs, image, feats, labels, valid, terms, weights, dtype, **kw):
    p = probs.to(dtype).requires_grad_() if "dfr" in terms else None
    f = feats.to(dtype).requires_grad_() if feats is not None else None
    out = pairwise_losses(p, image.to(dtype), f, labels, valid, terms=terms, impl=impl,
                          scribbles=labels, diagnostics=True, **kw)
    sum(w * out[t] for t, w in zip(terms, weights)).backward()
    return out, (p.grad if p is not None else None), (f.grad if f is not None else None)


def _close(a, b, rel=REL, what=""):
    a, b = float(torch.as_tensor(a).detach()), float(torch.as_tensor(b).detach())
    assert math.isfinite(a), what
    assert abs(a - b) <= rel * max(abs(b), 1e-6), (what, a, b)


def _grads_close(a, b, what):
    if b is None:
        assert a is None or float(a.abs().max()) == 0.0, what
        return
    scale = float(b.abs().max())
    assert float((a.double() - b.double()).abs().max()) <= REL * max(scale, 1e-6), what


# (seed, B, C, d, h, w, radius, stride, invalid share, params, terms)
CASES = [
    (0, 2, 4, 5, 7, 6, 2, 1.0, 0.2, {}, ("dfr", "fd", "fr")),
    (1, 1, 3, 6, 5, 9, 1, 2.0, 0.0, {"use_xy": False}, ("dfr", "fd", "fr")),
    (2, 2, 5, 3, 6, 5, 3, 1.0, 0.3, {"use_rgb": False}, ("dfr", "fd")),
    (3, 1, 4, 4, 9, 3, 2, 2.0, 0.2, {"use_feat": False}, ("dfr", "fr")),
    (4, 2, 3, 7, 4, 7, 2, 0.5, 0.2,
     {"use_xy": False, "use_rgb": False, "use_feat": False}, ("dfr",)),
    (5, 2, 3, 5, 5, 5, 2, 1.0, 0.2, {"fr_pairs": "R", "background": 1}, ("fd", "fr")),
    (6, 1, 21, 33, 3, 5, 5, 1.0, 0.1, {"background": -1}, ("dfr", "fd", "fr")),
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{c[0]}" for c in CASES])
def test_triton_equals_torch_path_and_brute_force(case):
    seed, b, c, d, h, w, r, stride, p_inv, params, terms = case
    probs, image, feats, labels, valid = _inputs(seed, b, c, d, h, w, p_invalid=p_inv,
                                                 feat_scale=3.0)
    kw = dict(radius=r, stride=stride, sigma_xy=3.0, sigma_rgb=0.7, sigma_feat=4.0, **params)
    weights = (1.3, 0.7, 2.1)[:len(terms)]
    tri, gp, gf = _run("triton", probs, image, feats, labels, valid, terms, weights,
                       torch.float32, **kw)
    tor, gp64, gf64 = _run("torch", probs, image, feats, labels, valid, terms, weights,
                           torch.float64, **kw)
    for t in terms:
        assert tri[t].dtype == torch.float32
        _close(tri[t], tor[t], what=t)
    for k, v in tor["diag"].items():
        _close(tri["diag"][k], v, what=k)
    _grads_close(gp, gp64, "grad probs")
    _grads_close(gf, gf64, "grad feats")
    # the equations themselves, float64 loops over every ordered window pair
    spec = PairwiseParams(**kw)
    if "dfr" in terms:
        _close(tri["dfr"], ref.brute_dfr(probs, image, feats, valid, radius=r, stride=stride,
                                         sigma_xy=3.0, sigma_rgb=0.7, sigma_feat=4.0,
                                         use_xy=spec.use_xy, use_rgb=spec.use_rgb,
                                         use_feat=spec.use_feat), what="brute dfr")
    if "fd" in terms:
        _close(tri["fd"], ref.brute_fd(feats, labels, valid, radius=r,
                                       background=spec.background), what="brute fd")
    if "fr" in terms:
        _close(tri["fr"], ref.brute_fr(feats, image, labels, valid, radius=r, stride=stride,
                                       sigma_xy=3.0, sigma_rgb=0.7, pairs=spec.fr_pairs),
               what="brute fr")


def test_triton_with_nothing_valid_gives_zero_values_and_gradients():
    probs, image, feats, labels, valid = _inputs(7, 2, 3, 4, 4, 5)
    valid = torch.zeros_like(valid)
    out, gp, gf = _run("triton", probs, image, feats, labels, valid, ("dfr", "fd", "fr"),
                       (1.0, 1.0, 1.0), torch.float32, radius=2)
    for t in ("dfr", "fd", "fr"):
        assert float(out[t].detach()) == 0.0, t
    assert float(gp.abs().max()) == 0.0 and float(gf.abs().max()) == 0.0


def test_triton_feature_distance_with_equal_features_stays_finite():
    # D = 1 on A- pairs: −log(1 − D + eps) is finite, and its gradient too (subgradient 0)
    probs, image, feats, labels, valid = _inputs(8, 1, 3, 4, 4, 4, p_invalid=0.0)
    feats = torch.ones_like(feats)
    out, _, gf = _run("triton", probs, image, feats, labels, valid, ("fd",), (1.0,),
                      torch.float32, radius=1)
    _close(out["fd"], ref.brute_fd(feats, labels, valid, radius=1), what="fd")
    assert torch.isfinite(gf).all()


def test_impl_choice_and_errors(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_impl("auto", cpu) == "torch"  # no CUDA: the torch path
    assert resolve_impl("triton", cpu) == "triton"  # interpreted (fixture)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        resolve_impl("triton", cpu)
    with pytest.raises(ValueError, match="one of .*auto.*got 'cuda'"):
        resolve_impl("cuda", cpu)
    with pytest.raises(ValueError, match="float32"):
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        resolve_impl("triton", cpu, torch.float64)


def test_triton_window_feature_distance_equals_torch():
    """The relative σ3's distance pass (no probabilities, no labels) in both implementations."""
    from dfr.modeling.losses import window_feature_distance_sum

    _, _, feats, _, valid = _inputs(9, 2, 3, 6, 5, 7, feat_scale=2.0)
    num_t, den_t = window_feature_distance_sum(feats.float(), valid, 2, impl="triton")
    num, den = window_feature_distance_sum(feats, valid, 2)
    _close(den_t, den, what="pairs")
    _close(num_t, num, what="distance")


def test_kernel_check_runs_both_kernels_and_reports_a_failure(monkeypatch):
    """`auto` asks `_triton_compiles` once per device type: it runs the forward and the
    backward kernel, and a kernel that fails to build makes it answer False with the cause
    in the log (auto then uses the torch pass)."""
    from helpers import logged

    from dfr.modeling.losses import fused, triton_pairwise

    monkeypatch.setattr(fused, "_TRITON_OK", {})
    assert fused._triton_compiles(torch.device("cpu"))  # interpreted: both kernels run

    class Broken:
        def __getitem__(self, grid):
            def launch(*a, **k):
                raise RuntimeError("no compiler for this GPU")
            return launch

    monkeypatch.setattr(triton_pairwise, "_bwd_kernel", Broken())
    monkeypatch.setattr(fused, "_TRITON_OK", {})
    with logged("dfr.modeling.losses.fused") as log:
        assert not fused._triton_compiles(torch.device("cpu"))
    assert "no compiler for this GPU" in log.text and "torch implementation" in log.text
