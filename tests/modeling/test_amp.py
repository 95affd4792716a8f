"""Mixed precision (SOLVER.AMP.ENABLED / SOLVER.AMP.PRECISION) on CPU with bfloat16 autocast:
the Trainer's AMP step, one training step of a tiny model against float32, and the pairwise
losses in float32 with autocast off."""
import math

import pytest
import torch
from helpers import INSTANT, register_tiny, setup_cfg

from dfr.modeling import losses as L

# Tolerance of a bf16-autocast loss against float32, relative, per loss term.
# bf16 keeps 8 significant bits: unit roundoff u = 2^-9 ~ 1.95e-3. Every autocast matmul/conv
# rounds its inputs and output to bf16, so each layer adds a few u of relative error to the
# activations; the losses are means over thousands of pixels, where those errors mostly cancel.
# Measured on this model: pCE / aux / Ldfr within 1.1e-4, Lfr 6.5e-4, Lfd 3.4e-3 (Lfd reads
# ‖Fi − Fj‖₁ of nearby, nearly equal features, so the subtraction magnifies the rounding).
# RTOL = 10 u leaves a 5x margin over the worst term and is still two orders of magnitude
# below what any loss switch changes (test_meta_arch).
BF16_U = 2.0 ** -9
RTOL = 10 * BF16_U


def _tiny_model(seed=0):
    from detectron2.modeling import build_model

    from dfr.config import get_dfr_cfg

    # γ = 0.01 < 1/C: M labels every pixel, so Lfd and Lfr have pairs; no dropout
    cfg = get_dfr_cfg(INSTANT, ["MODEL.DFR.GAMMA", 0.01, "MODEL.SEM_SEG_HEAD.NORM", "BN"])
    torch.manual_seed(seed)
    return build_model(cfg).train()


