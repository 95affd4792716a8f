"""Parity with mmsegmentation 1.2.2 itself, without mmsegmentation installed.

tests/fixtures/mmseg_parity/ was written by `tools/check_mmseg_parity.py --write-fixture`
(stage 1 in a separate venv with mmsegmentation): a tiny Swin-UperNet built from mmseg's own
classes with seeded random weights, saved as mmseg saves checkpoints, and mmseg's outputs for
it. Here the checkpoint goes through MODEL.WEIGHTS (DFRCheckpointer) into our model, and every
output is compared: backbone levels, decode-head and aux logits, logits at input size (also
through `model(batched_inputs)`), at 224x224, 200x264 and 375x500; the test-time keep-ratio
resize to (2048, 512); the optimizer's lr / weight decay per parameter; the LR schedule; the
parameters FROZEN_STAGES freezes. Regenerate with the tool after changing the fixture's
definition (docs/PARITY.md).
"""
import json
import math

import numpy as np
import pytest
import torch
from helpers import REPO, load_script

FIXTURE = REPO / "tests" / "fixtures" / "mmseg_parity"
TOL = 1e-4


tool = load_script("tools/check_mmseg_parity.py")
KEYS = [f"{h}x{w}" for h, w in tool.SIZES]


@pytest.fixture(scope="module")
def ref():
    return torch.load(FIXTURE / "mmseg_reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def info():
    return json.loads((FIXTURE / "mmseg_reference.json").read_text())


@pytest.fixture(scope="module")
def loaded():
    cfg, model = tool.build_our_model(str(FIXTURE / "mmseg_checkpoint.pth"))
    return cfg, model


@pytest.fixture(scope="module")
def outputs(loaded, ref):
    _, model = loaded
    out = {}
    for size in tool.SIZES:
        key = f"{size[0]}x{size[1]}"
        img = tool.image(size)
        assert int(img.astype(np.int64).sum()) == ref["outputs"][key]["input_sum"]
        out[key] = tool.our_outputs(model, img)
    return out


def _maxdiff(a, b):
    assert tuple(a.shape) == tuple(b.shape), (tuple(a.shape), tuple(b.shape))
    return float((a.float() - b.float()).abs().max())


def test_checkpoint_fills_every_tensor_but_the_feature_head(loaded):
    """All mmseg tensors map one to one; only the feature-consistency head (not in mmseg)
    keeps its init. Values: as in the file (PatchMerging up to its channel order)."""
    _, model = loaded
    sd = torch.load(FIXTURE / "mmseg_checkpoint.pth", weights_only=True)["state_dict"]
    names = tool.mmseg_param_names(model, list(sd))
    skipped = {k for k, v in names.items() if v is None}
    assert all(k.endswith("relative_position_index") for k in skipped), sorted(skipped)[:5]
    own = model.state_dict()
    mapped = {v for v in names.values() if v}
    assert sorted(set(own) - mapped) == ["feat_head.proj.bias", "feat_head.proj.weight"]
    heads = [k for k in sd if k.startswith(("decode_head.", "auxiliary_head."))]
    assert len(heads) == len({names[k] for k in heads}) == 82  # one to one (BN counters incl.)
    for k, n in names.items():
        if n is None:
            continue
        a, b = own[n], sd[k]
        if ".downsample." in k:  # mmseg's unfold order of the 4 merged pixels
            a, b = a.flatten().sort().values, b.flatten().sort().values
        assert torch.equal(a, b.to(a.dtype)), (k, n)


@pytest.mark.parametrize("key", KEYS)
def test_backbone_levels_match_mmseg(outputs, ref, key):
    s = ref["subsample"]["feat"]
    pairs = zip(outputs[key]["backbone"], ref["outputs"][key]["backbone"])
    for i, (ours, theirs) in enumerate(pairs):
        d = _maxdiff(ours[..., ::s, ::s], theirs)
        assert d <= TOL, f"{key} res{i + 2}: max abs diff {d:.3g} (shape {tuple(ours.shape)})"


@pytest.mark.parametrize("key", KEYS)
def test_decode_and_aux_logits_match_mmseg(outputs, ref, key):
    d = _maxdiff(outputs[key]["decode_logits"], ref["outputs"][key]["decode_logits"])
    assert d <= TOL, f"{key} UPerHead logits at 1/4: max abs diff {d:.3g}"
    d = _maxdiff(outputs[key]["aux_logits"], ref["outputs"][key]["aux_logits"])
    assert d <= TOL, f"{key} FCNHead aux logits: max abs diff {d:.3g}"


@pytest.mark.parametrize("key", KEYS)
def test_logits_at_input_size_match_mmseg_test_step(outputs, ref, key):
    """mmseg `test_step` logits (whole inference, resized to the input) vs ours: through
    `predict_logits` and through the Detectron2 entry point `model(batched_inputs)`, whose
    probabilities must equal softmax(mmseg logits)."""
    s = ref["subsample"]["logits"]
    theirs = ref["outputs"][key]["logits"][None]
    assert "logits" in outputs[key], "DFRSegmentor.predict_logits is missing"
    d = _maxdiff(outputs[key]["logits"][..., ::s, ::s], theirs)
    assert d <= TOL, f"{key} logits at input size: max abs diff {d:.3g}"
    d = _maxdiff(outputs[key]["probs"][..., ::s, ::s], theirs.softmax(1))
    assert d <= TOL, f"{key} model(batched_inputs) probabilities: max abs diff {d:.3g}"


@pytest.mark.parametrize("key", KEYS)
def test_test_time_resize_matches_mmseg(ref, key):
    """mmseg's test pipeline Resize(scale=(2048, 512), keep_ratio=True) (mmcv imrescale,
    cv2 bilinear) vs dfr.data.transforms.KeepRatioResize, pixel for pixel."""
    size = tuple(int(v) for v in key.split("x"))
    ours = tool.our_resize(tool.image(size))
    assert ours is not None, "dfr.data.transforms.KeepRatioResize is missing"
    assert list(ours.shape) == ref["resize_shape"][key]
    s = ref["subsample"]["logits"]
    d = int(np.abs(ours[::s, ::s].astype(int) - ref["resize"][key].numpy().astype(int)).max())
    assert d == 0, f"{key}: resized pixels differ by up to {d}"
    assert tool._sha256(ours) == ref["resize_sha256"][key], f"{key}: resized image differs"


def test_optimizer_groups_match_mmseg_paramwise_cfg(loaded, info):
    """Per parameter lr and weight decay as mmengine builds them from the Swin config's
    paramwise_cfg (custom_keys absolute_pos_embed / relative_position_bias_table / norm ->
    decay 0), same base lr (6e-5) and weight decay (0.01) on both sides."""
    cfg, model = loaded
    ours = tool.our_param_groups(cfg, model)
    groups = info["param_groups"]
    names = tool.mmseg_param_names(model, list(groups))
    assert all(names.values()), [k for k, v in names.items() if not v][:5]
    wrong = [f"{names[k]}: lr {ours[names[k]]['lr']:g} wd {ours[names[k]]['weight_decay']:g} "
             f"(mmseg {g['lr']:g}, {g['weight_decay']:g})"
             for k, g in groups.items()
             if not (math.isclose(ours[names[k]]["lr"], g["lr"], rel_tol=1e-9)
                     and math.isclose(ours[names[k]]["weight_decay"], g["weight_decay"],
                                      abs_tol=1e-12))]
    assert not wrong, f"{len(wrong)}/{len(groups)} parameters differ, e.g. {wrong[:4]}"
    assert set(ours) - set(names.values()) == {"feat_head.proj.weight", "feat_head.proj.bias"}


def test_lr_schedule_is_the_paper_era_poly_with_linear_warmup(loaded, info):
    """Official Swin / mmseg 0.x (mmcv PolyLrUpdaterHook + linear warmup 1500 it, ratio 1e-6):
    lr = base (1 - t/T)^p (1 - (1 - t/W)(1 - r)) in warmup. mmseg 1.x's LinearLR + PolyLR(begin
    1500) differs on purpose (e.g. 3.117e-5 vs 3e-5 at 20000; docs/PARITY.md)."""
    cfg, _ = loaded
    iters = sorted(int(i) for i in info["lr_paper_era"])
    ours = tool.our_lrs(cfg, iters)
    wrong = {it: (ours[it], info["lr_paper_era"][str(it)]) for it in iters
             if not math.isclose(ours[it], info["lr_paper_era"][str(it)], rel_tol=1e-6)}
    assert not wrong, "LR (ours, mmcv 0.x) at " + ", ".join(
        f"it {it}: {a:.6g} vs {b:.6g} ({abs(a - b) / b:.2%})" for it, (a, b) in wrong.items())
    # mmengine PolyLR steps multiplicatively (chained form): equal to 1e-4 of the closed form
    assert info["lr_mmseg_1x"]["20000"] == pytest.approx(6e-5 * (1 - 18500 / 38500), rel=1e-4)


@pytest.mark.parametrize("k", ["0", "1", "2", "3", "4"])
def test_frozen_stages_freeze_the_parameters_mmseg_freezes(info, k):
    from dfr.modeling.backbone import D2SwinTransformer

    t = tool.TINY
    bb = D2SwinTransformer(embed_dim=t["embed_dim"], depths=t["depths"],
                           num_heads=t["num_heads"], window_size=t["window_size"],
                           frozen_stages=int(k)).train()
    holder = torch.nn.Module()
    holder.backbone = bb
    theirs = info["frozen_stages"][k]
    names = tool.mmseg_param_names(holder, theirs)
    assert all(names.values())
    ours = sorted("backbone." + n for n, p in bb.named_parameters() if not p.requires_grad)
    assert ours == sorted(names.values())


def test_eval_only_on_odd_sized_images_reproduces_mmseg_predictions(tmp_path, ref):
    """train_net.py --eval-only (mapper, model, SemSegEvaluator) on a registered dataset of
    the 200x264 and 375x500 images, with the mmseg checkpoint as MODEL.WEIGHTS: the ground
    truth is mmseg's own argmax (on the fixture's stride-3 grid, pixels whose top-2 logit
    margin is > 1e-3; 255 elsewhere), so any pipeline difference shows as pACC < 100."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from helpers import load_train_net, parse
    from PIL import Image

    name = f"mmseg_parity_odd_{id(tmp_path)}"
    records, labelled = [], 0
    for h, w in [(200, 264), (375, 500)]:
        key = f"{h}x{w}"
        img = tool.image((h, w))
        Image.fromarray(img).save(tmp_path / f"{key}.png")
        logits = ref["outputs"][key]["logits"]  # (C, ceil(h/3), ceil(w/3)): every 3rd pixel
        top2 = logits.topk(2, dim=0).values
        sure = (top2[0] - top2[1]) > 1e-3
        gt = np.full((h, w), 255, np.uint8)
        s = ref["subsample"]["logits"]
        gt[::s, ::s] = np.where(sure.numpy(), logits.argmax(0).numpy(), 255)
        labelled += int(sure.sum())
        Image.fromarray(gt).save(tmp_path / f"{key}_gt.png")
        records.append({"file_name": str(tmp_path / f"{key}.png"), "height": h, "width": w,
                        "sem_seg_file_name": str(tmp_path / f"{key}_gt.png"), "image_id": key})
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).set(stuff_classes=[f"c{i}" for i in range(5)], ignore_label=255,
                                  evaluator_type="sem_seg")  # fmt: skip
    t = tool.TINY  # the sizes of the network stage 1 built (as tool.our_cfg)
    argv = ["--eval-only", "--config-file",
            str(REPO / "projects/DFR/configs/voc/dfr_swin_base_bs16_40k.yaml"),
            "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", str(FIXTURE / "mmseg_checkpoint.pth"),
            "MODEL.SWIN.PRETRAINED", "", "MODEL.SWIN.SIZE", "custom",
            "MODEL.SWIN.EMBED_DIM", t["embed_dim"], "MODEL.SWIN.DEPTHS", t["depths"],
            "MODEL.SWIN.NUM_HEADS", t["num_heads"], "MODEL.SWIN.WINDOW_SIZE", t["window_size"],
            "MODEL.SWIN.PRETRAIN_IMG_SIZE", t["pretrain_img_size"],
            "MODEL.UPERNET.CHANNELS", t["channels"], "MODEL.UPERNET.POOL_SCALES",
            t["pool_scales"], "MODEL.AUX_HEAD.CHANNELS", t["aux_channels"],
            "MODEL.AUX_HEAD.IN_FEATURE", f"res{t['aux_index'] + 2}",
            "MODEL.SEM_SEG_HEAD.NUM_CLASSES", t["num_classes"], "MODEL.SEM_SEG_HEAD.NORM", "BN",
            "INPUT.DFR.TEST_RESIZE", "False", "DATASETS.TEST", f"('{name}',)",
            "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(tmp_path / "out")]  # fmt: skip
    res = load_train_net().main(parse(argv))["sem_seg"]
    assert labelled > 5000
    assert res["pACC"] == 100.0 and res["mIoU"] == 100.0, res
