"""Checkpoint loading: no code runs from a checkpoint unless MODEL.ALLOW_UNSAFE_CHECKPOINT is
set; full mmseg UperNet-Swin checkpoints as MODEL.WEIGHTS; mmseg's
meaning of MODEL.SWIN.FROZEN_STAGES."""
import pickle

import numpy as np
import pytest
import torch
from helpers import CONFIGS, TINY_MODEL_OPTS, logged, tiny_model

OPT_IN = "MODEL.ALLOW_UNSAFE_CHECKPOINT True"
class _CreatesFile:
    """Unpickling this object creates `path` (stands for any code a pickle can run)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def checkpoint_log():
    """What the checkpointer logs (missing / unexpected keys)."""
    with logged("fvcore.common.checkpoint") as log:
        yield log


def _evil_checkpoint(tmp_path, model, suffix=".pth"):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / f"evil{suffix}"
    data = {"model": {k: v.clone() + 1 for k, v in model.state_dict().items()},
            "extra": _CreatesFile(marker)}
    if suffix == ".pkl":
        data["model"] = {k: v.numpy() for k, v in data["model"].items()}
        data["__author__"] = "someone"
        with open(path, "wb") as f:
            pickle.dump(data, f)
    else:
        torch.save(data, path)
    return path, marker


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_model_weights_that_would_run_code_are_refused_unless_opted_in(tmp_path, suffix):
    from dfr.engine import DFRCheckpointer
    from dfr.engine.checkpoint import UnsafeCheckpointError

    model = tiny_model()
    path, marker = _evil_checkpoint(tmp_path, model, suffix)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UnsafeCheckpointError) as e:
        DFRCheckpointer(model).load(str(path))
    msg = str(e.value)
    assert str(path) in msg and OPT_IN in msg and "open" in msg, msg
    assert not marker.exists()  # nothing ran
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())

    DFRCheckpointer(model, allow_unsafe=True).load(str(path))  # trusted: loads in full
    assert marker.exists()
    k = "sem_seg_head.predictor.weight"
    assert torch.equal(model.state_dict()[k], before[k] + 1)


def test_swin_pretrained_that_would_run_code_is_refused_through_the_config(tmp_path):
    from detectron2.modeling import build_backbone

    from dfr.config import get_dfr_cfg
    from dfr.modeling.backbone.weights import UnsafeCheckpointError

    path, marker = _evil_checkpoint(tmp_path, tiny_model().backbone)
    cfg = get_dfr_cfg(CONFIGS / "Base-DFR.yaml", TINY_MODEL_OPTS + ["MODEL.SWIN.PRETRAINED", str(path)])
    with pytest.raises(UnsafeCheckpointError, match=OPT_IN) as e:
        build_backbone(cfg)
    assert str(path) in str(e.value) and not marker.exists()
    cfg.MODEL.ALLOW_UNSAFE_CHECKPOINT = True
    bb = build_backbone(cfg)
    assert marker.exists()
    assert float(bb.out_norms[0].weight.detach()[0]) == 2.0  # LayerNorm weight 1 + 1, from the file


def test_model_zoo_style_pkl_of_numpy_arrays_loads_without_opt_in(tmp_path):
    from dfr.engine import DFRCheckpointer

    model = tiny_model()
    want = {k: np.asarray(v.numpy() + 1) for k, v in model.state_dict().items()}
    with open(tmp_path / "zoo.pkl", "wb") as f:
        pickle.dump({"model": want, "__author__": "Detectron2 model zoo"}, f, protocol=2)
    DFRCheckpointer(model).load(str(tmp_path / "zoo.pkl"))
    got = model.state_dict()["backbone.swin.layers_2.blocks.0.attn.qkv.weight"]
    assert np.array_equal(got.numpy(), want["backbone.swin.layers_2.blocks.0.attn.qkv.weight"])


def _mmseg_head_state_dict(num_fpn=3):
    """Hand-written mmseg UPerHead + FCNHead keys (tiny sizes of TINY_MODEL_OPTS), each tensor filled
    with a distinct constant so that its destination can be checked."""
    sd, n = {}, [1]

    def put(prefix, out_ch, in_ch, k, bn=True):
        n[0] += 1  # 2, 3, ...: never an init value (BN weight 1, bias 0)
        if bn:
            sd[prefix + "conv.weight"] = torch.full((out_ch, in_ch, k, k), float(n[0]))
            for p in ("weight", "bias", "running_mean", "running_var"):
                sd[prefix + "bn." + p] = torch.full((out_ch,), float(n[0]))
            sd[prefix + "bn.num_batches_tracked"] = torch.tensor(n[0])
        else:
            sd[prefix + "weight"] = torch.full((out_ch, in_ch, k, k), float(n[0]))
            sd[prefix + "bias"] = torch.full((out_ch,), float(n[0]))

    for i in range(4):
        put(f"decode_head.psp_modules.{i}.1.", 8, 128, 1)
    put("decode_head.bottleneck.", 8, 128 + 4 * 8, 3)
    for i, c in enumerate((16, 32, 64)):
        put(f"decode_head.lateral_convs.{i}.", 8, c, 1)
    for i in range(num_fpn):
        put(f"decode_head.fpn_convs.{i}.", 8, 8, 3)
    put("decode_head.fpn_bottleneck.", 8, 32, 3)
    put("decode_head.conv_seg.", 5, 8, 1, bn=False)
    put("auxiliary_head.convs.0.", 8, 64, 3)
    put("auxiliary_head.conv_seg.", 5, 8, 1, bn=False)
    return sd


# mmseg head key -> our key (MODEL.UPERNET.FUSION_LEVELS = all four levels)
EXPECTED_HEAD_MAP = {
    "decode_head.psp_modules.2.1.conv.weight": "fusion.ppm.2.1.weight",
    "decode_head.psp_modules.3.1.bn.running_var": "fusion.ppm.3.1.norm.running_var",
    "decode_head.bottleneck.conv.weight": "fusion.ppm_bottleneck.weight",
    "decode_head.bottleneck.bn.bias": "fusion.ppm_bottleneck.norm.bias",
    "decode_head.lateral_convs.0.conv.weight": "fusion.lateral_convs.res2.weight",
    "decode_head.lateral_convs.2.bn.running_mean": "fusion.lateral_convs.res4.norm.running_mean",
    "decode_head.fpn_convs.0.conv.weight": "fusion.fpn_convs.res2.weight",
    "decode_head.fpn_convs.1.bn.weight": "fusion.fpn_convs.res3.norm.weight",
    "decode_head.fpn_convs.2.bn.num_batches_tracked":
        "fusion.fpn_convs.res4.norm.num_batches_tracked",
    "decode_head.fpn_bottleneck.conv.weight": "sem_seg_head.conv.weight",
    "decode_head.fpn_bottleneck.bn.running_var": "sem_seg_head.conv.norm.running_var",
    "decode_head.conv_seg.weight": "sem_seg_head.predictor.weight",
    "decode_head.conv_seg.bias": "sem_seg_head.predictor.bias",
    "auxiliary_head.convs.0.conv.weight": "aux_head.conv.weight",
    "auxiliary_head.convs.0.bn.weight": "aux_head.conv.norm.weight",
    "auxiliary_head.conv_seg.bias": "aux_head.predictor.bias",
}


def _mmseg_checkpoint(tmp_path, model):
    """{"meta", "state_dict"} as mmseg writes it: the heads above + the backbone of `model`
    in mmseg's Swin naming (written out by hand here, independent of the loader)."""
    import re

    sd = _mmseg_head_state_dict()
    for k, v in model.backbone.state_dict().items():
        v = v.clone() + 0.5
        m = re.match(r"out_norms\.(\d)\.(.*)", k)
        if m:
            sd[f"backbone.norm{m.group(1)}.{m.group(2)}"] = v
            continue
        k = k[len("swin."):].replace("patch_embed.proj.", "patch_embed.projection.")
        k = k.replace("attn.", "attn.w_msa.").replace("mlp.fc1.", "ffn.layers.0.0.")
        k = k.replace("mlp.fc2.", "ffn.layers.1.")
        m = re.match(r"layers_(\d)\.(.*)", k)
        if m:
            i, rest = int(m.group(1)), m.group(2)
            if rest.startswith("downsample."):  # mmseg: end of the previous stage
                continue  # (channel order differs; covered by the mmseg parity fixture)
            k = f"stages.{i}.{rest}"
        sd["backbone." + k] = v
    meta = {"mmseg_version": "1.2.2", "CLASSES": tuple(f"c{i}" for i in range(5))}
    path = tmp_path / "upernet_swin_mmseg.pth"
    torch.save({"meta": meta, "state_dict": sd, "optimizer": {}}, path)
    return path, sd


