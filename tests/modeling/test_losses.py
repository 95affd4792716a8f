"""dfr.modeling.losses against the equations (Eq. 2-13): float64 brute-force loops, the naive
unfold implementation, gradcheck, edge cases, dtype/autocast behaviour and input validation."""
import math

import pytest
import torch

from dfr.modeling.losses import (LOG_EPS, confident_labels, dfr_loss, feature_distance_loss,
                                 feature_regularized_loss, pairwise_losses,
                                 partial_cross_entropy)

import reference_losses as ref  # tests/ is on sys.path under pytest's rootdir conftest

REL = 1e-10


def _close(a, b, rel=REL):
    a = float(a.detach()) if torch.is_tensor(a) else float(a)
    assert math.isfinite(a)
    assert abs(a - b) <= rel * max(abs(b), 1e-12), (a, b)


def _inputs(seed, b, c, d, h, w, p_invalid=0.2, p_unlabeled=0.3, n_labels=3,
            dtype=torch.float64, feat_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.randn(b, c, h, w, generator=g, dtype=dtype).mul(2).softmax(1)
    image = torch.randn(b, 3, h, w, generator=g, dtype=dtype) * 0.5
    feats = torch.randn(b, d, h, w, generator=g, dtype=dtype).mul(feat_scale).relu()
    labels = torch.randint(0, n_labels, (b, h, w), generator=g)
    labels[torch.rand(b, h, w, generator=g) < p_unlabeled] = 255
    valid = torch.rand(b, h, w, generator=g) >= p_invalid
    return probs, image, feats, labels, valid


# (seed, B, C, d, h, w, radius, stride, with_valid): tiny maps, windows reaching past the border
CASES = [
    (0, 2, 4, 5, 9, 7, 1, 1.0, True),
    (1, 1, 3, 6, 6, 9, 2, 2.5, True),
    (2, 2, 5, 4, 9, 9, 5, 1.0, False),
    (3, 1, 4, 3, 4, 6, 5, 4.0, True),
    (4, 2, 3, 8, 3, 8, 2, 0.5, True),
]
SWITCHES = [{}, {"use_xy": False}, {"use_rgb": False}, {"use_feat": False},
            {"use_xy": False, "use_rgb": False, "use_feat": False}]


@pytest.mark.parametrize("case", CASES)
def test_dfr_matches_brute_force(case):
    seed, b, c, d, h, w, r, stride, with_valid = case
    probs, image, feats, _, valid = _inputs(seed, b, c, d, h, w, feat_scale=5.0)
    valid = valid if with_valid else None
    for sw in SWITCHES:
        kw = dict(radius=r, stride=stride, sigma_xy=3.0, sigma_rgb=0.7, sigma_feat=4.0, **sw)
        got = dfr_loss(probs, image, feats, valid, **kw)
        _close(got, ref.brute_dfr(probs, image, feats, valid, **kw))
        assert got.dtype == torch.float64 and got.shape == ()


def test_dfr_accepts_none_for_switched_off_inputs():
    probs, image, feats, _, valid = _inputs(7, 2, 3, 4, 5, 6)
    got = dfr_loss(probs, None, None, valid, radius=2, use_rgb=False, use_feat=False)
    _close(got, ref.brute_dfr(probs, image, feats, valid, radius=2, use_rgb=False,
                              use_feat=False))


@pytest.mark.parametrize("case", CASES)
def test_feature_losses_match_brute_force(case):
    seed, b, c, d, h, w, r, stride, with_valid = case
    _, image, feats, labels, valid = _inputs(seed, b, c, d, h, w)
    valid = valid if with_valid else None
    for bg in (0, 1):
        _close(feature_distance_loss(feats, labels, valid, radius=r, background=bg),
               ref.brute_fd(feats, labels, valid, radius=r, background=bg))
    for pairs in ("RA", "R"):
        kw = dict(radius=r, stride=stride, sigma_xy=3.0, sigma_rgb=0.7, pairs=pairs)
        _close(feature_regularized_loss(feats, image, labels, valid, **kw),
               ref.brute_fr(feats, image, labels, valid, **kw))


def test_feature_distance_with_repeated_features_matches_brute_force():
    # Equal neighbouring features: D = 1 on A+ pairs and on A- pairs (epsilon branch).
    _, _, feats, labels, valid = _inputs(11, 2, 3, 4, 6, 6)
    feats[:, :, :, 3:] = feats[:, :, :, 3:4]
    _close(feature_distance_loss(feats, labels, valid, radius=2),
           ref.brute_fd(feats, labels, valid, radius=2))


def test_partial_cross_entropy_matches_brute_force():
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        logits = torch.randn(2, 5, 7, 6, generator=g, dtype=torch.float64) * 3
        labels = torch.randint(0, 5, (2, 7, 6), generator=g)
        labels[torch.rand(2, 7, 6, generator=g) < 0.6] = 255
        _close(partial_cross_entropy(logits, labels), ref.brute_pce(logits, labels))
    labels = labels.to(torch.uint8)  # uint8 label maps are accepted
    _close(partial_cross_entropy(logits, labels), ref.brute_pce(logits, labels.long()))


def test_confident_labels_matches_brute_force():
    probs, *_ = _inputs(5, 2, 4, 1, 8, 9)
    probs = (probs * 6).softmax(1)  # some pixels above gamma
    for gamma in (0.5, 0.9, 0.98):
        m = confident_labels(probs.requires_grad_(), gamma=gamma)
        assert m.dtype == torch.long and m.shape == (2, 8, 9) and not m.requires_grad
        assert torch.equal(m, torch.from_numpy(ref.brute_confident(probs, gamma)))
    assert (confident_labels(probs, gamma=0.5, ignore_index=77) == 77).any()


def test_gradcheck():
    probs, image, feats, labels, valid = _inputs(3, 1, 3, 3, 4, 6, feat_scale=3.0)
    kw = dict(radius=2, stride=1.5, sigma_xy=3.0, sigma_rgb=0.7, sigma_feat=4.0)
    p = probs.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda p: dfr_loss(p, image, feats, valid, **kw), (p,))
    f = (feats + 0.1 * torch.rand_like(feats)).requires_grad_()  # keep |Fi - Fj| away from 0
    assert torch.autograd.gradcheck(
        lambda f: feature_distance_loss(f, labels, valid, radius=2), (f,))
    for pairs in ("RA", "R"):
        assert torch.autograd.gradcheck(
            lambda f: feature_regularized_loss(f, image, labels, valid, radius=2, pairs=pairs),
            (f,))


