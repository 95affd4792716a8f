#!/usr/bin/env python
"""Compare this project with mmsegmentation itself: a tiny Swin-UperNet built from
mmseg's own classes, random weights, loaded here through MODEL.WEIGHTS.

mmsegmentation is a reference to compare with, never a dependency: it lives in a separate
venv (docs/PARITY.md) and is imported only by stage 1, run with that
venv's interpreter. The two stages exchange files:

  stage 1 (mmseg venv): builds mmseg's EncoderDecoder (SwinTransformer + UPerHead + FCNHead
      aux on stage 2) with seeded random weights (BN running statistics too), eval mode, and
      writes the checkpoint as mmseg saves it ({"meta", "state_dict"}), the inputs' seeds,
      mmseg's outputs at 224x224, 200x264 and 375x500 (backbone stages after norm_i,
      decode-head logits at 1/4, end-to-end logits of `test_step` at input size, aux logits),
      the test-pipeline resize (`Resize(scale=(2048, 512), keep_ratio=True)`), the parameters
      `frozen_stages` = 0..4 freezes, the optimizer's per-parameter lr / weight decay from the
      Swin config's paramwise_cfg (mmengine `build_optim_wrapper`), and the LR at several
      iterations for (a) the paper-era mmcv 0.x poly + linear warmup and (b) mmseg 1.x's
      LinearLR + PolyLR (mmengine schedulers).
  stage 2 (this venv): builds our model from a config of the same sizes, loads the mmseg
      checkpoint through DFRCheckpointer (the MODEL.WEIGHTS path), computes the same things
      and prints a table of max abs differences.

    .venv/bin/python tools/check_mmseg_parity.py --mmseg-python /work/mmseg_venv/bin/python
    .venv/bin/python tools/check_mmseg_parity.py --mmseg-python ... --write-fixture

`--write-fixture` also writes a compact copy (tests/fixtures/mmseg_parity/, ~4 MB) that
tests/modeling/test_mmseg_parity.py compares against without mmsegmentation installed.

`--photometric-fixture` (run with the mmseg venv's python) writes instead
tests/fixtures/mmseg_photometric/photometric.npz: mmseg's own `PhotoMetricDistortion` output for
fixed images and seeds 0-63, which tests/data/test_mapper.py compares `dfr.data.PhotometricDistortion`
with (same seed -> same draws -> the same uint8 image):

    /work/mmseg_venv/bin/python tools/check_mmseg_parity.py --photometric-fixture
Exit status: 0 when every comparison is within its tolerance, 1 otherwise.
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE_DIR = REPO / "tests" / "fixtures" / "mmseg_parity"
PHOTOMETRIC_FIXTURE = REPO / "tests" / "fixtures" / "mmseg_photometric" / "photometric.npz"
PHOTOMETRIC_SEEDS = 64  # 2^6 branch combinations (brightness, mode, contrast, sat., hue) on average

# ---- the shared experiment (both stages read these) ----
SEED = 0
SIZES = [(224, 224), (200, 264), (375, 500)]  # (H, W)
IMAGE_SEEDS = {size: 100 + i for i, size in enumerate(SIZES)}
TINY = dict(embed_dim=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], window_size=7,
            pretrain_img_size=224, channels=16, aux_channels=8, aux_index=2, num_classes=5,
            pool_scales=[1, 2, 3, 6])
MEAN = [123.675, 116.28, 103.53]  # RGB, mmseg's / ours
STD = [58.395, 57.12, 57.375]
TEST_SCALE = (2048, 512)
# Optimizer / schedule of mmseg's Swin UperNet config (the paper keeps all but lr = 3e-5;
# both sides use 6e-5 here so that the lr values compare one to one).
BASE_LR, WEIGHT_DECAY = 6e-5, 0.01
MAX_ITERS, WARMUP_ITERS, WARMUP_RATIO, POLY_POWER, MIN_LR = 40000, 1500, 1e-6, 1.0, 0.0
LR_ITERS = [0, 1, 750, 1499, 1500, 1501, 20000, 39999]
TOL = 1e-4  # fp32 max abs difference


def image(size):
    """The uint8 RGB (H, W, 3) test image for `size`; numpy's legacy RandomState stream is
    frozen across numpy versions, so both venvs (and the test) regenerate the same pixels."""
    rs = np.random.RandomState(IMAGE_SEEDS[size])
    return rs.randint(0, 256, size=(*size, 3), dtype=np.uint8)


def paper_era_poly_lr(it: int) -> float:
    """mmcv 0.x `PolyLrUpdaterHook` (by_epoch=False) with linear warmup, the official Swin
    segmentation schedule: regular = (base - min_lr) * (1 - it / max) ** power + min_lr;
    during warmup (it < warmup_iters): k = (1 - it / warmup_iters) * (1 - ratio),
    lr = regular * (1 - k). (The formula, written out; no mmcv code.)"""
    regular = (BASE_LR - MIN_LR) * (1 - it / MAX_ITERS) ** POLY_POWER + MIN_LR
    if it < WARMUP_ITERS:
        k = (1 - it / WARMUP_ITERS) * (1 - WARMUP_RATIO)
        return regular * (1 - k)
    return regular


# =====================================================================================
# Stage 1: mmsegmentation (run with the mmseg venv's python)
# =====================================================================================


def _install_mmcv_ops_stand_in():
    """mmcv-lite has no compiled ops; Swin / UPerHead / FCNHead never call them, but mmseg
    imports a few names at import time. Every name resolves to a class that raises on use."""
    import types

    class _StandIn(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)

            def _unavailable(*args, **kwargs):
                raise RuntimeError(f"mmcv.ops.{name} is not available (mmcv-lite stand-in)")

            return type(name, (), {"__init__": _unavailable, "__call__": _unavailable})

    sys.modules.setdefault("mmcv.ops", _StandIn("mmcv.ops"))


def _mmseg_model_cfg(frozen_stages=-1, arch=None):
    """mmseg's Swin-UperNet (+ FCN aux) config; `arch`: sizes as in TINY (default TINY), with an
    optional "drop_path_rate" (default 0.3). tools/benchmark_step.py builds Swin-B with it."""
    bn = dict(type="BN", requires_grad=True)
    t = TINY if arch is None else arch
    chans = [t["embed_dim"] * 2**i for i in range(4)]
    return dict(
        type="EncoderDecoder",
        data_preprocessor=dict(type="SegDataPreProcessor", mean=MEAN, std=STD, bgr_to_rgb=False,
                               pad_val=0, seg_pad_val=255),
        backbone=dict(
            type="SwinTransformer", pretrain_img_size=t["pretrain_img_size"],
            embed_dims=t["embed_dim"], patch_size=4, window_size=t["window_size"], mlp_ratio=4,
            depths=t["depths"], num_heads=t["num_heads"], strides=(4, 2, 2, 2),
            out_indices=(0, 1, 2, 3), qkv_bias=True, qk_scale=None, patch_norm=True,
            drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=t.get("drop_path_rate", 0.3),
            use_abs_pos_embed=False,
            act_cfg=dict(type="GELU"), norm_cfg=dict(type="LN", requires_grad=True),
            frozen_stages=frozen_stages,
        ),
        decode_head=dict(
            type="UPerHead", in_channels=chans, in_index=[0, 1, 2, 3],
            pool_scales=tuple(t["pool_scales"]), channels=t["channels"], dropout_ratio=0.1,
            num_classes=t["num_classes"], norm_cfg=bn, align_corners=False,
        ),
        auxiliary_head=dict(
            type="FCNHead", in_channels=chans[t["aux_index"]], in_index=t["aux_index"],
            channels=t["aux_channels"], num_convs=1, concat_input=False, dropout_ratio=0.1,
            num_classes=t["num_classes"], norm_cfg=bn, align_corners=False,
        ),
        train_cfg=dict(),
        test_cfg=dict(mode="whole"),
    )


def _randomise(model, seed):
    """Seeded random values for every float tensor, BN running statistics included, with
    magnitudes that keep activations O(1)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                v = 0.5 + 1.5 * torch.rand(t.shape, generator=g)
            elif name.endswith("running_mean") or name.endswith("bias"):
                v = 0.2 * torch.randn(t.shape, generator=g)
            elif t.dim() == 1:  # LayerNorm / BN weights
                v = 1.0 + 0.2 * torch.randn(t.shape, generator=g)
            elif name.endswith("relative_position_bias_table"):
                v = torch.randn(t.shape, generator=g)
            else:
                fan_in = t[0].numel()
                v = torch.randn(t.shape, generator=g) / math.sqrt(fan_in)
            t.copy_(v)


