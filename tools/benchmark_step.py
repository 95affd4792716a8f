#!/usr/bin/env python
"""Training-step time, peak memory and inference time of the paper's model, side by side with
mmsegmentation's own Swin-UperNet: one command, one process per side, the same inputs.

Rows, each in fp32, bf16 and fp16 (+ GradScaler), batch B at S x S:
  mmseg_pce  mmseg 1.2.2's EncoderDecoder (SwinTransformer + UPerHead + FCNHead aux 0.4) of the
             same sizes, CE on the scribbles (avg over labeled pixels), run by `--mmseg-python`
             (a separate interpreter, the recipe of tools/check_mmseg_parity.py)
  pce        this project's config with pCE (+ aux) only (MODEL.DFR.USE_DFR/FD/FR off)
  full       the same config with every loss on: Lpce + λ1·Ldfr + λ2·(Lfd + Lfr) (+ aux),
             γ = 0.01 (< 1/C) so that M (Eq. 7) labels every pixel, as late in training (a random
             model's M is empty and Lfd / Lfr would be 0)
  pce_compiled, full_compiled
             the pce / full rows with SOLVER.COMPILE (--compile-mode, default "default":
             torch.compile of the network and the criterion; the warm-up steps compile)
  pairwise   Ldfr + Lfd + Lfr alone (`dfr.modeling.losses.pairwise_losses`, forward + backward,
             the torch window pass) on the loss map of the full row (B, C / d / 3,
             S/LOSS_STRIDE, S/LOSS_STRIDE), every pixel labeled (the most pairs); probs in
             float32, feats in the autocast dtype
  pairwise_triton
             the same with the fused Triton kernels (CUDA only)
  infer_ss   inference, ms per VOC-sized image (500 x 375), single scale (SemSegTTA, tta=False)
  infer_tta  the same with TEST.AUG.SCALES x flip (the project's multi-scale test)
A training step is: autocast forward, sum of the losses, GradScaler backward (a disabled
scaler for fp32 / bf16), AdamW step (torch.optim.AdamW on both sides), zero_grad. Time: median
of --iters steps after --warmup, torch.cuda.synchronize() around each step on CUDA. Peak
memory: torch.cuda.max_memory_allocated() over the row (model, optimizer state and
activations; cudnn.benchmark off, as mmseg's model zoo measures it); on CPU no per-row peak
exists, the row says n/a and the JSON holds the process's peak RSS. Launches: the kernels of
one more step under torch.profiler (CUDA kernels on a GPU; on a CPU the leaf ATen ops that
would launch one plus inductor's generated kernels).

    .venv/bin/python tools/benchmark_step.py --device cuda --mmseg-python /opt/mmseg/bin/python \\
        --json benchmark.json
    .venv/bin/python tools/benchmark_step.py --device cpu --tiny --json /tmp/bench.json

`--tiny`: the instant-test config (a tiny Swin), 64 x 64 crops and a 100 x 75 image, a few
steps: the same code in seconds on CPU (tests/tools/test_benchmark_step.py). On CPU fp16 is skipped
(see FP16_CPU_SKIP); the mmseg row runs only with --mmseg-python.
"""
import warnings

# detectron2 / fvcore call torch.jit.script / interface at import: recent torch warns. Set
# here, not by importing dfr: the mmseg worker runs this file in an interpreter without dfr.
warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
PAPER_CONFIG = REPO / "projects/DFR/configs/voc/dfr_swin_base_bs16_40k.yaml"
TINY_CONFIG = (REPO / "projects/DFR/configs/quick_schedules"
               / "dfr_swin_tiny_synthetic_instant_test.yaml")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
TRAIN_ROWS = ("mmseg_pce", "pce", "full", "full_ckpt", "pce_compiled", "full_compiled",
              "pairwise", "pairwise_triton")
INFER_ROWS = ("infer_ss", "infer_tta")
FP16_CPU_SKIP = ("fp16 + GradScaler is a CUDA configuration (tensor cores); PyTorch's CPU "
                 "float16 kernels are generic paths whose time says nothing about it")