def test_matches_naive_unfold_values_and_gradients():
    probs, image, feats, labels, valid = _inputs(9, 2, 6, 16, 23, 19, feat_scale=5.0)
    kw = dict(radius=5, stride=1.0, sigma_feat=6.0)
    pairs = [
        (lambda p, f: dfr_loss(p, image, f, valid, **kw),
         lambda p, f: ref.unfold_dfr(p, image, f, valid, **kw), "p"),
        (lambda p, f: feature_distance_loss(f, labels, valid, radius=5),
         lambda p, f: ref.unfold_fd(f, labels, valid, radius=5), "f"),
        (lambda p, f: feature_regularized_loss(f, image, labels, valid, radius=5),
         lambda p, f: ref.unfold_fr(f, image, labels, valid, radius=5), "f"),
        (lambda p, f: feature_regularized_loss(f, image, labels, valid, radius=5, pairs="R"),
         lambda p, f: ref.unfold_fr(f, image, labels, valid, radius=5, pairs="R"), "f"),
    ]
    for eff, naive, wrt in pairs:
        grads = []
        for fn in (eff, naive):
            p, f = probs.clone().requires_grad_(), feats.clone().requires_grad_()
            loss = fn(p, f)
            (g,) = torch.autograd.grad(loss, [p if wrt == "p" else f])
            grads.append((loss.item(), g))
        _close(grads[0][0], grads[1][0], rel=1e-12)
        assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-14)