def stage1(work: Path):
    _install_mmcv_ops_stand_in()
    import mmseg
    import torch
    from mmengine.config import ConfigDict
    from mmengine.optim import build_optim_wrapper
    from mmengine.optim.scheduler import LinearLR, PolyLR
    from mmengine.registry import TRANSFORMS
    from mmengine.structures import PixelData  # noqa: F401  (SegDataSample field type)
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    register_all_modules()
    torch.manual_seed(SEED)
    model = MODELS.build(ConfigDict(_mmseg_model_cfg()))
    _randomise(model, SEED)
    model.eval()
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    meta = {"mmseg_version": mmseg.__version__, "seed": SEED, "tiny": json.dumps(TINY),
            "note": "random weights written by tools/check_mmseg_parity.py stage 1"}
    torch.save({"meta": meta, "state_dict": sd}, work / "mmseg_checkpoint.pth")

    ref = {"outputs": {}, "resize": {}}
    with torch.no_grad():
        for size in SIZES:
            img = image(size)
            chw = torch.from_numpy(img).permute(2, 0, 1).contiguous()
            sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size))
            data = model.data_preprocessor({"inputs": [chw], "data_samples": [sample]}, False)
            x = data["inputs"]
            feats = model.extract_feat(x)
            result = model.test_step({"inputs": [chw], "data_samples": [sample]})[0]
            key = f"{size[0]}x{size[1]}"
            ref["outputs"][key] = {
                "input_sum": int(img.astype(np.int64).sum()),
                "backbone": [f.clone() for f in feats],
                "decode_logits": model.decode_head.forward(feats).clone(),  # 1/4
                "logits": result.seg_logits.data.clone(),  # test_step, at input size
                "aux_logits": model.auxiliary_head.forward(feats).clone(),
            }
            resize = TRANSFORMS.build(dict(type="Resize", scale=TEST_SCALE, keep_ratio=True))
            out = resize({"img": img.copy(), "img_shape": size, "ori_shape": size})
            ref["resize"][key] = torch.from_numpy(np.ascontiguousarray(out["img"]))

    # parameters that mmseg's SwinTransformer freezes for frozen_stages = k (train mode)
    frozen = {}
    for k in range(0, 5):
        m = MODELS.build(ConfigDict(_mmseg_model_cfg(frozen_stages=k))).backbone
        m.train()
        frozen[str(k)] = sorted("backbone." + n for n, p in m.named_parameters()
                                if not p.requires_grad)

    # optimizer groups of the Swin config's paramwise_cfg (its per-parameter log muted)
    import logging

    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.WARNING)
    wrapper = build_optim_wrapper(model, dict(
        type="OptimWrapper",
        optimizer=dict(type="AdamW", lr=BASE_LR, betas=(0.9, 0.999), weight_decay=WEIGHT_DECAY),
        paramwise_cfg=dict(custom_keys={
            "absolute_pos_embed": dict(decay_mult=0.0),
            "relative_position_bias_table": dict(decay_mult=0.0),
            "norm": dict(decay_mult=0.0),
        }),
    ))
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {}
    for g in wrapper.optimizer.param_groups:
        for p in g["params"]:
            groups[names[id(p)]] = {"lr": g["lr"], "weight_decay": g["weight_decay"]}

    # LR: (a) paper era formula; (b) mmseg 1.x LinearLR + PolyLR through mmengine
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=BASE_LR)
    scheds = [
        LinearLR(opt, start_factor=WARMUP_RATIO, by_epoch=False, begin=0, end=WARMUP_ITERS),
        PolyLR(opt, eta_min=MIN_LR, power=POLY_POWER, begin=WARMUP_ITERS, end=MAX_ITERS,
               by_epoch=False),
    ]
    lr_1x = {}
    for it in range(max(LR_ITERS) + 1):
        if it in LR_ITERS:
            lr_1x[str(it)] = opt.param_groups[0]["lr"]
        opt.step()
        for s in scheds:
            s.step()
    info = {
        "mmseg_version": mmseg.__version__,
        "tiny": TINY,
        "sizes": [list(s) for s in SIZES],
        "param_groups": groups,
        "frozen_stages": frozen,
        "lr_paper_era": {str(it): paper_era_poly_lr(it) for it in LR_ITERS},
        "lr_mmseg_1x": lr_1x,
        "resize_shapes": {k: list(v.shape) for k, v in ref["resize"].items()},
    }
    torch.save(ref, work / "mmseg_reference.pt")
    (work / "mmseg_reference.json").write_text(json.dumps(info, indent=1, sort_keys=True))
    print(f"stage 1: mmseg {mmseg.__version__}: wrote {work}")


