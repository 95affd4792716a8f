"""D2SwinTransformer: shapes, any input size, frozen stages, and weight loading from official
Swin / mmseg / timm / Detectron2 checkpoints written here (tiny Swin, CPU)."""
import re
import warnings
from pathlib import Path

import pytest
import torch

ARCH = dict(embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))


def _backbone(**kw):
    from dfr.modeling.backbone import D2SwinTransformer

    args = dict(ARCH, window_size=7, drop_path_rate=0.0)
    args.update(kw)
    return D2SwinTransformer(**args)


def _timm_reference(window=7, seed=0):
    """A full timm Swin with the backbone's construction flags (the checkpoint's source)."""
    import timm

    torch.manual_seed(seed)
    return timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, num_classes=10, window_size=window,
        strict_img_size=False, always_partition=True, **ARCH,
    ).eval()


def _official(ref):
    """timm state dict -> Microsoft Swin layout: PatchMerging at the end of stage i
    (layers.i.downsample), "head." classifier, persistent index/mask buffers, "model" wrapper."""
    out = {}
    for k, v in ref.state_dict().items():
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", k)
        if m:
            k = f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
        out[k.replace("head.fc.", "head.")] = v
    for name, buf in ref.named_buffers():
        if name.endswith("relative_position_index"):
            out[name] = buf
    out["layers.0.blocks.0.attn_mask"] = torch.zeros(4, 49, 49)
    return {"model": out}