def test_full_mmseg_checkpoint_loads_as_model_weights(tmp_path, checkpoint_log):
    from dfr.engine import DFRCheckpointer

    model = tiny_model()
    path, sd = _mmseg_checkpoint(tmp_path, model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    DFRCheckpointer(model).load(str(path))
    own = model.state_dict()
    for src, dst in EXPECTED_HEAD_MAP.items():
        assert torch.equal(own[dst], sd[src].to(own[dst].dtype)), (src, dst)
    heads = [k for k in own if not k.startswith(("backbone.", "feat_head."))]
    assert len(heads) == len([k for k in sd if not k.startswith("backbone.")])
    for k in heads:  # every head tensor came from the file (no init value left)
        assert not torch.equal(own[k], before[k]), k
    for k in own:
        if k.startswith("backbone.") and ".downsample." not in k:
            assert torch.equal(own[k], before[k] + 0.5), k
    log = checkpoint_log.text
    assert "mmseg checkpoint" in log
    assert "feat_head.proj.{bias, weight}" in log  # missing: no mmseg counterpart


def test_mmseg_checkpoint_into_a_model_with_fewer_fusion_levels(tmp_path, checkpoint_log):
    """Table 6 rows build only the FPN convs their levels use (laterals from the finest fused
    level, output convs of fused levels): the others are reported unused. The fusion
    bottleneck reads fewer channels: loading needs MODEL.SKIP_MISMATCHED_WEIGHTS."""
    from dfr.engine import DFRCheckpointer

    from dfr.engine import CheckpointMismatchError

    model = tiny_model("MODEL.UPERNET.FUSION_LEVELS", ["res3", "res5"])
    path, sd = _mmseg_checkpoint(tmp_path, model)
    with pytest.raises(CheckpointMismatchError, match=r"sem_seg_head.conv.weight \(8, 32, 3, 3\) "
                       r"vs model \(8, 16, 3, 3\).*MODEL.SKIP_MISMATCHED_WEIGHTS True"):
        DFRCheckpointer(model).load(str(path))  # the fused map has 2 levels, not 4
    DFRCheckpointer(model, allow_shape_mismatch=True).load(str(path))
    own = model.state_dict()
    want = sd["decode_head.fpn_convs.1.conv.weight"]
    assert torch.equal(own["fusion.fpn_convs.res3.weight"], want)
    want = sd["decode_head.lateral_convs.2.conv.weight"]
    assert torch.equal(own["fusion.lateral_convs.res4.weight"], want)
    assert not any(k.startswith(("fusion.fpn_convs.res2", "fusion.fpn_convs.res4",
                                 "fusion.lateral_convs.res2")) for k in own)
    log = checkpoint_log.text
    assert "decode_head.fpn_convs.0.conv.weight" in log  # unexpected, logged
    assert "decode_head.lateral_convs.0.conv.weight" in log
    assert "decode_head.fpn_convs.2.bn.{bias, num_batches_tracked" in log


def test_mmseg_window_7_tables_are_resized_bicubically_into_window_12(tmp_path):
    from dfr.engine import DFRCheckpointer

    src_model = tiny_model()
    path, sd = _mmseg_checkpoint(tmp_path, src_model)
    model = tiny_model("MODEL.SWIN.WINDOW_SIZE", 12)
    DFRCheckpointer(model).load(str(path))
    src = sd["backbone.stages.2.blocks.0.attn.w_msa.relative_position_bias_table"]  # (169, 2)
    got = model.state_dict()["backbone.swin.layers_2.blocks.0.attn.relative_position_bias_table"]
    # expected: timm's own resize for the official / mmseg rule (mmseg SwinTransformer.init_weights:
    # bicubic on the 13x13 grid), not the same call as the loader's
    from timm.layers import resize_rel_pos_bias_table_simple

    want = resize_rel_pos_bias_table_simple(src, (12, 12), (529, 2))
    assert got.shape == (529, 2) and torch.allclose(got, want, atol=1e-7)


# Parameters mmseg's SwinTransformer freezes for frozen_stages = k (its _freeze_stages:
# patch_embed; stages[i] incl. its downsample, and norm{i}, for i < k), in our names, for
# depths (1, 1, 1, 1).
_BLOCK = ["norm1.weight", "norm1.bias", "attn.relative_position_bias_table", "attn.qkv.weight",
          "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
          "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"]
_MERGE = ["norm.weight", "norm.bias", "reduction.weight"]
FROZEN = {
    0: ["swin.patch_embed.proj.weight", "swin.patch_embed.proj.bias",
        "swin.patch_embed.norm.weight", "swin.patch_embed.norm.bias"],
}
FROZEN[1] = FROZEN[0] + [f"swin.layers_0.blocks.0.{p}" for p in _BLOCK] + [
    f"swin.layers_1.downsample.{p}" for p in _MERGE] + ["out_norms.0.weight", "out_norms.0.bias"]
FROZEN[2] = FROZEN[1] + [f"swin.layers_1.blocks.0.{p}" for p in _BLOCK] + [
    f"swin.layers_2.downsample.{p}" for p in _MERGE] + ["out_norms.1.weight", "out_norms.1.bias"]


@pytest.mark.parametrize("k", [-1, 0, 1, 2])
def test_frozen_stages_freeze_what_mmseg_freezes(k):
    from dfr.modeling.backbone import D2SwinTransformer

    bb = D2SwinTransformer(embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1),
                           frozen_stages=k).train()
    frozen = sorted(n for n, p in bb.named_parameters() if not p.requires_grad)
    assert frozen == sorted(FROZEN.get(k, [])), k
    if k >= 1:  # frozen modules stay in eval mode under .train()
        assert not bb.swin.layers_1.downsample.training and not bb.out_norms[0].training
        assert bb.swin.layers_1.blocks.training == (k < 2)