# =====================================================================================
# Stage 2: this project (run with the project's venv)
# =====================================================================================


def our_cfg(weights: str):
    """Our config for the same tiny network, on top of the paper's VOC config (solver)."""
    from dfr.config import get_dfr_cfg

    t = TINY
    cfg = get_dfr_cfg(
        REPO / "projects/DFR/configs/voc/dfr_swin_base_bs16_40k.yaml",
        ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", weights, "MODEL.SWIN.PRETRAINED", "",
         "MODEL.SWIN.SIZE", "custom", "MODEL.SWIN.EMBED_DIM", t["embed_dim"],
         "MODEL.SWIN.DEPTHS", t["depths"], "MODEL.SWIN.NUM_HEADS", t["num_heads"],
         "MODEL.SWIN.WINDOW_SIZE", t["window_size"],
         "MODEL.SWIN.PRETRAIN_IMG_SIZE", t["pretrain_img_size"],
         "MODEL.UPERNET.CHANNELS", t["channels"], "MODEL.UPERNET.POOL_SCALES", t["pool_scales"],
         "MODEL.AUX_HEAD.CHANNELS", t["aux_channels"],
         "MODEL.AUX_HEAD.IN_FEATURE", f"res{t['aux_index'] + 2}",
         "MODEL.SEM_SEG_HEAD.NUM_CLASSES", t["num_classes"], "MODEL.SEM_SEG_HEAD.NORM", "BN",
         "SOLVER.BASE_LR", BASE_LR, "SOLVER.WEIGHT_DECAY", WEIGHT_DECAY,
         "SOLVER.MAX_ITER", MAX_ITERS, "SOLVER.WARMUP_ITERS", WARMUP_ITERS,
         "SOLVER.WARMUP_FACTOR", WARMUP_RATIO, "SOLVER.POLY_LR_POWER", POLY_POWER],
    )
    return cfg