VOC_IMAGE = (375, 500)  # (H, W) of a typical VOC image
TINY_IMAGE = (75, 100)
SEED = 0
LR, BETAS, WEIGHT_DECAY = 3e-5, (0.9, 0.999), 0.01  # the paper's AdamW


# =====================================================================================
# Shared by both sides (no detectron2 / dfr / mmseg import at module level)
# =====================================================================================


def make_batch(batch: int, size: int, num_classes: int, seed: int = SEED):
    """uint8 RGB images (B, 3, S, S) and scribble-like labels (B, S, S) (255 = unlabeled):
    a few horizontal / vertical strokes of random classes, ~5 % of the pixels. numpy's legacy
    RandomState stream is frozen across versions, so both interpreters build the same batch."""
    rs = np.random.RandomState(seed)
    imgs = rs.randint(0, 256, size=(batch, 3, size, size), dtype=np.uint8)
    labels = np.full((batch, size, size), 255, dtype=np.int64)
    width = max(1, size // 64)
    for b in range(batch):
        for _ in range(6):
            c = rs.randint(0, num_classes)
            at = rs.randint(0, size - width)
            lo, hi = sorted(rs.randint(0, size, size=2))
            if rs.rand() < 0.5:
                labels[b, at:at + width, lo:hi + 1] = c
            else:
                labels[b, lo:hi + 1, at:at + width] = c
    return torch.from_numpy(imgs), torch.from_numpy(labels)


def autocast(device: str, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def grad_scaler(device: str, dtype):
    """GradScaler for fp16; a disabled one (a pass-through) for fp32 / bf16."""
    return torch.amp.GradScaler(device.split(":")[0], enabled=dtype == torch.float16)


def _sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(fn, device: str, iters: int, warmup: int):
    """Run fn() warmup + iters times; returns (median ms, all ms, peak MiB or None, first
    result after the warm-up)."""
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        fn()
    times, first = [], None
    for i in range(iters):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
        if i == 0:
            first = out
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    return statistics.median(times), times, peak, first


def train_step_fn(forward, params, device: str, dtype):
    """One training step as DFRAMPTrainer runs it; forward() -> {name: loss}. Returns the
    step function, which returns the loss values {name: float} of its step."""
    opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
    scaler = grad_scaler(device, dtype)

    def step():
        with autocast(device, dtype):
            losses = forward()
            total = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()
        return {k: float(v.detach()) for k, v in losses.items()}

    return step


def count_launches(fn, device: str) -> int:
    """Kernels launched by one fn() under torch.profiler: CUDA kernels on a GPU; on a CPU the
    leaf ATen ops that launch one (views and allocations excluded) plus generated kernels."""
    from torch.profiler import ProfilerActivity, profile

    from dfr_tools.profiling import launching_ops

    cuda = device.startswith("cuda")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        fn()
        _sync(device)
    events = prof.events()
    if cuda:
        return sum(1 for e in events if e.device_type.name == "CUDA")
    launching, _ = launching_ops(events)
    generated = [e for e in events if e.name.startswith(("cpp_fused", "_fwd_kernel",
                                                         "_bwd_kernel"))]
    return len(launching) + len(generated)


def row(name, precision, what, result=None, skipped=None, **extra):
    r = {"row": name, "precision": precision, "what": what, "ms": None, "ms_all": [],
         "peak_mib": None, "losses": {}, "skipped": skipped, "launches": None}
    if result is not None:
        ms, times, peak, first = result
        r.update(ms=ms, ms_all=times, peak_mib=peak)
        if isinstance(first, dict):
            r["losses"] = first
    r.update(extra)
    return r


def _precisions(names, device):
    """[(name, dtype, skip reason or None)]."""
    out = []
    for p in names:
        skip = FP16_CPU_SKIP if (p == "fp16" and device == "cpu") else None
        if p == "bf16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
            skip = "this GPU has no bfloat16 support"
        out.append((p, PRECISIONS[p], skip))
    return out


# =====================================================================================
# mmseg side (run with --mmseg-python's interpreter; imports mmseg, never dfr)
# =====================================================================================


def _parity_tool():
    import check_mmseg_parity  # tools/ is this script's directory, first on sys.path

    return check_mmseg_parity


def mmseg_worker(req: dict) -> dict:
    """Row (a) for every precision of the request; returns {"rows", "versions"}."""
    parity = _parity_tool()
    parity._install_mmcv_ops_stand_in()
    import mmseg
    from mmengine.config import ConfigDict
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    register_all_modules()
    device, size, batch = req["device"], req["size"], req["batch"]
    torch.backends.cudnn.benchmark = False
    if device == "cpu":
        torch.set_num_threads(req["threads"])
    imgs, labels = make_batch(batch, size, req["arch"]["num_classes"])
    samples = []
    for lab in labels:
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=lab[None])
        samples.append(s)
    raw = {"inputs": list(imgs), "data_samples": samples}
    cfg = parity._mmseg_model_cfg(arch=req["arch"])
    cfg["data_preprocessor"]["size"] = (size, size)  # training pads to the crop (mmseg config)
    for head, weight in (("decode_head", 1.0), ("auxiliary_head", 0.4)):
        cfg[head]["loss_decode"] = dict(type="CrossEntropyLoss", use_sigmoid=False,
                                        loss_weight=weight, avg_non_ignore=True)
    rows = []
    for pname, dtype, skip in _precisions(req["precisions"], device):
        what = "mmseg Swin-UperNet + FCN aux, CE on scribbles"
        if skip:
            rows.append(row("mmseg_pce", pname, what, skipped=skip))
            continue
        torch.manual_seed(SEED)
        model = MODELS.build(ConfigDict(cfg)).to(device).train()

        def forward():
            data = model.data_preprocessor(raw, True)
            losses = model(**data, mode="loss")
            return {k: v for k, v in losses.items() if "loss" in k}

        step = train_step_fn(forward, [p for p in model.parameters() if p.requires_grad],
                             device, dtype)
        rows.append(row("mmseg_pce", pname, what,
                        measure(step, device, req["iters"], req["warmup"])))
        del model, step
    import mmcv
    import mmengine

    versions = {"mmseg": mmseg.__version__, "mmcv": mmcv.__version__,
                "mmengine": mmengine.__version__, "torch": torch.__version__,
                "python": platform.python_version()}
    return {"rows": rows, "versions": versions}


def run_mmseg(python: str, req: dict) -> dict:
    """Row (a) from the separate interpreter: this file in --mmseg-worker mode. Its output goes
    to stderr; if it fails, the rows say so (the other rows are still measured)."""
    with tempfile.TemporaryDirectory() as d:
        req_path, out_path = Path(d) / "request.json", Path(d) / "result.json"
        req_path.write_text(json.dumps(req))
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # nothing of this venv leaks into mmseg's
        proc = subprocess.run([python, str(Path(__file__).resolve()), "--mmseg-worker",
                               str(req_path), "--json", str(out_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sys.stderr.write(proc.stdout)
        if proc.returncode == 0:
            return json.loads(out_path.read_text())
        last = (proc.stdout.strip().splitlines() or ["no output"])[-1][:200]
        reason = f"mmseg side failed (exit {proc.returncode}): {last}"
        return {"rows": [row("mmseg_pce", p, "mmseg Swin-UperNet", skipped=reason)
                         for p in req["precisions"]], "versions": None}


# =====================================================================================
# This project's side
# =====================================================================================


def build_cfg(args):
    from dfr.config import get_dfr_cfg

    config = args.config_file or (TINY_CONFIG if args.tiny else PAPER_CONFIG)
    # Training pads every image to INPUT.CROP.SIZE (mmseg's Pad): the crop is the measured size.
    opts = ["MODEL.SWIN.PRETRAINED", "", "MODEL.DEVICE", args.device,
            "INPUT.CROP.SIZE", f"({args.size}, {args.size})", *args.opts]
    cfg = get_dfr_cfg(config, opts, cpu_fallback=False)
    return cfg, str(Path(config).resolve().relative_to(REPO)) if str(config).startswith(
        str(REPO)) else str(config)


def mmseg_arch(cfg) -> dict:
    """The sizes of the config's model, as check_mmseg_parity's TINY spells them."""
    from dfr.modeling.backbone.swin import SWIN_SIZES

    s = cfg.MODEL.SWIN
    if s.SIZE in SWIN_SIZES:
        _, embed_dim, depths, heads = SWIN_SIZES[s.SIZE]
    else:
        embed_dim, depths, heads = s.EMBED_DIM, s.DEPTHS, s.NUM_HEADS
    return dict(embed_dim=embed_dim, depths=list(depths), num_heads=list(heads),
                window_size=s.WINDOW_SIZE, pretrain_img_size=s.PRETRAIN_IMG_SIZE,
                channels=cfg.MODEL.UPERNET.CHANNELS, aux_channels=cfg.MODEL.AUX_HEAD.CHANNELS,
                aux_index=2, num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
                pool_scales=list(cfg.MODEL.UPERNET.POOL_SCALES),
                drop_path_rate=s.DROP_PATH_RATE)


def _build_model(cfg, *opts):
    from detectron2.modeling import build_model

    c = cfg.clone()
    c.merge_from_list(list(opts))
    torch.manual_seed(SEED)
    return build_model(c)


PCE_ONLY = ("MODEL.DFR.USE_DFR", False, "MODEL.DFR.USE_FD", False, "MODEL.DFR.USE_FR", False)


def our_train_rows(cfg, args, pname, dtype, out=None):
    """Rows pce, full, full_ckpt, pce_compiled, full_compiled, pairwise, pairwise_triton
    (those in args.rows), appended to `out` as measured."""
    device = args.device
    imgs, labels = make_batch(args.batch, args.size, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES)
    batch = [{"image": im, "sem_seg": lab, "height": args.size, "width": args.size}
             for im, lab in zip(imgs, labels)]
    rows = [] if out is None else out
    full = "DFR config, Lpce + Ldfr + Lfd + Lfr (+ aux), γ = 0.01"
    pce = "DFR config, pCE (+ aux) only"
    compiled = ("SOLVER.COMPILE", args.compile_mode)
    for name, opts, what in (("pce", PCE_ONLY, pce),
                             ("full", (), full),
                             ("full_ckpt", ("MODEL.SWIN.USE_CHECKPOINT", True),
                              full + ", Swin activation checkpointing"),
                             ("pce_compiled", PCE_ONLY + compiled,
                              f"{pce}, torch.compile mode {args.compile_mode}"),
                             ("full_compiled", compiled,
                              f"{full}, torch.compile mode {args.compile_mode}")):
        if name not in args.rows:
            continue
        # γ = 0.01 < 1/C: M labels every pixel, as late in training (a random model's M is empty)
        model = _build_model(cfg, "MODEL.DFR.GAMMA", 0.01, *opts).train()
        if name.endswith("_compiled"):
            model.compile_training(args.compile_mode)
        step = train_step_fn(lambda: model(batch),
                             [p for p in model.parameters() if p.requires_grad], device, dtype)
        rows.append(row(name, pname, what, measure(step, device, args.iters, args.warmup),
                        launches=count_launches(step, device)))
        del model, step
    for name, impl in (("pairwise", "torch"), ("pairwise_triton", "triton")):
        if name in args.rows:
            rows.append(pairwise_row(cfg, args, pname, dtype, name, impl))
    return rows


def pairwise_row(cfg, args, pname, dtype, name="pairwise", impl="torch"):
    from dfr.modeling.criterion import DFRCriterion
    from dfr.modeling.losses import pairwise_losses

    device, d = args.device, cfg.MODEL.DFR
    h = w = -(-args.size // d.LOSS_STRIDE)
    b, c = args.batch, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    what = f"Ldfr + Lfd + Lfr alone ({impl}), fwd + bwd, ({b}, {c} / {d.FEAT_DIM} / 3, {h}, {w})"
    if impl == "triton" and not device.startswith("cuda"):
        return row(name, pname, what, skipped="the Triton kernels run on CUDA")
    params = DFRCriterion.from_config(cfg)["pairwise"]
    g = torch.Generator().manual_seed(SEED)
    logits = torch.randn(b, c, h, w, generator=g).to(device).requires_grad_()
    feats = torch.rand(b, d.FEAT_DIM, h, w, generator=g).to(device, dtype or torch.float32)
    feats.requires_grad_()
    image = torch.randn(b, 3, h, w, generator=g).to(device, dtype or torch.float32)
    labels = torch.randint(0, c, (b, h, w), generator=g).to(device)
    valid = torch.ones(b, h, w, dtype=torch.bool, device=device)

    def step():
        with autocast(device, dtype):
            probs = logits.float().softmax(1)
            out = pairwise_losses(probs, image, feats, labels, valid, params, impl=impl,
                                  validate=False)
            total = d.LAMBDA_DFR * out["dfr"] + d.LAMBDA_FEAT * (out["fd"] + out["fr"])
        total.backward()
        logits.grad = feats.grad = None
        return {f"loss_{k}": float(v.detach()) for k, v in out.items()}

    return row(name, pname, what, measure(step, device, args.iters, args.warmup),
               launches=count_launches(step, device))


def our_infer_rows(cfg, args, pname, dtype, out=None):
    """Rows infer_ss, infer_tta, appended to `out` as measured."""
    from dfr.evaluation import SemSegTTA

    device = args.device
    ih, iw = TINY_IMAGE if args.tiny else VOC_IMAGE
    rs = np.random.RandomState(SEED + 1)
    img = torch.from_numpy(rs.randint(0, 256, size=(3, ih, iw), dtype=np.uint8))
    inputs = [{"image": img, "height": ih, "width": iw}]
    model = _build_model(cfg).eval()
    rows = [] if out is None else out
    for name, tta in (("infer_ss", False), ("infer_tta", True)):
        runner = SemSegTTA(cfg, model, tta=tta)
        views = len(runner.scales) * (2 if runner.flip else 1)

        def step():
            with torch.no_grad(), autocast(device, dtype):
                return runner(inputs)[0]["sem_seg"].shape

        iters = args.iters if not tta else max(1, args.iters // 2)
        res = measure(step, device, iters, args.warmup)
        what = (f"ms per {iw}x{ih} image, {views} view(s): scales {list(runner.scales)}"
                f"{' x flip' if runner.flip else ''}")
        rows.append(row(name, pname, what, res[:3] + (None,), views=views))
    return rows


# =====================================================================================
# Report
# =====================================================================================


def peak_gib(r):
    return r["peak_mib"] / 1024 if r and r["peak_mib"] else None


def ratios(rows):
    """Per precision: pce / mmseg, full / pce, pairwise (the implementation the full row
    uses on this device: Triton on CUDA) / full, full's peak (GiB), full_compiled / mmseg,
    this precision's full step / fp32's, full_ckpt / full and full_ckpt's peak."""
    by = {(r["row"], r["precision"]): r for r in rows}
    out = {}
    for p in PRECISIONS:
        def ms(name, prec=p):
            r = by.get((name, prec))
            return r["ms"] if r and r["ms"] else None

        def div(a, b):
            return a / b if (a is not None and b) else None

        full = by.get(("full", p))
        pairwise = ms("pairwise_triton") or ms("pairwise")
        out[p] = {"pce_over_mmseg": div(ms("pce"), ms("mmseg_pce")),
                  "full_over_pce": div(ms("full"), ms("pce")),
                  "pairwise_share_of_full": div(pairwise, ms("full")),
                  "full_peak_gib": peak_gib(full),
                  "full_compiled_over_mmseg": div(ms("full_compiled"), ms("mmseg_pce")),
                  "full_over_fp32": div(ms("full"), ms("full", "fp32")),
                  "full_ckpt_over_full": div(ms("full_ckpt"), ms("full")),
                  "full_ckpt_peak_gib": peak_gib(by.get(("full_ckpt", p)))}
    return out


TARGETS = {"pce_over_mmseg": ("<=", 1.05), "full_over_pce": ("<=", 1.10),
           "pairwise_share_of_full": ("<=", 0.05), "full_peak_gib": ("<=", 7.4),
           "full_compiled_over_mmseg": ("<=", 0.5), "full_over_fp32": ("<=", 0.7)}


def _fmt(x, nd=1):
    return "n/a" if x is None else f"{x:.{nd}f}"


def table(result) -> str:
    m = result["meta"]
    lines = [f"# benchmark_step: {m['config']} on {m['device_name']}, batch {m['batch']} at "
             f"{m['size']}x{m['size']}, median of {m['iters']} after {m['warmup']} warm-up",
             "", "| row | precision | ms (median) | peak MiB | launches | losses | what |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if r["skipped"]:
            lines.append(f"| {r['row']} | {r['precision']} | skipped | | | | {r['skipped']} |")
            continue
        losses = ", ".join(f"{k[5:] if k.startswith('loss_') else k}={v:.4g}"
                           for k, v in r["losses"].items())
        launches = r.get("launches")
        lines.append(f"| {r['row']} | {r['precision']} | {_fmt(r['ms'])} | "
                     f"{_fmt(r['peak_mib'], 0)} | {launches if launches is not None else ''} | "
                     f"{losses} | {r['what']} |")
    lines += ["", "| precision | pce / mmseg (<= 1.05) | full / pce (<= 1.10) | "
              "pairwise / full (<= 0.05) | full peak GiB (<= 7.4) | full_compiled / mmseg "
              "(<= 0.5) | full / fp32 full (<= 0.7) | full_ckpt / full | full_ckpt peak GiB |",
              "|---|---|---|---|---|---|---|---|---|"]
    for p, q in result["ratios"].items():
        lines.append(f"| {p} | {_fmt(q['pce_over_mmseg'], 3)} | {_fmt(q['full_over_pce'], 3)} | "
                     f"{_fmt(q['pairwise_share_of_full'], 3)} | {_fmt(q['full_peak_gib'], 2)} | "
                     f"{_fmt(q['full_compiled_over_mmseg'], 3)} | "
                     f"{_fmt(q['full_over_fp32'], 3)} | {_fmt(q['full_ckpt_over_full'], 3)} | "
                     f"{_fmt(q['full_ckpt_peak_gib'], 2)} |")
    if m.get("cpu_rss_peak_mib"):
        lines.append(f"\nCPU: no per-row peak; the process's peak RSS over all rows was "
                     f"{m['cpu_rss_peak_mib']:.0f} MiB.")
    return "\n".join(lines)


def _commit():
    if os.environ.get("DFR_COMMIT"):
        return os.environ["DFR_COMMIT"]
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _guarded(fn, names, cfg, args, pname, dtype):
    """fn's rows; if it raises (e.g. out of memory), the rows it did not return say why and
    the other rows are still measured."""
    done = []
    try:
        done = [r for r in fn(cfg, args, pname, dtype, out=done) if r["row"] in names]
    except Exception as e:  # noqa: BLE001 (reported in the table, not hidden)
        traceback.print_exc()
        reason = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
        got = {r["row"] for r in done}
        done = [r for r in done if r["row"] in names] + [
            row(n, pname, "", skipped=reason) for n in names if n not in got]
    finally:
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return done


def default_rows(tiny: bool):
    """Every row; with --tiny all but the compiled ones."""
    return [r for r in TRAIN_ROWS + INFER_ROWS if not (tiny and r.endswith("_compiled"))]


def worker_main(argv) -> int:
    """`--mmseg-worker REQUEST --json OUT`: row (a) inside the mmseg interpreter, which has
    mmseg and torch but not this project: nothing here imports dfr."""
    p = argparse.ArgumentParser(prog="benchmark_step.py --mmseg-worker")
    p.add_argument("request")
    p.add_argument("--json", required=True)
    args = p.parse_args(argv)
    res = mmseg_worker(json.loads(Path(args.request).read_text()))
    Path(args.json).write_text(json.dumps(res))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--mmseg-worker"]:
        return worker_main(argv[1:])
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--config-file", default=None,
                   help=f"default: {PAPER_CONFIG.relative_to(REPO)} (--tiny: the instant test)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="tiny model and inputs (CPU, tests)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=None, help="crop side (default 512; tiny 64)")
    p.add_argument("--iters", type=int, default=None, help="timed steps (default 20; tiny 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default 5; tiny 1)")
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    p.add_argument("--rows", nargs="+", default=None, choices=list(TRAIN_ROWS + INFER_ROWS),
                   help="default: every row (--tiny: all but the *_compiled rows, whose "
                        "compilation takes minutes on a CPU)")
    p.add_argument("--mmseg-python", default=None,
                   help="interpreter of the mmseg 1.2.2 venv (row mmseg_pce; else skipped)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode of the *_compiled rows (SOLVER.COMPILE)")
    p.add_argument("--json", default=None, help="write the rows and metadata here")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = p.parse_args(argv)

    args.rows = args.rows or default_rows(args.tiny)
    args.size = args.size or (64 if args.tiny else 512)
    args.iters = args.iters or (3 if args.tiny else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = False
    cfg, config_name = build_cfg(args)
    precs = _precisions(args.precisions, args.device)

    rows = []
    mmseg_versions = None
    if "mmseg_pce" in args.rows:
        if args.mmseg_python:
            req = dict(device=args.device, size=args.size, batch=args.batch, iters=args.iters,
                       warmup=args.warmup, precisions=args.precisions, arch=mmseg_arch(cfg),
                       threads=torch.get_num_threads())
            res = run_mmseg(args.mmseg_python, req)
            rows += res["rows"]
            mmseg_versions = res["versions"]
        else:
            rows += [row("mmseg_pce", pn, "mmseg Swin-UperNet", skipped="no --mmseg-python")
                     for pn, _, _ in precs]
    for pname, dtype, skip in precs:
        wanted = [r for r in TRAIN_ROWS[1:] + INFER_ROWS if r in args.rows]
        if skip:
            rows += [row(r, pname, "", skipped=skip) for r in wanted]
            continue
        for fn, names in ((our_train_rows, TRAIN_ROWS[1:]), (our_infer_rows, INFER_ROWS)):
            names = [n for n in names if n in wanted]
            if names:
                rows += _guarded(fn, names, cfg, args, pname, dtype)
    order = {n: i for i, n in enumerate(TRAIN_ROWS + INFER_ROWS)}
    rows.sort(key=lambda r: (list(PRECISIONS).index(r["precision"]), order[r["row"]]))

    import detectron2
    import timm

    cuda = args.device.startswith("cuda")
    meta = {
        "config": config_name, "device": args.device,
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "tiny": args.tiny, "batch": args.batch, "size": args.size, "iters": args.iters,
        "warmup": args.warmup, "threads": torch.get_num_threads(),
        "commit": _commit(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda,
                     "detectron2": detectron2.__version__, "timm": timm.__version__,
                     "python": platform.python_version()},
        "mmseg_versions": mmseg_versions,
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32,
                 "cudnn": torch.backends.cudnn.allow_tf32},  # PyTorch's defaults, both sides
        "cpu_rss_peak_mib": None if cuda else
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "targets": {k: f"{op} {v}" for k, (op, v) in TARGETS.items()},
    }
    result = {"meta": meta, "rows": rows, "ratios": ratios(rows)}
    print(table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