def _batch(sizes=((64, 64), (64, 64)), seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for h, w in sizes:
        img = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        lab = torch.full((h, w), 255, dtype=torch.long)
        lab[4:8, 4 : w - 4] = 0
        lab[20:24, 8 : w - 8] = 1
        lab[h - 12 : h - 8, 10:30] = 2
        out.append({"image": img, "sem_seg": lab, "height": h, "width": w})
    return out


def test_precision_key_and_its_errors():
    from dfr.config import get_dfr_cfg
    from dfr.engine.amp import amp_dtype

    cfg = get_dfr_cfg()
    assert cfg.SOLVER.AMP.ENABLED is False and cfg.SOLVER.AMP.PRECISION == "float16"
    assert amp_dtype("bfloat16") is torch.bfloat16 and amp_dtype("float16") is torch.float16
    with pytest.raises(ValueError, match="SOLVER.AMP.PRECISION must be one of"):
        amp_dtype("fp8")


def test_bf16_training_step_matches_fp32_with_finite_gradients():
    model = _tiny_model()
    batch = _batch()
    params = [p for p in model.parameters() if p.requires_grad]
    ref = model(batch)
    g_ref = torch.autograd.grad(sum(ref.values()), params, allow_unused=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = model(batch)
        total = sum(got.values())
    g_got = torch.autograd.grad(total, params, allow_unused=True)

    assert set(got) == {"loss_pce", "loss_aux", "loss_dfr", "loss_fd", "loss_fr"}
    for k, v in got.items():
        assert v.dtype == torch.float32, k
        assert float(ref[k].detach()) > 0, k
        assert float(v.detach()) == pytest.approx(float(ref[k].detach()), rel=RTOL), k
    pairs = [(a, b) for a, b in zip(g_ref, g_got) if a is not None]
    assert len(pairs) == sum(b is not None for b in g_got) > 0
    assert all(torch.isfinite(b).all() for _, b in pairs)
    # the whole gradient points the same way (single parameters whose fp32 gradient is ~0,
    # e.g. a bias in front of a norm, may differ in direction)
    a = torch.cat([a.flatten() for a, _ in pairs])
    b = torch.cat([b.float().flatten() for _, b in pairs])
    assert float(torch.nn.functional.cosine_similarity(a, b, 0)) > 0.99


def test_trainer_uses_the_amp_step_on_cpu(tmp_path):
    from dfr.engine import Trainer
    from dfr.engine.amp import DFRAMPTrainer
    from helpers import metrics_rows

    prefix = register_tiny(tmp_path / "ds")
    cfg = setup_cfg(tmp_path / "run", prefix, "SOLVER.MAX_ITER", 2, "SOLVER.AMP.ENABLED", True,
                    "SOLVER.AMP.PRECISION", "bfloat16", "MODEL.DFR.GAMMA", 0.01)
    trainer = Trainer(cfg)
    assert isinstance(trainer._trainer, DFRAMPTrainer)
    assert trainer._trainer.precision is torch.bfloat16
    assert not trainer._trainer.grad_scaler.is_enabled()  # bf16 trains unscaled
    seen = []
    trainer.model.register_forward_hook(
        lambda m, i, o: seen.append(torch.is_autocast_enabled("cpu")) if m.training else None)
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert seen == [True, True]
    rows = metrics_rows(tmp_path / "run")
    last = rows[max(it for it, r in rows.items() if "total_loss" in r)]
    for k in ("loss_pce", "loss_dfr", "loss_fd", "loss_fr", "total_loss"):
        assert math.isfinite(last[k]) and last[k] > 0, k
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    assert all(torch.isfinite(p).all() for p in params)


def _loss_inputs(seed=0, b=2, c=5, d=8, h=16, w=20):
    g = torch.Generator().manual_seed(seed)
    probs = torch.randn(b, c, h, w, generator=g).softmax(1)  # the softmax stays float32
    image = torch.randn(b, 3, h, w, generator=g).bfloat16()
    feats = (10 * torch.rand(b, d, h, w, generator=g)).bfloat16()
    labels = torch.randint(0, c, (b, h, w), generator=g)
    labels[:, ::3] = 255
    valid = torch.ones(b, h, w, dtype=torch.bool)
    valid[1, :, -4:] = False
    return probs, image, feats, labels, valid


_CALLS = {
    "dfr_loss": lambda p, i, f, y, v: L.dfr_loss(p, i, f, v, radius=3),
    "feature_distance_loss": lambda p, i, f, y, v: L.feature_distance_loss(f, y, v, radius=3),
    "feature_regularized_loss":
        lambda p, i, f, y, v: L.feature_regularized_loss(f, i, y, v, radius=3),
    "pairwise_losses": lambda p, i, f, y, v: L.pairwise_losses(p, i, f, y, v, radius=3),
}


@pytest.mark.parametrize("name", sorted(_CALLS))
def test_pairwise_losses_under_bf16_autocast_are_exactly_float32(name):
    """bf16 inputs under autocast: float32 results equal to the float32 call on the same
    (upcast) values, bit for bit; gradients reach the bf16 leaves as the float32 gradient
    rounded to bf16."""
    call = _CALLS[name]
    probs, image, feats, labels, valid = _loss_inputs()
    p32, f32 = probs.clone().requires_grad_(), feats.float().requires_grad_()
    ref = call(p32, image.float(), f32, labels, valid)
    pb, fb = probs.clone().requires_grad_(), feats.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = call(pb, image, fb, labels, valid)
    ref = ref if isinstance(ref, dict) else {name: ref}
    got = got if isinstance(got, dict) else {name: got}
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].dtype == torch.float32, k
        assert torch.equal(got[k], ref[k]), (k, got[k].item(), ref[k].item())
    sum(ref.values()).backward()
    sum(got.values()).backward()
    if name in ("dfr_loss", "pairwise_losses"):
        assert torch.equal(pb.grad, p32.grad)
    if name != "dfr_loss":
        assert fb.grad.dtype == torch.bfloat16
        assert torch.equal(fb.grad, f32.grad.bfloat16())


def test_pairwise_sums_run_with_autocast_off(monkeypatch):
    from dfr.modeling.losses import fused

    seen = []
    loop = fused.window_pass

    def spy(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        return loop(*args, **kwargs)

    monkeypatch.setattr(fused, "window_pass", spy)
    probs, image, feats, labels, valid = _loss_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for call in _CALLS.values():
            call(probs, image, feats.requires_grad_(), labels, valid)
    assert seen == [False] * len(_CALLS)


# every step skipped: the optimizer never steps, the LR scheduler does (torch warns about that)
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`:UserWarning")
def test_fp16_steps_skipped_for_overflow_are_counted_warned_and_stop_the_run(tmp_path):
    """A loss that overflows float16 gradients every step (λ1 = 1e30): the GradScaler used to
    skip all 20 steps silently (exit 0, the weights still the initial ones). Now the skips
    are counted (metrics.json), warned about after 5 in a row naming the loss terms, and
    SOLVER.AMP.MAX_CONSECUTIVE_SKIPS of them stop the run before anything trains."""
    from helpers import logged

    from dfr.engine import Trainer

    prefix = register_tiny(tmp_path / "ds")
    cfg = setup_cfg(tmp_path / "run", prefix, "SOLVER.MAX_ITER", 20, "SOLVER.AMP.ENABLED", True,
                    "SOLVER.AMP.PRECISION", "float16", "MODEL.DFR.LAMBDA_DFR", 1e30,
                    "SOLVER.AMP.MAX_CONSECUTIVE_SKIPS", 6, "SOLVER.CHECKPOINT_PERIOD", 100)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    initial = [p.detach().clone() for p in trainer.model.parameters()]
    with logged("dfr.engine.amp") as log, pytest.raises(FloatingPointError) as e:
        trainer.train()
    msg = str(e.value)
    for s in ("6 consecutive float16 training steps skipped by the GradScaler",
              "Loss terms of iteration 5: loss_dfr = ", "SOLVER.AMP.MAX_CONSECUTIVE_SKIPS = 6",
              "MODEL.DFR.LAMBDA_DFR", "SOLVER.AMP.PRECISION bfloat16"):  # fmt: skip
        assert s in msg, (s, msg)
    terms = msg.split("Loss terms of iteration 5: ")[1]
    assert terms.index("loss_dfr") < terms.index("loss_pce")  # the largest term first
    assert float(terms.split("loss_dfr = ")[1].split(",")[0]) > 1e25
    assert trainer.iter == 5 and trainer._trainer.skipped_steps == 6
    warned = [m for m in log.messages if "consecutive float16 training steps skipped" in m]
    assert len(warned) == 1 and warned[0].startswith("5 consecutive") and "loss_dfr" in warned[0]
    assert all(torch.equal(a, b) for a, b in zip(initial, trainer.model.parameters()))


def test_fp16_training_counts_skipped_steps_in_metrics(tmp_path):
    """The ordinary case: the scale calibrates (a few skips at most), training goes on and
    metrics.json has amp/skipped_steps."""
    from helpers import metrics_rows

    from dfr.engine import Trainer

    prefix = register_tiny(tmp_path / "ds")
    cfg = setup_cfg(tmp_path / "run", prefix, "SOLVER.MAX_ITER", 3, "SOLVER.AMP.ENABLED", True,
                    "SOLVER.AMP.PRECISION", "float16", "MODEL.DFR.GAMMA", 0.01)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    rows = metrics_rows(tmp_path / "run")
    counts = [r["amp/skipped_steps"] for r in rows.values() if "amp/skipped_steps" in r]
    assert counts and counts[-1] == trainer._trainer.skipped_steps < 3