def build_our_model(weights: str):
    """Our model with the mmseg checkpoint loaded through the MODEL.WEIGHTS path."""
    import torch
    from detectron2.modeling import build_model

    from dfr.engine import DFRCheckpointer

    cfg = our_cfg(weights)
    torch.manual_seed(1)  # anything the checkpoint does not set differs from mmseg's init
    model = build_model(cfg).eval()
    DFRCheckpointer.from_config(cfg, model, save_dir="").load(cfg.MODEL.WEIGHTS)
    return cfg, model


def our_outputs(model, img: np.ndarray):
    """Our counterparts of stage 1's outputs for one uint8 RGB image (H, W, 3)."""
    import torch

    chw = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    h, w = img.shape[:2]
    with torch.no_grad():
        x = model.normalize(chw[None])
        feats = model.backbone(x)
        names = sorted(feats)
        out = {
            "backbone": [feats[n] for n in names],
            "decode_logits": model.sem_seg_head(model.fusion(feats)),
            "aux_logits": model.aux_head(feats) if model.aux_head is not None else None,
        }
        if hasattr(model, "predict_logits"):  # mmseg's encode_decode at input size
            out["logits"] = model.predict_logits(chw[None])
        # the Detectron2 entry point: probabilities at the original size
        out["probs"] = model([{"image": chw, "height": h, "width": w}])[0]["sem_seg"][None]
    return out


def our_resize(img: np.ndarray):
    """The project's test-time keep-ratio resize of a uint8 image, or None if absent."""
    try:
        from dfr.data.transforms import KeepRatioResize
    except ImportError:
        return None
    from detectron2.data import transforms as T

    aug = T.AugmentationList([KeepRatioResize(scale=TEST_SCALE)])
    inp = T.AugInput(img.copy())
    aug(inp)
    return inp.image


def mmseg_param_names(model, names):
    """{mmseg parameter name: our name or None} (dfr.engine.checkpoint's key map)."""
    from dfr.engine.mmseg_keys import mmseg_param_name_map

    return mmseg_param_name_map(model, names)


