"""DFRSegmentor on CPU with a small Swin: loss dict, gradient routing (Eq. 1, Sect. 3.2-3.3),
switches of Tables 4/5/7, padding/valid handling, inference at the original size."""
import pytest
import torch
from helpers import CONFIGS

CPU_YAML = CONFIGS / "synthetic" / "dfr_swin_tiny_synthetic_cpu.yaml"
ALL_LOSSES = {"loss_pce", "loss_aux", "loss_dfr", "loss_fd", "loss_fr"}


def _model(*opts, seed=0):
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    from dfr import add_dfr_config

    cfg = get_cfg()
    add_dfr_config(cfg)
    cfg.merge_from_file(str(CPU_YAML))
    # deterministic comparisons: no dropout / drop path; γ = 0 so M labels every pixel
    cfg.merge_from_list(["MODEL.SWIN.DROP_PATH_RATE", 0.0, "MODEL.SEM_SEG_HEAD.DROPOUT", 0.0,
                         "MODEL.DFR.GAMMA", 0.0, "MODEL.SWIN.EMBED_DIM", 16,
                         "MODEL.SWIN.NUM_HEADS", [1, 2, 2, 4], *opts])
    torch.manual_seed(seed)
    return build_model(cfg).train()


def _batch(sizes=((64, 64), (48, 80)), seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for h, w in sizes:
        img = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        lab = torch.full((h, w), 255, dtype=torch.long)
        lab[4:8, 4 : w - 4] = 0  # 4-px scribbles of 3 classes
        lab[20:24, 8 : w - 8] = 1
        lab[h - 12 : h - 8, 10:30] = 2
        out.append({"image": img, "sem_seg": lab, "height": h, "width": w})
    return out


@pytest.fixture(scope="module")
def trained_step():
    model = _model()
    losses = model(_batch())
    return model, losses


def test_train_step_returns_every_loss_finite(trained_step):
    model, losses = trained_step
    assert set(losses) == ALL_LOSSES
    for k, v in losses.items():
        assert v.dim() == 0 and torch.isfinite(v), k
    assert float(losses["loss_pce"].detach()) == pytest.approx(torch.log(torch.tensor(4.0)).item(), abs=0.3)
    assert float(losses["loss_fd"].detach()) > 0 and float(losses["loss_fr"].detach()) > 0  # γ = 0: M everywhere


def test_gradients_reach_backbone_and_every_head(trained_step):
    model, losses = trained_step
    params = {
        "backbone": model.backbone.swin.patch_embed.proj.weight,
        "fusion": model.fusion.ppm_bottleneck.weight,
        "semantic head": model.sem_seg_head.predictor.weight,
        "feature head": model.feat_head.proj.weight,
        "aux head": model.aux_head.predictor.weight,
    }
    grads = torch.autograd.grad(sum(losses.values()), list(params.values()), retain_graph=True)
    for name, g in zip(params, grads):
        assert float(g.abs().sum()) > 0, name


def test_loss_dfr_does_not_train_the_feature_head_nor_lfd_lfr_the_semantic_head(trained_step):
    model, losses = trained_step
    feat = list(model.feat_head.parameters())
    sem = list(model.sem_seg_head.parameters())
    g = torch.autograd.grad(losses["loss_dfr"], feat + sem, retain_graph=True, allow_unused=True)
    assert all(x is None or float(x.abs().sum()) == 0 for x in g[: len(feat)])
    assert float(g[len(feat)].abs().sum()) > 0  # ... but it does train the semantic head
    g = torch.autograd.grad(losses["loss_fd"] + losses["loss_fr"], sem + feat, retain_graph=True,
                            allow_unused=True)
    assert all(x is None or float(x.abs().sum()) == 0 for x in g[: len(sem)])
    assert float(g[len(sem)].abs().sum()) > 0  # ... but they train the feature head


def _losses_with(ref_model, *opts):
    model = _model(*opts)
    missing, _ = model.load_state_dict(ref_model.state_dict(), strict=False), None
    assert missing.missing_keys == []
    return {k: float(v.detach()) for k, v in model(_batch()).items()}, model


def test_switches_remove_losses_and_change_values(trained_step):
    model, ref = trained_step
    ref = {k: float(v.detach()) for k, v in ref.items()}
    off, _ = _losses_with(model, "MODEL.DFR.USE_FD", False, "MODEL.AUX_HEAD.ENABLED", False)
    assert set(off) == ALL_LOSSES - {"loss_fd", "loss_aux"}
    assert off["loss_pce"] == pytest.approx(ref["loss_pce"], rel=1e-5)
    assert off["loss_fr"] == pytest.approx(ref["loss_fr"], rel=1e-5)
    off, _ = _losses_with(model, "MODEL.DFR.USE_PCE", False, "MODEL.DFR.USE_DFR", False)
    assert set(off) == {"loss_aux", "loss_fd", "loss_fr"}
    # Table 4 row 2: the feature head only feeds the kernel, nothing trains it
    off, m = _losses_with(model, "MODEL.DFR.USE_FD", False, "MODEL.DFR.USE_FR", False)
    assert set(off) == {"loss_pce", "loss_aux", "loss_dfr"}
    assert not any(p.requires_grad for p in m.feat_head.parameters())
    assert off["loss_dfr"] == pytest.approx(ref["loss_dfr"], rel=1e-5)
    # Table 5: kernel terms
    for key in ("KERNEL_RGB", "KERNEL_XY"):
        off, _ = _losses_with(model, f"MODEL.DFR.{key}", False)
        assert off["loss_dfr"] != pytest.approx(ref["loss_dfr"], rel=1e-3), key
        assert off["loss_pce"] == pytest.approx(ref["loss_pce"], rel=1e-5)
    off, m = _losses_with(model, "MODEL.DFR.KERNEL_FEAT", False, "MODEL.DFR.USE_FD", False,
                          "MODEL.DFR.USE_FR", False)
    assert m.feat_head is None and set(off) == {"loss_pce", "loss_aux", "loss_dfr"}
    assert off["loss_dfr"] != pytest.approx(ref["loss_dfr"], rel=1e-3)
    # Table 7 (supervision of the feature head) and the Lfr pair set
    for opt, val in (("FEAT_SUPERVISION", "scribble"), ("FEAT_SUPERVISION", "both")):
        off, _ = _losses_with(model, f"MODEL.DFR.{opt}", val)
        assert off["loss_fd"] != pytest.approx(ref["loss_fd"], rel=1e-3), val
    off, _ = _losses_with(model, "MODEL.DFR.FR_PAIRS", "R", "MODEL.DFR.GAMMA", 0.99)
    ra, _ = _losses_with(model, "MODEL.DFR.GAMMA", 0.99)
    assert off["loss_fr"] > ra["loss_fr"]  # R ⊇ RA (few confident pixels at init)
    # λ weights scale the entries
    off, _ = _losses_with(model, "MODEL.DFR.LAMBDA_DFR", 0.02)
    assert off["loss_dfr"] == pytest.approx(2 * ref["loss_dfr"], rel=1e-4)


def test_feature_targets_both_uses_scribbles_where_present():
    model = _model("MODEL.DFR.FEAT_SUPERVISION", "both", "MODEL.DFR.GAMMA", 0.5)
    probs = torch.tensor([0.9, 0.05, 0.03, 0.02]).view(1, 4, 1, 1).expand(1, 4, 2, 2).clone()
    probs[0, :, 1, 1] = torch.tensor([0.3, 0.3, 0.2, 0.2])  # not confident -> 255
    scr = torch.tensor([[[255, 2], [255, 255]]])
    valid = torch.tensor([[[True, True], [True, True]]])
    crit = model.criterion
    from dfr.modeling.losses import confident_labels

    m = confident_labels(probs, crit.gamma)
    assert crit.feature_targets(m, scr, valid).tolist() == [[[0, 2], [0, 255]]]
    crit.feat_supervision = "scribble"
    assert crit.feature_targets(m, scr, valid).tolist() == [[[255, 2], [255, 255]]]
    crit.feat_supervision = "M"
    assert crit.feature_targets(m, scr, valid).tolist() == [[[0, 0], [0, 255]]]
    assert crit.feature_targets(m, scr, ~valid).tolist() == [[[255, 255], [255, 255]]]


def test_invalid_pixels_are_ignored():
    model = _model("MODEL.AUX_HEAD.ENABLED", False)
    batch = _batch(sizes=((64, 64), (64, 64)))  # BatchNorm after the 1x1 PPM pool needs B > 1
    for x in batch:
        x["valid"] = torch.zeros(64, 64, dtype=torch.bool)
        x["valid"][32:, :] = True
        x["sem_seg"][40:, :] = 255  # scribbles remain only in the invalid (padding) half
    losses = model(batch)
    assert float(losses["loss_pce"].detach()) == 0.0
    # the pairwise terms see valid pixels only: with none valid, every loss is exactly 0
    for x in batch:
        x["valid"][:] = False
    assert {k: float(v.detach()) for k, v in model(batch).items()} == {k: 0.0 for k in losses}
    for x in batch:
        del x["valid"]  # missing key = all valid
    assert float(model(batch)["loss_pce"].detach()) > 0.0


def test_inference_odd_size_returns_probabilities_at_original_size():
    model = _model().eval()
    calls = []
    model.feat_head.register_forward_hook(lambda *a: calls.append(1))
    img = torch.randint(0, 256, (3, 333, 517), dtype=torch.uint8)
    with torch.no_grad():
        out = model([{"image": img, "height": 333, "width": 517},
                     {"image": img[:, :100, :120], "height": 200, "width": 240}])
    assert tuple(out[0]["sem_seg"].shape) == (4, 333, 517)
    assert tuple(out[1]["sem_seg"].shape) == (4, 200, 240)
    assert torch.allclose(out[0]["sem_seg"].sum(0), torch.ones(333, 517), atol=1e-5)
    assert calls == []  # the feature head is skipped at inference
    with torch.no_grad():
        logits = model.predict_logits(img[None, :, :70, :90])
        single = model([{"image": img[:, :70, :90], "height": 70, "width": 90}])[0]["sem_seg"]
    assert tuple(logits.shape) == (1, 4, 70, 90)
    assert torch.allclose(logits.softmax(1)[0], single, atol=1e-6)


def test_training_batch_is_padded_to_the_crop_after_normalising():
    """mmseg: Normalize, then Pad(size=crop_size, pad_val=0, seg_pad_val=255). The backbone
    sees 0 (the mean colour, not black) on the padding, the crop size (128, from the CPU
    config) even when every image is smaller, and the losses see 255 / valid False there."""
    model = _model("MODEL.AUX_HEAD.ENABLED", False)
    seen = {}
    model.backbone.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    model.criterion.register_forward_pre_hook(
        lambda m, args: seen.update(labels=args[2], valid=args[3]))
    batch = _batch(sizes=((64, 64), (48, 80)))
    model(batch)
    x = seen["x"]
    assert tuple(x.shape) == (2, 3, 128, 128)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    assert torch.allclose(x[1, :, :48, :80], (batch[1]["image"].float() - mean) / std)
    assert (x[1, :, 48:, :] == 0).all() and (x[1, :, :, 80:] == 0).all()
    assert seen["valid"][1].sum() == 48 * 80 and not seen["valid"][0, 64:].any()
    assert (seen["labels"][0, :, 64:] == 255).all()


def test_solver_compile_compiles_the_training_step_and_keeps_checkpoint_keys():
    """SOLVER.COMPILE: the trainer's model runs its training tensors (network + criterion)
    through torch.compile; the modules are not wrapped, so checkpoints keep their keys. (The
    compiled criterion's values are tested in test_compile.py.)"""
    from detectron2.config import get_cfg

    from dfr import add_dfr_config
    from dfr.engine.trainer import Trainer

    def build(mode):
        cfg = get_cfg()
        add_dfr_config(cfg)
        cfg.merge_from_file(str(CPU_YAML))
        cfg.merge_from_list(["MODEL.SWIN.EMBED_DIM", 16, "MODEL.SWIN.NUM_HEADS", [1, 2, 2, 4],
                             "SOLVER.COMPILE", mode])
        return Trainer.build_model(cfg)

    eager, compiled = build(""), build("default")
    assert "_train_losses" not in vars(eager)
    assert getattr(compiled._train_losses, "_torchdynamo_orig_callable", None) is not None
    assert (eager.criterion.impl, compiled.criterion.impl) == ("auto", "torch")  # CPU: resolved
    assert list(compiled.state_dict()) == list(eager.state_dict())
    with pytest.raises(ValueError, match="SOLVER.COMPILE.*'fast'"):
        build("fast")
