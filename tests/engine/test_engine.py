"""dfr.engine: optimizer groups, WarmupPolyLR, gradient clipping, the NaN guard in a real
training run, evaluator choice, SEED reproducibility."""
import math

import pytest
import torch
from detectron2.config import get_cfg
from helpers import register_tiny, setup_cfg
from torch import nn


def _cfg(**solver):
    from dfr import add_dfr_config

    cfg = get_cfg()
    add_dfr_config(cfg)
    cfg.SOLVER.BASE_LR = 1e-3
    cfg.SOLVER.WEIGHT_DECAY = 0.01
    cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
    for k, v in solver.items():
        setattr(cfg.SOLVER, k, v)
    return cfg


class ToyAttn(nn.Module):
    def __init__(self):
        super().__init__()
        self.relative_position_bias_table = nn.Parameter(torch.zeros(9, 2))
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.bn = nn.BatchNorm2d(4)


def _decay_of(opt):
    out = {}
    for g in opt.param_groups:
        for p in g["params"]:
            out[id(p)] = g["weight_decay"]
    return out


def test_adamw_groups_are_mmseg_swin_paramwise_cfg():
    """mmseg's custom_keys (norm, relative_position_bias_table, absolute_pos_embed -> decay 0)
    reach LayerNorms and position tables only; biases and BatchNorm keep weight decay."""
    from dfr.engine import build_optimizer

    m = ToyAttn()
    opt = build_optimizer(_cfg(), m)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.999)
    wd = _decay_of(opt)
    for p in (m.proj.weight, m.proj.bias, m.bn.weight, m.bn.bias):
        assert wd[id(p)] == pytest.approx(0.01)
    for p in (m.norm.weight, m.norm.bias, m.relative_position_bias_table):
        assert wd[id(p)] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == 7
    assert all(g["lr"] == pytest.approx(1e-3) for g in opt.param_groups)


def test_dfr_model_groups_name_by_name():
    """On the real model: every backbone LayerNorm / relative-position table has decay 0,
    every other trainable parameter (heads' BN and biases included) 0.01; frozen ones absent."""
    from dfr.config import get_dfr_cfg
    from dfr.engine import Trainer, build_optimizer
    from helpers import INSTANT

    cfg = get_dfr_cfg(INSTANT, ["MODEL.SEM_SEG_HEAD.NORM", "BN", "SOLVER.WEIGHT_DECAY", "0.01",
                                "MODEL.DFR.USE_FD", "False", "MODEL.DFR.USE_FR", "False"])
    model = Trainer.build_model(cfg)
    wd = _decay_of(build_optimizer(cfg, model))
    zero = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert name.startswith("feat_head.") and id(p) not in wd  # frozen (Table 4 row 2)
            continue
        if wd[id(p)] == 0.0:
            zero.append(name)
        else:
            assert wd[id(p)] == pytest.approx(0.01), name
    expected_zero = [n for n, _ in model.named_parameters() if n.startswith("backbone.") and (
        "relative_position_bias_table" in n or ".norm" in n or "out_norms" in n)]
    assert sorted(zero) == sorted(expected_zero)
    assert any(n.startswith("fusion.") and n.endswith("norm.weight") for n, p in
               model.named_parameters() if wd.get(id(p)) == pytest.approx(0.01))


def test_sgd_option_and_gradient_clipping():
    from dfr.engine import build_optimizer

    cfg = _cfg(OPTIMIZER="SGD")
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    m = nn.Linear(3, 3)
    opt = build_optimizer(cfg, m)
    assert isinstance(opt, torch.optim.SGD) and type(opt).__name__ == "SGDWithGradientClip"
    (m.weight.sum() * 100).backward()
    opt.step()
    assert m.weight.grad.norm().item() == pytest.approx(0.5, rel=1e-4)
    with pytest.raises(ValueError, match="ADAMW"):
        build_optimizer(_cfg(OPTIMIZER="LAMB"), m)