def our_param_groups(cfg, model):
    """{our parameter name: {"lr", "weight_decay"}} from the project's optimizer."""
    from dfr.engine.solver import build_optimizer

    opt = build_optimizer(cfg, model)
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for g in opt.param_groups:
        for p in g["params"]:
            out[names[id(p)]] = {"lr": g["lr"], "weight_decay": g["weight_decay"]}
    return out


def our_lrs(cfg, iters):
    """{iteration: lr} of the project's scheduler (SOLVER.* of `cfg`), one parameter."""
    import torch

    from dfr.engine.solver import build_lr_scheduler

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=cfg.SOLVER.BASE_LR)
    sched = build_lr_scheduler(cfg, opt)
    out = {}
    for it in range(max(iters) + 1):
        if it in iters:
            out[it] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return out


def _maxdiff(a, b):
    import torch

    if a is None or b is None:
        return float("nan")
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max()) if a.numel() else 0.0


def compare(ref, info, cfg, model, sub=None):
    """Rows (what, max abs diff or mismatch count, tolerance, note). `ref` holds stage 1's
    outputs (full, or subsampled as in the fixture: `sub` = {"feat": s, "logits": s})."""
    import torch

    sub = sub or {}
    rows = []
    for size in SIZES:
        key = f"{size[0]}x{size[1]}"
        r = ref["outputs"][key]
        img = image(size)
        assert int(img.astype(np.int64).sum()) == r["input_sum"], "test image differs"
        o = our_outputs(model, img)
        fs, ls = sub.get("feat", 1), sub.get("logits", 1)
        for i, (a, b) in enumerate(zip(o["backbone"], r["backbone"])):
            d = _maxdiff(a[..., ::fs, ::fs], b)
            rows.append((f"{key} backbone res{i + 2} {tuple(a.shape[-2:])}", d, TOL, ""))
        rows.append((f"{key} decode logits 1/4", _maxdiff(o["decode_logits"], r["decode_logits"]),
                     TOL, ""))
        rows.append((f"{key} aux logits", _maxdiff(o["aux_logits"], r["aux_logits"]), TOL, ""))
        if "logits" in o:
            rows.append((f"{key} logits at input size (predict_logits)",
                         _maxdiff(o["logits"][..., ::ls, ::ls], r["logits"][None]), TOL, ""))
        probs = torch.as_tensor(r["logits"]).float().softmax(0)[None]
        rows.append((f"{key} model(batched_inputs) probs vs softmax(mmseg logits)",
                     _maxdiff(o["probs"][..., ::ls, ::ls], probs), TOL, ""))
        ours = our_resize(img)
        want = ref["resize"][key]
        shape = tuple(ref.get("resize_shape", {}).get(key, want.shape))
        if ours is None:
            rows.append((f"{key} test resize -> {shape[:2]}", float("nan"), 0,
                         "dfr.data.transforms.KeepRatioResize missing"))
        elif tuple(ours.shape) != shape:
            rows.append((f"{key} test resize -> {shape[:2]}", float("inf"), 0,
                         f"ours {tuple(ours.shape[:2])}"))
        else:
            rs = ls if "resize_sha256" in ref else 1
            d = _maxdiff(ours[::rs, ::rs].astype(np.int64), want.numpy().astype(np.int64))
            note = ""
            if "resize_sha256" in ref and _sha256(ours) != ref["resize_sha256"][key]:
                d, note = max(d, 1.0), "sha256 of the full image differs"
            rows.append((f"{key} test resize -> {shape[:2]}", d, 0, note))

    # optimizer groups, per parameter (mmseg names mapped to ours)
    mm_groups = info["param_groups"]
    ours = our_param_groups(cfg, model)
    name_map = mmseg_param_names(model, list(mm_groups))
    bad_lr, bad_wd, unmapped, examples = 0, 0, [], []
    for mm_name, g in mm_groups.items():
        n = name_map.get(mm_name)
        if n is None or n not in ours:
            unmapped.append(mm_name)
            continue
        if not math.isclose(ours[n]["lr"], g["lr"], rel_tol=1e-9):
            bad_lr += 1
            examples.append(f"{n}: lr {ours[n]['lr']:g} vs {g['lr']:g}")
        if not math.isclose(ours[n]["weight_decay"], g["weight_decay"], abs_tol=1e-12):
            bad_wd += 1
            examples.append(f"{n}: wd {ours[n]['weight_decay']:g} vs {g['weight_decay']:g}")
    extra = sorted(set(ours) - {name_map.get(n) for n in mm_groups})
    note = "; ".join(examples[:3])
    rows.append((f"optimizer lr per parameter ({len(mm_groups)} params)", bad_lr, 0, note))
    rows.append(("optimizer weight decay per parameter", bad_wd, 0, note))
    rows.append(("parameters without counterpart (mmseg / ours)", len(unmapped), 0,
                 f"ours only: {extra[:4]}{'...' if len(extra) > 4 else ''}" if extra else ""))
    lrs = our_lrs(cfg, [int(i) for i in info["lr_paper_era"]])
    for it in sorted(info["lr_paper_era"], key=int):
        want, got = info["lr_paper_era"][it], lrs[int(it)]
        rows.append((f"LR it {it}: ours {got:.5g} vs mmcv 0.x {want:.5g} (rel. diff)",
                     abs(got - want) / want if want else abs(got), 1e-6,
                     f"mmseg 1.x LinearLR+PolyLR: {info['lr_mmseg_1x'][it]:.5g}"))
    # frozen stages: mmseg's list for k, mapped, vs ours
    from dfr.modeling.backbone import D2SwinTransformer

    t = TINY
    for k, names in info["frozen_stages"].items():
        bb = D2SwinTransformer(embed_dim=t["embed_dim"], depths=t["depths"],
                               num_heads=t["num_heads"], window_size=t["window_size"],
                               frozen_stages=int(k)).train()
        holder = torch.nn.Module()
        holder.backbone = bb
        m = mmseg_param_names(holder, names)
        want = sorted(m[n] for n in names if m.get(n))
        got = sorted("backbone." + n for n, p in bb.named_parameters() if not p.requires_grad)
        diff = sorted(set(want) ^ set(got))
        rows.append((f"FROZEN_STAGES={k}: frozen parameters ({len(names)} in mmseg)",
                     len(diff) + (len(names) - len(want)), 0, ", ".join(diff[:3])))
    return rows