def test_checkpoint_of_the_older_head_layout_loads_by_name(tmp_path):
    """Checkpoints saved before the heads were keyed by level (fusion.*_convs.<i>) and the
    scene head's conv was called `bottleneck` load into the same tensors, not silently at init."""
    from detectron2.modeling import build_model

    from dfr.config import get_dfr_cfg
    from dfr.engine import DFRCheckpointer

    cfg = get_dfr_cfg(CONFIGS / "quick_schedules/dfr_swin_tiny_synthetic_instant_test.yaml")
    torch.manual_seed(0)
    src = build_model(cfg)
    levels = src.fusion.in_features
    old = {}
    for k, v in src.state_dict().items():
        k = k.replace("sem_seg_head.conv.", "sem_seg_head.bottleneck.")
        for i, name in enumerate(levels):
            k = k.replace(f"lateral_convs.{name}.", f"lateral_convs.{i}.")
            k = k.replace(f"fpn_convs.{name}.", f"fpn_convs.{i}.")
        old[k] = v
    assert "fusion.lateral_convs.0.weight" in old and "sem_seg_head.bottleneck.weight" in old
    torch.save({"model": old, "iteration": 3}, tmp_path / "old.pth")
    torch.manual_seed(1)
    dst = build_model(cfg)
    DFRCheckpointer(dst).load(str(tmp_path / "old.pth"))
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


def test_save_is_atomic_a_failed_write_leaves_no_truncated_file(tmp_path, monkeypatch):
    from dfr.engine import DFRCheckpointer

    model = torch.nn.Linear(3, 2)
    ck = DFRCheckpointer(model, save_dir=str(tmp_path))
    ck.save("model_0000001")
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    real_save = torch.save

    def dying_save(obj, f, *a, **k):  # writes a few bytes, then the process "dies"
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save("model_0000002")
    monkeypatch.setattr(torch, "save", real_save)
    assert not (tmp_path / "model_0000002.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    ck.save("model_0000003")
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000003.pth"
    assert sorted(p.name for p in tmp_path.glob("model_*.pth")) == [
        "model_0000001.pth", "model_0000003.pth"]
    DFRCheckpointer(torch.nn.Linear(3, 2)).load(str(tmp_path / "model_0000003.pth"))