def test_warmup_poly_lr_values():
    from dfr.engine import build_lr_scheduler, build_optimizer

    cfg = _cfg(LR_SCHEDULER_NAME="WarmupPolyLR", MAX_ITER=100, WARMUP_ITERS=10,
               WARMUP_FACTOR=1e-6, WARMUP_METHOD="linear", POLY_LR_POWER=1.0)  # fmt: skip
    opt = build_optimizer(cfg, nn.Linear(2, 2))
    sched = build_lr_scheduler(cfg, opt)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-9)  # base · warmup factor
    # mmcv's linear warmup multiplies poly(t) (not poly(W)): 0.95 · (r + (1 − r) · 5/10)
    assert lrs[5] == pytest.approx(1e-3 * 0.95 * (1e-6 + (1 - 1e-6) * 0.5), rel=1e-6)
    assert lrs[10] == pytest.approx(0.9e-3)  # poly from here: (1 - t/T)^1
    assert lrs[55] == pytest.approx(0.45e-3)
    assert lrs[99] == pytest.approx(0.01e-3)

    cfg.SOLVER.POLY_LR_POWER = 0.9
    cfg.SOLVER.POLY_LR_CONSTANT_ENDING = 0.2
    opt = build_optimizer(cfg, nn.Linear(2, 2))
    sched = build_lr_scheduler(cfg, opt)
    for _ in range(60):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.4**0.9)
    for _ in range(39):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2e-3)  # floored


def test_other_schedulers_defer_to_detectron2():
    from detectron2.solver import LRMultiplier

    from dfr.engine import build_lr_scheduler, build_optimizer

    cfg = _cfg(LR_SCHEDULER_NAME="WarmupCosineLR", MAX_ITER=10, WARMUP_ITERS=0)
    opt = build_optimizer(cfg, nn.Linear(2, 2))
    sched = build_lr_scheduler(cfg, opt)
    assert isinstance(sched, LRMultiplier)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # half a cosine from BASE_LR (1e-3) to 0 over MAX_ITER, not our poly schedule
    assert lrs == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * t / 10)) for t in range(10)])


def test_check_losses_finite_message():
    from dfr.engine import check_losses_finite

    batch = [{"file_name": "/d/a.png"}, {"file_name": "/d/b.png"}]
    check_losses_finite({"loss_pce": torch.tensor(1.0)}, batch, iteration=0)  # no error
    with pytest.raises(FloatingPointError) as e:
        check_losses_finite(
            {"loss_pce": torch.tensor(1.0), "loss_fr": torch.tensor(math.inf)}, batch, 12
        )
    msg = str(e.value)
    assert "iteration 12" in msg and "loss_fr=inf" in msg and "loss_pce" not in msg.split(" (")[0]
    assert "/d/a.png" in msg and "/d/b.png" in msg


def test_nan_guard_stops_training_before_the_step_with_iteration_loss_and_files(tmp_path):
    from dfr.engine import Trainer

    prefix = register_tiny(tmp_path / "ds")
    cfg = setup_cfg(tmp_path / "run", prefix, "SOLVER.MAX_ITER", 5)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    seen = {}

    def inject(module, inputs, output):  # runs before the guard (prepend=True)
        it = trainer.iter
        if module.training and it == 2:
            seen["files"] = [d["file_name"] for d in inputs[0]]
            seen["weights"] = {k: v.clone() for k, v in module.state_dict().items()}
            output["loss_dfr"] = output["loss_dfr"] * float("nan")
        return output

    trainer.model.register_forward_hook(inject, prepend=True)
    with pytest.raises(FloatingPointError) as e:
        trainer.train()
    msg = str(e.value)
    assert "iteration 2" in msg and "loss_dfr=nan" in msg
    assert len(seen["files"]) == 2 and all(f in msg for f in seen["files"])
    # no optimizer step with the NaN loss: weights unchanged and finite
    after = trainer.model.state_dict()
    for k, v in seen["weights"].items():
        assert torch.equal(after[k], v), k
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())