def print_table(rows, out=sys.stdout):
    fails = 0
    print(f"| {'comparison':<66} | {'max abs diff':>12} | {'tol':>6} | ok |", file=out)
    print(f"|{'-' * 68}|{'-' * 14}|{'-' * 8}|----|", file=out)
    for what, d, tol, note in rows:
        ok = d <= tol  # nan: not comparable -> fails
        fails += not ok
        val = f"{d:.3g}" if isinstance(d, float) else str(d)
        line = f"| {what:<66} | {val:>12} | {tol:>6.0e} | {'ok' if ok else 'NO'} |"
        print(line + (f" {note}" if note else ""), file=out)
    print(f"{len(rows) - fails}/{len(rows)} comparisons within tolerance", file=out)
    return fails


def stage2(work: Path, write_fixture: bool):
    import torch

    ref = torch.load(work / "mmseg_reference.pt", weights_only=True)
    info = json.loads((work / "mmseg_reference.json").read_text())
    cfg, model = build_our_model(str(work / "mmseg_checkpoint.pth"))
    fails = print_table(compare(ref, info, cfg, model))
    if write_fixture:
        write_fixture_files(work, ref, info)
    return fails


# Fixture: backbone maps at [::2, ::2], logits at input size at [::3, ::3] (a few MB).
FIXTURE_SUB = {"feat": 2, "logits": 3}


def _sha256(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def write_fixture_files(work: Path, ref, info, dest: Path = FIXTURE_DIR):
    import shutil

    import torch

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "mmseg_checkpoint.pth", dest / "mmseg_checkpoint.pth")
    fs, ls = FIXTURE_SUB["feat"], FIXTURE_SUB["logits"]
    small = {"outputs": {}, "subsample": FIXTURE_SUB, "resize": {}, "resize_sha256": {},
             "resize_shape": {}}
    for key, r in ref["resize"].items():  # uint8 noise does not compress: hash + subsample
        small["resize"][key] = r[::ls, ::ls].contiguous()
        small["resize_sha256"][key] = _sha256(r.numpy())
        small["resize_shape"][key] = list(r.shape)
    for key, r in ref["outputs"].items():
        small["outputs"][key] = {
            "input_sum": r["input_sum"],
            "backbone": [f[..., ::fs, ::fs].contiguous() for f in r["backbone"]],
            "decode_logits": r["decode_logits"],
            "logits": r["logits"][..., ::ls, ::ls].contiguous(),
            "aux_logits": r["aux_logits"],
        }
    torch.save(small, dest / "mmseg_reference.pt")
    (dest / "mmseg_reference.json").write_text(json.dumps(info, indent=1, sort_keys=True))
    size = sum(p.stat().st_size for p in dest.iterdir()) / 2**20
    print(f"fixture written to {dest} ({size:.1f} MiB)")