def test_fused_pairwise_losses_equal_separate_calls():
    probs, image, feats, labels, valid = _inputs(13, 2, 4, 6, 8, 9, feat_scale=3.0)
    kw = dict(radius=2, sigma_xy=3.0, sigma_rgb=0.7, stride=1.5)
    p, f = probs.clone().requires_grad_(), feats.clone().requires_grad_()
    out = pairwise_losses(p, image, f, labels, valid, sigma_feat=4.0, background=1, **kw)
    assert sorted(out) == ["dfr", "fd", "fr"]
    (out["dfr"] * 0.3 + out["fd"] * 0.7 - out["fr"] * 1.1).backward()
    p2, f2 = probs.clone().requires_grad_(), feats.clone().requires_grad_()
    sep = {"dfr": dfr_loss(p2, image, f2, valid, sigma_feat=4.0, **kw),
           "fd": feature_distance_loss(f2, labels, valid, radius=2, background=1),
           "fr": feature_regularized_loss(f2, image, labels, valid, **kw)}
    (sep["dfr"] * 0.3 + sep["fd"] * 0.7 - sep["fr"] * 1.1).backward()
    for k in out:
        _close(out[k], sep[k].item(), rel=1e-13)
    assert torch.allclose(p.grad, p2.grad, rtol=1e-12, atol=0)
    assert torch.allclose(f.grad, f2.grad, rtol=1e-12, atol=1e-16)
    # dfr's gradient never reaches the features (Sect. 3.2: F is a non-gradient value)
    f3 = feats.clone().requires_grad_()
    pairwise_losses(probs, image, f3, labels, valid, **kw)["dfr"].backward()
    assert f3.grad is None or f3.grad.abs().max().item() == 0.0


def test_fused_subsets_equal_separate_calls():
    # The model asks only for the switched-on terms (Table 4 rows); each subset must equal
    # the separate functions, and an unknown term is a clear error.
    probs, image, feats, labels, valid = _inputs(15, 2, 3, 5, 7, 8, feat_scale=2.0)
    kw = dict(radius=2, sigma_xy=3.0, sigma_rgb=0.7, stride=1.0)
    out = pairwise_losses(probs, image, None, None, valid, use_feat=False, terms=("dfr",), **kw)
    assert list(out) == ["dfr"]
    _close(out["dfr"], dfr_loss(probs, image, None, valid, use_feat=False, **kw).item(),
           rel=1e-13)
    out = pairwise_losses(None, image, feats, labels, valid, background=1, terms=("fd", "fr"),
                          **kw)
    assert sorted(out) == ["fd", "fr"]
    _close(out["fd"], feature_distance_loss(feats, labels, valid, radius=2, background=1).item(),
           rel=1e-13)
    _close(out["fr"], feature_regularized_loss(feats, image, labels, valid, **kw).item(),
           rel=1e-13)
    with pytest.raises(ValueError, match="terms"):
        pairwise_losses(probs, image, feats, labels, valid, terms=("dfr", "crf"))


def test_backward_keeps_only_input_sized_gradients():
    # Memory: whatever the radius, autograd keeps one gradient buffer per differentiable input
    # (no per-offset or unfolded tensors).
    probs, image, feats, labels, valid = _inputs(14, 2, 3, 5, 8, 8)
    p, f = probs.clone().requires_grad_(), feats.clone().requires_grad_()
    for r in (1, 5):
        saved = []

        def pack(t):
            saved.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            dfr_loss(p, image, f, valid, radius=r)
            feature_distance_loss(f, labels, valid, radius=r)
            feature_regularized_loss(f, image, labels, valid, radius=r)
        assert saved == [p.numel(), f.numel(), f.numel()]