def _mmseg(official):
    """Official layout -> mmseg's (forward of mmseg's swin2mmseg converter), under backbone."""

    def reduction(x):
        o, i = x.shape
        return x.reshape(o, 4, i // 4)[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(o, i)

    def norm(x):
        i = x.shape[0]
        return x.reshape(4, i // 4)[[0, 2, 1, 3], :].transpose(0, 1).reshape(i)

    out = {}
    for k, v in official["model"].items():
        if k.startswith("head") or "relative_position_index" in k or "attn_mask" in k:
            continue
        if k.startswith("layers"):
            k = k.replace("attn.", "attn.w_msa.").replace("mlp.fc1.", "ffn.layers.0.0.")
            k = k.replace("mlp.fc2.", "ffn.layers.1.")
            if "downsample.reduction" in k:
                v = reduction(v)
            elif "downsample.norm" in k:
                v = norm(v)
            k = k.replace("layers", "stages", 1)
        elif k.startswith("patch_embed.proj"):
            k = k.replace("proj", "projection")
        out["backbone." + k] = v
    for i, c in enumerate((16, 32, 64, 128)):  # mmseg's per-output norms
        out[f"backbone.norm{i}.weight"] = torch.full((c,), 2.0)
        out[f"backbone.norm{i}.bias"] = torch.full((c,), 0.5)
    out["decode_head.conv_seg.weight"] = torch.zeros(21, 512, 1, 1)
    return {"state_dict": out, "meta": {}}


def _same_as_reference(backbone, ref):
    """Max difference to timm's forward on a 224x224 image: every stage (56, 28, 14, 7) is a
    multiple of the window 7, where the official and timm shift orders agree."""
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    backbone.eval()
    with torch.no_grad():
        got = backbone(x)
        want = ref.forward_intermediates(x, intermediates_only=True)
    return max(float((got[f"res{i + 2}"] - w).abs().max()) for i, w in enumerate(want))


def test_swin_base_shapes_strides_channels():
    from detectron2.config import get_cfg
    from detectron2.modeling import build_backbone

    from dfr import add_dfr_config

    cfg = get_cfg()
    add_dfr_config(cfg)  # defaults: Swin-B, window 12
    cfg.MODEL.BACKBONE.NAME = "D2SwinTransformer"
    from dfr.utils import meta_device

    with meta_device():
        bb = build_backbone(cfg).eval()
    shapes = bb.output_shape()
    assert [shapes[f"res{i}"].stride for i in (2, 3, 4, 5)] == [4, 8, 16, 32]
    assert [shapes[f"res{i}"].channels for i in (2, 3, 4, 5)] == [128, 256, 512, 1024]
    with torch.no_grad():
        out = bb(torch.zeros(1, 3, 512, 333, device="meta"))
    assert [tuple(out[f"res{i}"].shape) for i in (2, 3, 4, 5)] == [
        (1, 128, 128, 84), (1, 256, 64, 42), (1, 512, 32, 21), (1, 1024, 16, 11)]


def test_feature_info_matches_outputs_and_odd_sizes():
    bb = _backbone().eval()
    assert bb.size_divisibility == 0  # any size: the backbone pads only where Swin needs it
    with torch.no_grad():
        for h, w in ((64, 64), (333, 517), (45, 31)):
            out = bb(torch.randn(1, 3, h, w))
            for name, spec in bb.output_shape().items():
                s = spec.stride
                assert tuple(out[name].shape) == (1, spec.channels, -(-h // s), -(-w // s))
                assert torch.isfinite(out[name]).all()


def test_shifted_windows_pad_before_shift_like_official_swin():
    """H = 7, window 4, shift 2: the official order (pad to 8, then roll) keeps the wrapped top
    row out of the bottom row's window; timm's own order (roll, then pad) does not."""
    bb = _backbone(window_size=4).eval()
    blk = bb.swin.layers_2.blocks[1]
    assert blk.shift_size == (2, 2) and blk.window_size == (4, 4)
    x = torch.randn(1, 7, 7, 64, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, 0] += 5.0  # change the top row only
    with torch.no_grad():
        ours = (blk._attn(x) - blk._attn(y))[:, 6].abs().max()
        timm_order = (type(blk)._attn(blk, x) - type(blk)._attn(blk, y))[:, 6].abs().max()
        z = torch.randn(1, 8, 8, 64)  # window multiple: both orders agree
        same = (blk._attn(z) - type(blk)._attn(blk, z)).abs().max()
    assert float(ours) == 0.0 and float(timm_order) > 1e-3 and float(same) < 1e-6


def test_frozen_stages_and_drop_path():
    bb = _backbone(frozen_stages=1, drop_path_rate=0.2).train()
    assert not any(p.requires_grad for p in bb.swin.patch_embed.parameters())
    assert not any(p.requires_grad for p in bb.swin.layers_0.parameters())
    # mmseg's stage 0 ends with its patch merging = timm's layers_1.downsample
    assert not any(p.requires_grad for p in bb.swin.layers_1.downsample.parameters())
    assert all(p.requires_grad for p in bb.swin.layers_1.blocks.parameters())
    assert not bb.swin.layers_0.training and bb.swin.layers_1.blocks.training
    assert bb.swin.layers_3.blocks[-1].drop_path1.drop_prob == pytest.approx(0.2)


def test_official_checkpoint_loads_with_zero_missing_keys(tmp_path):
    ref = _timm_reference()
    path = tmp_path / "swin_official.pth"
    torch.save(_official(ref), path)
    bb = _backbone(out_norm=False)
    from dfr.modeling.backbone import load_swin_pretrained

    report = load_swin_pretrained(bb, str(path))
    assert report["format"] == "official"
    assert report["missing"] == [] and report["mismatched"] == []
    assert len(report["matched"]) == len(bb.state_dict())
    assert set(report["unexpected"]) == {
        "swin.head.fc.weight", "swin.head.fc.bias", "swin.norm.weight", "swin.norm.bias"}
    assert _same_as_reference(bb, ref) < 1e-5  # same network, same outputs


def test_timm_safetensors_and_mmseg_checkpoints_load(tmp_path):
    from safetensors.torch import save_file

    from dfr.modeling.backbone import load_swin_pretrained

    ref = _timm_reference(seed=3)
    st = tmp_path / "swin_timm.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(st))
    bb = _backbone(out_norm=False)
    report = load_swin_pretrained(bb, str(st))
    assert report["format"] == "timm" and report["missing"] == []
    assert _same_as_reference(bb, ref) < 1e-5

    mm = tmp_path / "upernet_swin_mmseg.pth"
    torch.save(_mmseg(_official(ref)), mm)
    bb = _backbone(out_norm=True)
    report = load_swin_pretrained(bb, str(mm))
    assert report["format"] == "mmseg" and report["missing"] == []  # out norms norm0..3 too
    assert float(bb.out_norms[2].weight.detach()[0]) == 2.0
    bb.out_norms = None
    assert _same_as_reference(bb, ref) < 1e-5  # unfold channel order undone correctly


def test_other_window_size_is_interpolated(tmp_path):
    from dfr.modeling.backbone import load_swin_pretrained

    ref = _timm_reference(window=7)
    path = tmp_path / "w7.pth"
    torch.save(_official(ref), path)
    bb = _backbone(window_size=12)
    report = load_swin_pretrained(bb, str(path))
    assert report["mismatched"] == [] and all(k.startswith("out_norms") for k in report["missing"])
    got = bb.swin.layers_2.blocks[1].attn.relative_position_bias_table
    src = ref.layers[2].blocks[1].attn.relative_position_bias_table
    assert tuple(src.shape) == (13 * 13, 2) and tuple(got.shape) == (23 * 23, 2)
    # expected value from timm's own function for the official Swin / mmseg rule (bicubic on the
    # (2w-1)^2 grid); timm's default resize (scipy-based, used by its checkpoint filter) differs
    from timm.layers import resize_rel_pos_bias_table, resize_rel_pos_bias_table_simple

    want = resize_rel_pos_bias_table_simple(src.detach(), (12, 12), (529, 2))
    assert torch.allclose(got, want)
    with warnings.catch_warnings():  # timm's scipy path warns about torch indexing
        warnings.simplefilter("ignore", UserWarning)
        other = resize_rel_pos_bias_table(src.detach(), (12, 12), (529, 2))
    assert not torch.allclose(got, other, atol=1e-4)


def test_wrong_file_is_a_clear_error(tmp_path):
    from dfr.modeling.backbone import load_swin_pretrained

    bb = _backbone()
    with pytest.raises(FileNotFoundError, match="Swin checkpoint not found: .*nope.pth"):
        load_swin_pretrained(bb, str(tmp_path / "nope.pth"))
    torch.save({"model": {"fc.weight": torch.zeros(3, 3)}}, tmp_path / "resnet.pth")
    msg = r"No key of .*resnet.pth' \(read as unrecognised format, 1 keys\) matches the Swin"
    with pytest.raises(ValueError, match=msg):
        load_swin_pretrained(bb, str(tmp_path / "resnet.pth"))
    torch.save(_official(_timm_reference()), tmp_path / "small.pth")
    big = _backbone(embed_dim=32, num_heads=(2, 4, 8, 16))  # every shape differs
    with pytest.raises(ValueError, match=r"wrong shape\). Wrong file or wrong MODEL.SWIN.SIZE"):
        load_swin_pretrained(big, str(tmp_path / "small.pth"))


def test_convert_tool_writes_a_detectron2_checkpoint(tmp_path):

    from helpers import CONFIGS
    from detectron2.checkpoint import DetectionCheckpointer

    from helpers import load_script

    cvt = load_script("tools/convert_swin_weights.py")
    ref = _timm_reference()
    torch.save(_official(ref), tmp_path / "official.pth")
    cfg_file = str(CONFIGS / "synthetic" / "dfr_swin_tiny_synthetic_cpu.yaml")
    opts = ["MODEL.SWIN.EMBED_DIM", "16", "MODEL.SWIN.NUM_HEADS", "[1, 2, 2, 4]",
            "MODEL.SWIN.DROP_PATH_RATE", "0.0", "MODEL.SWIN.OUT_NORM", "False"]
    assert cvt.main(["--config-file", cfg_file, str(tmp_path / "official.pth"),
                     str(tmp_path / "d2.pth"), *opts]) == 0
    saved = torch.load(tmp_path / "d2.pth")["model"]
    assert all(k.startswith("backbone.swin.") for k in saved)
    # MODEL.WEIGHTS path: Detectron2's checkpointer fills the whole backbone
    bb = _backbone(out_norm=False)
    holder = torch.nn.Module()
    holder.backbone = bb
    DetectionCheckpointer(holder).load(str(tmp_path / "d2.pth"))
    assert _same_as_reference(bb, ref) < 1e-5
    # and the D2 file is itself accepted by MODEL.SWIN.PRETRAINED
    from dfr.modeling.backbone import load_swin_pretrained

    report = load_swin_pretrained(_backbone(out_norm=False), str(tmp_path / "d2.pth"))
    assert report["format"] == "detectron2" and report["missing"] == []


def test_input_is_padded_to_the_patch_size_only_not_to_32():
    """mmseg's Swin pads the image to a multiple of the patch size (4) and nothing more: an
    odd-sized input gives exactly the output of the same input zero-padded to 4, and differs
    from padding it to 32 (what a whole-image pad would compute)."""
    bb = _backbone().eval()
    x = torch.randn(1, 3, 202, 266, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = bb(x)
        to4 = bb(torch.nn.functional.pad(x, (0, 2, 0, 2)))
        to32 = bb(torch.nn.functional.pad(x, (0, 22, 0, 22)))
    for name in ("res2", "res3", "res4", "res5"):
        h, w = out[name].shape[-2:]
        assert torch.equal(out[name], to4[name]), name
        assert (out[name] - to32[name][..., :h, :w]).abs().max() > 1e-3, name


def test_timm_private_attn_signature_is_the_recorded_one():
    """The backbone overrides timm's private `SwinTransformerBlock._attn`; a timm release that
    changes it (or the helpers the override calls) must fail here, naming the version."""
    import inspect

    import timm
    from timm.models import swin_transformer as timm_swin

    from dfr.modeling.backbone.swin import TIMM_ATTN_SIGNATURE, TIMM_TESTED

    for name, expected in TIMM_ATTN_SIGNATURE.items():
        obj = timm_swin
        for part in name.split("."):
            obj = getattr(obj, part, None)
            assert obj is not None, (
                f"timm {timm.__version__} has no {name}; DFR's Swin override of "
                f"SwinTransformerBlock._attn was tested with timm {', '.join(TIMM_TESTED)}"
            )
        got = tuple(inspect.signature(obj).parameters)[: len(expected)]
        assert got == expected, (
            f"timm {timm.__version__}: {name}{inspect.signature(obj)} differs from the recorded "
            f"parameters {expected}; DFR's Swin override of SwinTransformerBlock._attn was tested "
            f"with timm {', '.join(TIMM_TESTED)} (dfr/modeling/backbone/swin.py)"
        )
    # _attn itself: exactly the recorded parameters, nothing added
    assert tuple(inspect.signature(timm_swin.SwinTransformerBlock._attn).parameters) == (
        TIMM_ATTN_SIGNATURE["SwinTransformerBlock._attn"]
    ), f"timm {timm.__version__}: SwinTransformerBlock._attn has new parameters"


def test_installed_timm_is_in_the_tested_range():
    import timm
    from packaging.version import Version

    from dfr.modeling.backbone.swin import TIMM_TESTED

    low, high = Version(TIMM_TESTED[0]), Version(TIMM_TESTED[-1])
    setup_py = (Path(__file__).resolve().parents[2] / "setup.py").read_text()
    assert f'"timm>={low},<={high}"' in setup_py, "setup.py's timm bound differs from TIMM_TESTED"
    assert low <= Version(timm.__version__) <= high, (
        f"timm {timm.__version__} is outside the tested range {low}..{high} (setup.py)"
    )


def test_activation_checkpointing_recomputes_blocks_with_equal_gradients():
    """MODEL.SWIN.USE_CHECKPOINT: each block runs again in the backward pass (that is what
    saves the memory), and outputs and gradients equal those without it, stochastic depth
    included (the RNG state is replayed)."""
    from dfr.config import get_dfr_cfg
    from dfr.modeling.backbone import D2SwinTransformer

    plain = _backbone(drop_path_rate=0.3).train()
    ckpt = _backbone(drop_path_rate=0.3, use_checkpoint=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 45, 61)

    def run(bb):
        calls = []
        hook = bb.swin.layers_2.blocks[1].register_forward_pre_hook(lambda *a: calls.append(1))
        torch.manual_seed(7)
        xi = x.clone().requires_grad_()
        outs = bb(xi)
        sum(((o * (k + 1)) ** 2).mean() for k, o in enumerate(outs.values())).backward()
        hook.remove()
        return outs, xi.grad, {n: p.grad.clone() for n, p in bb.named_parameters()}, len(calls)

    o1, gx1, g1, n1 = run(plain)
    o2, gx2, g2, n2 = run(ckpt)
    assert (n1, n2) == (1, 2)
    for k in o1:
        torch.testing.assert_close(o2[k], o1[k], rtol=0, atol=0)
    torch.testing.assert_close(gx2, gx1, rtol=1e-5, atol=1e-7)
    for n in g1:
        torch.testing.assert_close(g2[n], g1[n], rtol=1e-5, atol=1e-7, msg=n)

    cfg = get_dfr_cfg(None, ["MODEL.SWIN.SIZE", "custom", "MODEL.SWIN.EMBED_DIM", 16,
                             "MODEL.SWIN.DEPTHS", [1, 1, 1, 1], "MODEL.SWIN.NUM_HEADS",
                             [1, 1, 1, 1], "MODEL.SWIN.USE_CHECKPOINT", True])
    bb = D2SwinTransformer(**D2SwinTransformer.from_config(cfg))
    assert all(s.grad_checkpointing for s in bb._stage_modules())


def test_swin_shape_keys_are_honoured_or_refused():
    """MODEL.SWIN.EMBED_DIM / DEPTHS / NUM_HEADS: the shape with SIZE custom, required there;
    with T/S/B/L unset or the size's own values, anything else an error naming the key."""
    from dfr.config import get_dfr_cfg
    from dfr.modeling.backbone import D2SwinTransformer
    from dfr.modeling.backbone.swin import SWIN_SIZES

    def kwargs(*opts):
        return D2SwinTransformer.from_config(get_dfr_cfg(None, list(opts)))

    k = kwargs("MODEL.SWIN.SIZE", "S")
    assert (k["embed_dim"], tuple(k["depths"]), tuple(k["num_heads"])) == SWIN_SIZES["S"][1:]
    k = kwargs("MODEL.SWIN.SIZE", "T", "MODEL.SWIN.EMBED_DIM", 96)  # T's own value: accepted
    assert k["variant"] == SWIN_SIZES["T"][0] and k["embed_dim"] == 96
    k = kwargs("MODEL.SWIN.SIZE", "custom", "MODEL.SWIN.EMBED_DIM", 24, "MODEL.SWIN.DEPTHS",
               [1, 2], "MODEL.SWIN.NUM_HEADS", [1, 3])  # fmt: skip
    assert (k["embed_dim"], k["depths"], k["num_heads"]) == (24, [1, 2], [1, 3])
    with pytest.raises(ValueError, match=r"MODEL\.SWIN\.EMBED_DIM=96 \(Swin-B: 128\).*'custom'"):
        kwargs("MODEL.SWIN.EMBED_DIM", 96)
    with pytest.raises(ValueError, match=r"MODEL\.SWIN\.NUM_HEADS=\[1, 2, 4, 8\] \(Swin-L"):
        kwargs("MODEL.SWIN.SIZE", "L", "MODEL.SWIN.NUM_HEADS", [1, 2, 4, 8])
    with pytest.raises(ValueError, match=r"'custom' needs MODEL\.SWIN\.DEPTHS, MODEL\.SWIN\.NUM"):
        kwargs("MODEL.SWIN.SIZE", "custom", "MODEL.SWIN.EMBED_DIM", 24)