# ---- photometric distortion (mmseg's venv) ------------------------------------------------
def photometric_input() -> np.ndarray:
    """(32, 24, 3) uint8 BGR: a 24x24 crop of tests/fixtures/real_voc/jpg/2007_000032.jpg
    (stored as decoded, so the JPEG decoder does not matter) over an 8x24 ramp holding 0 and 255
    in every channel (the clipping ends)."""
    import cv2

    jpeg = REPO / "tests/fixtures/real_voc/jpg/2007_000032.jpg"
    photo = cv2.imread(str(jpeg), cv2.IMREAD_COLOR)[100:124, 200:224]
    x = np.linspace(0, 255, 24).round().astype(np.uint8)
    ramp = np.stack([np.tile(x, (8, 1)), np.tile(x[::-1], (8, 1)), np.full((8, 24), 128)], -1)
    ramp[:2] = 0
    ramp[2:4] = 255
    return np.ascontiguousarray(np.concatenate([photo, ramp.astype(np.uint8)], 0))


def write_photometric_fixture(out: Path = PHOTOMETRIC_FIXTURE):
    """mmseg's PhotoMetricDistortion (defaults: 32, (0.5, 1.5), (0.5, 1.5), 18) on
    `photometric_input()` for seeds 0..63; mmseg reads BGR, the fixture stores the RGB input,
    the RGB outputs and the next np.random.rand() after each (the number of draws)."""
    import cv2

    _install_mmcv_ops_stand_in()
    import mmseg
    from mmseg.datasets.transforms import PhotoMetricDistortion

    bgr = photometric_input()
    aug = PhotoMetricDistortion()
    outputs, next_draw = [], []
    for seed in range(PHOTOMETRIC_SEEDS):
        np.random.seed(seed)
        img = aug.transform({"img": bgr.copy()})["img"]
        assert img.dtype == np.uint8 and img.shape == bgr.shape
        outputs.append(img[..., ::-1])
        next_draw.append(np.random.rand())
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out, image=bgr[..., ::-1], seeds=np.arange(PHOTOMETRIC_SEEDS), outputs=np.stack(outputs),
        next_draw=np.array(next_draw), mmseg_version=np.array(mmseg.__version__),
        numpy_version=np.array(np.__version__), opencv_version=np.array(cv2.__version__),
    )  # fmt: skip
    changed = sum(int((o != bgr[..., ::-1]).any()) for o in outputs)
    print(f"wrote {out}: {PHOTOMETRIC_SEEDS} seeds ({changed} change the image), "
          f"mmseg {mmseg.__version__}")  # fmt: skip


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--mmseg-python", default=os.environ.get("MMSEG_PYTHON"),
                   help="python of the venv with mmsegmentation (runs stage 1)")
    p.add_argument("--work-dir", help="where the stages exchange files (default: temporary)")
    p.add_argument("--stage", choices=["1", "2", "both"], default="both",
                   help="1: build + save the mmseg model (mmseg's venv); 2: compare (this venv)")
    p.add_argument("--write-fixture", action="store_true",
                   help=f"also write the compact fixture into {FIXTURE_DIR.relative_to(REPO)}")
    p.add_argument("--photometric-fixture", action="store_true",
                   help="only write the photometric-distortion fixture "
                        f"{PHOTOMETRIC_FIXTURE.relative_to(REPO)} (run with mmseg's python)")
    args = p.parse_args(argv)
    if args.photometric_fixture:
        write_photometric_fixture()
        return 0
    tmp = None
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="mmseg_parity_")
        work = Path(tmp.name)
    if args.stage == "1":
        stage1(work)
        return 0
    if args.stage == "both":
        if not args.mmseg_python:
            p.error("--mmseg-python (or MMSEG_PYTHON) is required to run stage 1")
        cmd = [args.mmseg_python, str(Path(__file__).resolve()), "--stage", "1",
               "--work-dir", str(work)]
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        subprocess.run(cmd, check=True, env=env)
    fails = stage2(work, args.write_fixture)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