def test_evaluator_follows_the_metadata_evaluator_type(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.evaluation import SemSegEvaluator

    from dfr.engine import Trainer
    from dfr.evaluation import VOCSubmissionExporter

    prefix = register_tiny(tmp_path / "ds")
    cfg = setup_cfg(tmp_path / "run", prefix)
    ev = Trainer.build_evaluator(cfg, f"{prefix}_scribble_val")
    assert isinstance(ev, SemSegEvaluator)
    name = f"{prefix}_nogt"
    loads = []
    DatasetCatalog.register(name, lambda: loads.append(1) or [{"file_name": "x.jpg"}])
    MetadataCatalog.get(name).set(stuff_classes=["a", "b"], ignore_label=255,
                                  evaluator_type="voc_submission")  # fmt: skip
    ev = Trainer.build_evaluator(cfg, name)
    assert isinstance(ev, VOCSubmissionExporter)
    layout = "/results/VOC2012/Segmentation/comp6_test_cls"
    assert ev.result_dir.endswith("inference/" + name + layout)
    assert loads == []  # chosen from the metadata, without loading the dataset
    assert MetadataCatalog.get("voc_2012_test").evaluator_type == "voc_submission"
    MetadataCatalog.get(f"{name}2").set(evaluator_type="coco")
    with pytest.raises(ValueError, match=f"{name}2.*evaluator_type 'coco'"):
        Trainer.build_evaluator(cfg, f"{name}2")


def _first_losses(tmp_path, name, prefix, seed):
    from dfr.engine import Trainer

    cfg = setup_cfg(tmp_path / name, prefix, "SOLVER.MAX_ITER", 2, "SEED", seed,
                    "INPUT.DFR.FLIP_PROB", 0.5, "INPUT.DFR.RATIO_RANGE", "[0.8, 1.5]")  # fmt: skip
    trainer = Trainer(cfg)
    losses = []
    trainer.model.register_forward_hook(
        lambda m, i, o: losses.append({k: float(v.detach()) for k, v in o.items()}) if m.training else None
    )
    trainer.resume_or_load(resume=False)
    trainer.train()
    return losses


def test_seed_makes_a_cpu_run_reproducible(tmp_path):
    prefix = register_tiny(tmp_path / "ds")
    a = _first_losses(tmp_path, "a", prefix, 7)
    b = _first_losses(tmp_path, "b", prefix, 7)
    c = _first_losses(tmp_path, "c", prefix, 8)
    assert len(a) == 2 and a == b
    assert a[0]["loss_pce"] != c[0]["loss_pce"]


def test_trainer_test_is_detectron2s_and_gives_semsegtta_original_size_images(tmp_path,
                                                                            monkeypatch):
    """Trainer.test runs DefaultTrainer.test through the builders; a SemSegTTA model (which
    resizes each view itself) gets a loader with INPUT.DFR.TEST_RESIZE off, the plain model
    the config's; the caller's config is left as it was. With evaluators that read labels (the
    project's), the plain model runs in SemSegTTA(output="labels") too (memory-bounded
    labels); an evaluator that reads the scores gets the plain model's "sem_seg"."""
    from detectron2.engine import DefaultTrainer
    from detectron2.evaluation import DatasetEvaluator

    from dfr.engine import Trainer
    from dfr.evaluation import SemSegTTA

    prefix = register_tiny(tmp_path / "ds")
    cfg = setup_cfg(tmp_path / "run", prefix, "INPUT.DFR.TEST_RESIZE", True,
                    "INPUT.DFR.RESIZE_SCALE", "[64, 32]")  # fmt: skip
    seen, calls = [], []
    loader = Trainer.build_test_loader.__func__
    d2_test = DefaultTrainer.test.__func__

    def spy_loader(cls, cfg, name):
        seen.append(cfg.INPUT.DFR.TEST_RESIZE)
        return loader(cls, cfg, name)

    def spy_test(cls, cfg, model, evaluators=None):
        calls.append(type(model).__name__)
        return d2_test(cls, cfg, model, evaluators)

    monkeypatch.setattr(Trainer, "build_test_loader", classmethod(spy_loader))
    monkeypatch.setattr(DefaultTrainer, "test", classmethod(spy_test))
    class Scores(DatasetEvaluator):  # reads what a Detectron2 evaluator reads
        keys = []

        def process(self, inputs, outputs):
            self.keys += [(k, tuple(v.shape)) for o in outputs for k, v in o.items()]

        def evaluate(self):
            return {}

    model = Trainer.build_model(cfg).eval()
    res = Trainer.test(cfg, model)
    Trainer.test(cfg, SemSegTTA(cfg, model, tta=False))
    scores = Scores()
    Trainer.test(cfg, model, [scores])
    assert seen == [False, False, True] and calls == ["SemSegTTA", "SemSegTTA", "DFRSegmentor"]
    assert cfg.INPUT.DFR.TEST_RESIZE and "mIoU" in res["sem_seg"]
    assert scores.keys and all(k == "sem_seg" and len(shape) == 3 for k, shape in scores.keys)