def test_no_labeled_pixel_gives_zero_pce_with_gradient():
    logits = torch.randn(2, 4, 5, 5, requires_grad=True)
    loss = partial_cross_entropy(logits, torch.full((2, 5, 5), 255))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert logits.grad.shape == logits.shape and logits.grad.abs().sum().item() == 0.0


def test_one_confident_class_gives_zero_negative_term():
    probs = torch.zeros(1, 3, 6, 6, dtype=torch.float64)
    probs[:, 1] = 1.0
    m = confident_labels(probs)
    assert (m == 1).all()
    _, _, feats, _, _ = _inputs(2, 1, 3, 4, 6, 6)
    feats.requires_grad_()
    loss = feature_distance_loss(feats, m, radius=2)
    # Only A+fg pairs: the value is their mean of -log D, no A- term, no A+bg term.
    x = ref.brute_fd(feats, m, radius=2)
    _close(loss, x)
    _close(loss, ref.brute_fd(feats, m, radius=2, background=7))  # same: all foreground
    loss_bg = feature_distance_loss(feats, m, radius=2, background=1)  # now all A+bg
    _close(loss_bg, x)
    loss.backward()
    assert torch.isfinite(feats.grad).all()


def test_identical_features_no_nan():
    _, image, _, labels, valid = _inputs(4, 2, 3, 4, 6, 7, p_unlabeled=0.0)
    probs = torch.full((2, 3, 6, 7), 1 / 3, dtype=torch.float64, requires_grad=True)
    feats = torch.ones(2, 4, 6, 7, dtype=torch.float64, requires_grad=True)
    fd = feature_distance_loss(feats, labels, valid, radius=2)
    fr = feature_regularized_loss(feats, image, labels, valid, radius=2)
    dl = dfr_loss(probs, image, feats, valid, radius=2)
    (fd + fr + dl).backward()
    for t in (fd, fr, dl, feats.grad, probs.grad):
        assert torch.isfinite(t).all()
    assert fr.item() == 0.0
    assert feats.grad.abs().max().item() == 0.0  # subgradient of |x| at 0 is 0
    # A- pairs with D = 1 contribute -log(eps) each: Lfd = 2 * (-log eps) when such pairs exist.
    _close(fd, 2 * -math.log(LOG_EPS), rel=1e-12)


def test_all_invalid_batch_gives_zero():
    probs, image, feats, labels, _ = _inputs(6, 2, 3, 4, 5, 5)
    valid = torch.zeros(2, 5, 5, dtype=torch.bool)
    p, f = probs.clone().requires_grad_(), feats.clone().requires_grad_()
    losses = [dfr_loss(p, image, f, valid, radius=2),
              feature_distance_loss(f, labels, valid, radius=2),
              feature_regularized_loss(f, image, labels, valid, radius=2),
              feature_regularized_loss(f, image, labels, valid, radius=2, pairs="R")]
    for loss in losses:
        assert loss.item() == 0.0 and loss.requires_grad
    sum(losses).backward()
    assert p.grad.abs().sum().item() == 0.0 and f.grad.abs().sum().item() == 0.0


def test_radius_zero_and_one_pixel_give_zero():
    probs, image, feats, labels, _ = _inputs(6, 1, 3, 4, 1, 1)
    assert dfr_loss(probs, image, feats, radius=3).item() == 0.0
    probs, image, feats, labels, _ = _inputs(6, 1, 3, 4, 4, 4)
    assert dfr_loss(probs, image, feats, radius=0).item() == 0.0
    assert feature_distance_loss(feats, labels, radius=0).item() == 0.0


@pytest.mark.parametrize("call, name", [
    (lambda P, I, Fe, M, V: dfr_loss(P[:, :, :4], I, Fe), "image"),
    (lambda P, I, Fe, M, V: dfr_loss(P, I[:, :2], Fe), "image"),
    (lambda P, I, Fe, M, V: dfr_loss(P, I, Fe[:1]), "feats"),
    (lambda P, I, Fe, M, V: dfr_loss(P, I, Fe, V[:, :3]), "valid"),
    (lambda P, I, Fe, M, V: dfr_loss(P[0], I, Fe), "probs"),
    (lambda P, I, Fe, M, V: dfr_loss(P * 1.01, I, Fe), "probs"),
    (lambda P, I, Fe, M, V: dfr_loss(P.log(), I, Fe), "probs"),
    (lambda P, I, Fe, M, V: dfr_loss(P, I, Fe, radius=-1), "radius"),
    (lambda P, I, Fe, M, V: feature_distance_loss(Fe, M[:, :4]), "labels"),
    (lambda P, I, Fe, M, V: feature_distance_loss(Fe, M.double()), "labels"),
    (lambda P, I, Fe, M, V: feature_distance_loss(Fe, M, V[:1]), "valid"),
    (lambda P, I, Fe, M, V: feature_regularized_loss(Fe, I[..., :3], M), "image"),
    (lambda P, I, Fe, M, V: feature_regularized_loss(Fe, I, M, pairs="all"), "pairs"),
    (lambda P, I, Fe, M, V: partial_cross_entropy(P, M[:1]), "labels"),
    (lambda P, I, Fe, M, V: confident_labels(P[0]), "probs"),
])
def test_bad_input_raises_value_error_naming_argument(call, name):
    P, I, Fe, M, V = _inputs(8, 2, 3, 4, 5, 6)
    with pytest.raises(ValueError, match=f"`{name}`"):
        call(P, I, Fe, M, V)


def _all_losses(probs, image, feats, labels, valid, r=3):
    return [dfr_loss(probs, image, feats, valid, radius=r),
            feature_distance_loss(feats, labels, valid, radius=r),
            feature_regularized_loss(feats, image, labels, valid, radius=r)]


def test_float32_close_to_float64():
    p64, i64, f64, labels, valid = _inputs(10, 2, 5, 16, 20, 17, feat_scale=10.0)
    ref64 = _all_losses(p64, i64, f64, labels, valid)
    got32 = _all_losses(p64.float(), i64.float(), f64.float(), labels, valid)
    for a, b in zip(got32, ref64):
        assert a.dtype == torch.float32
        assert abs(a.item() - b.item()) <= 1e-5 * abs(b.item())


def test_autocast_bfloat16_runs_pairwise_sums_in_float32():
    p64, i64, f64, labels, valid = _inputs(12, 2, 5, 16, 20, 17, feat_scale=10.0)
    # bf16 inputs (as a bf16 network would give them): result in float32, equal to the float64
    # loss of the same (bf16-rounded) values to float32 accuracy.
    pb, ib, fb = (p64 / p64.sum(1, keepdim=True)).bfloat16(), i64.bfloat16(), f64.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _all_losses(pb, ib, fb, labels, valid)
        got32 = _all_losses(p64.float(), i64.float(), f64.float(), labels, valid)
    # (reference by the unfold implementation: bf16-rounded probs, upcast, no longer sum to 1
    # within the 1e-3 that dfr_loss checks for float64 inputs)
    p2, i2, f2 = pb.double(), ib.double(), fb.double()
    expected = [ref.unfold_dfr(p2, i2, f2, valid, radius=3),
                ref.unfold_fd(f2, labels, valid, radius=3),
                ref.unfold_fr(f2, i2, labels, valid, radius=3)]
    ref32 = _all_losses(p64, i64, f64, labels, valid)
    for a, b in zip(got + got32, expected + ref32):
        assert a.dtype == torch.float32
        assert abs(a.item() - b.item()) <= 1e-5 * abs(b.item())
    # Gradients reach bf16 leaves in their dtype.
    fb.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feature_distance_loss(fb, labels, valid, radius=3).backward()
    assert fb.grad.dtype == torch.bfloat16 and torch.isfinite(fb.grad.float()).all()
