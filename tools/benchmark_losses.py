#!/usr/bin/env python
"""Benchmark the offset-loop losses of dfr.modeling.losses against the naive unfold versions.

For each case, forward + backward time (median of --runs runs after one warm-up) and peak memory,
each measured in its own subprocess: on CPU the growth of the max RSS over the RSS after the
inputs were built; on CUDA (when available, --device cuda) torch.cuda.max_memory_allocated over
the memory allocated by the inputs. "dfr" is Ldfr alone; "all" is Ldfr + Lfd + Lfr summed and
back-propagated together, as in a training step.

    python tools/benchmark_losses.py --threads 1    # full table (~15 CPU-minutes, ~9 GB peak)
    python tools/benchmark_losses.py --quick        # small maps, about a minute
    python tools/benchmark_losses.py --train-step \
        projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml
    python tools/benchmark_losses.py --threads 2 --batch 2 --crop 512 --iters 2 \
        --train-step projects/DFR/configs/voc/dfr_swin_base_bs16_40k.yaml
    python tools/benchmark_losses.py --count-ops --threads 1   # kernel launches per call
    python tools/benchmark_losses.py --count-ops --threads 1 --pairwise compiled

--train-step builds the model of CONFIG and reports the share of the pairwise losses (Ldfr, Lfd,
Lfr forward + backward, measured by timing the losses on the shapes the model produces) in one
full training step (forward + backward of the model).
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _make_inputs(b, c, d, h, w, device, dtype=torch.float32, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    logits = torch.randn(b, c, h, w, generator=g, dtype=dtype).mul_(3)
    image = torch.randn(b, 3, h, w, generator=g, dtype=dtype)
    feats = torch.randn(b, d, h, w, generator=g, dtype=dtype).relu_()
    valid = torch.ones(b, h, w, dtype=torch.bool)
    valid[:, :, w - w // 8:] = False  # a padded strip, as in a batch of unequal images
    return [t.to(device) for t in (logits, image, feats, valid)]


def _loss_fns(impl):
    if impl == "efficient":
        from dfr.modeling.losses import (
            confident_labels,
            dfr_loss,
            feature_distance_loss,
            feature_regularized_loss,
        )
        return dfr_loss, feature_distance_loss, feature_regularized_loss, confident_labels
    from dfr.modeling.losses import confident_labels
    from dfr.modeling.losses.unfold import unfold_dfr, unfold_fd, unfold_fr
    return unfold_dfr, unfold_fd, unfold_fr, confident_labels


def _step_fn(impl, which, radius, logits, image, feats, valid, pairwise="torch"):
    """One forward + backward of the losses. pairwise (the "fused" case): "torch" (the eager
    torch window pass), "triton" (the fused kernels) or "compiled" (torch.compile of the
    torch pass; the first call compiles)."""
    dfr, fd, fr, conf = _loss_fns(impl)
    logits.requires_grad_()
    feats.requires_grad_()

    def fused_loss(logits, feats):
        from dfr.modeling.losses import pairwise_losses
        probs = logits.softmax(1)
        labels = conf(probs.detach(), gamma=0.5)
        out = pairwise_losses(probs, image, feats, labels, valid, radius=radius,
                              impl="triton" if pairwise == "triton" else "torch",
                              validate=False)
        return out["dfr"] + out["fd"] + out["fr"]

    if which == "fused" and impl == "efficient" and pairwise == "compiled":
        fused_loss = torch.compile(fused_loss, fullgraph=True)

    def step():
        probs = logits.softmax(1)
        if which == "fused" and impl == "efficient":
            loss = fused_loss(logits, feats)
        else:
            loss = dfr(probs, image, feats, valid, radius=radius)
        if which == "all" or (which == "fused" and impl != "efficient"):
            labels = conf(probs, gamma=0.5)  # ~half the pixels confident on these inputs
            loss = loss + fd(feats, labels, valid, radius=radius)
            loss = loss + fr(feats, image, labels, valid, radius=radius)
        loss.backward()
        logits.grad = None
        feats.grad = None
        return loss.item()

    return step


def worker(args):
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    inputs = _make_inputs(args.B, args.C, args.d, args.size, args.size, device)
    step = _step_fn(args.impl, args.loss, args.radius, *inputs, pairwise=args.pairwise)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_mb()
    t_first = time.perf_counter()
    value = step()  # warm-up (also the first peak; compiles with --pairwise compiled)
    first_s = time.perf_counter() - t_first
    times, cpu = [], []
    for _ in range(args.runs):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        sync()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = _maxrss_mb() - base
    print(json.dumps({"time_ms": 1000 * statistics.median(times), "peak_mb": peak,
                      "cpu_ms": 1000 * statistics.median(cpu), "value": value,
                      "first_call_s": first_s}))


def run_case(args, impl, loss, b, c, d, size, radius):
    cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--loss", loss, "--B", str(b),
           "--C", str(c), "--d", str(d), "--size", str(size), "--radius", str(radius),
           "--runs", str(args.runs), "--threads", str(args.threads), "--device", args.device,
           "--pairwise", args.pairwise]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["killed"])[-1][:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(args):
    b, c, d = 2, 21, 128
    if args.quick:
        cases = [("dfr", 32, 5), ("all", 32, 5), ("fused", 32, 5), ("all", 48, 3)]
    else:
        cases = [("dfr", 128, 5), ("all", 128, 5), ("fused", 128, 5)]
        cases += [(k, s, 5) for s in (32, 64) for k in ("all", "fused")]
        cases += [(k, 128, r) for r in (1, 3) for k in ("all", "fused")]
    print(f"device: {args.device}, torch {torch.__version__}, {args.threads} thread(s), "
          f"B={b}, C={c}, d={d}, median of {args.runs} runs (fwd+bwd), "
          f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| losses | h×w | r | efficient ms (CPU ms) | unfold ms (CPU ms) | speed-up wall (CPU) "
          "| efficient peak MB | unfold peak MB | memory ratio | rel. diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    names = {"dfr": "Ldfr", "all": "Ldfr+Lfd+Lfr", "fused": "pairwise_losses (fused)"}
    unfold_cache = {}
    for loss, size, radius in cases:
        e = run_case(args, "efficient", loss, b, c, d, size, radius)
        key = ("all" if loss == "fused" else loss, size, radius)
        if key not in unfold_cache:  # fused vs the same unfold sum
            unfold_cache[key] = run_case(args, "unfold", key[0], b, c, d, size, radius)
        u = unfold_cache[key]
        if "error" in e or "error" in u:
            print(f"| {names[loss]} | {size}² | {radius} | {e.get('time_ms', e.get('error'))} | "
                  f"{u.get('time_ms', u.get('error'))} | | | | | |", flush=True)
            continue
        rel = abs(e["value"] - u["value"]) / max(abs(u["value"]), 1e-30)
        print(f"| {names[loss]} | {size}² | {radius} | {e['time_ms']:.0f} ({e['cpu_ms']:.0f}) | "
              f"{u['time_ms']:.0f} ({u['cpu_ms']:.0f}) | {u['time_ms'] / e['time_ms']:.1f}× "
              f"({u['cpu_ms'] / e['cpu_ms']:.1f}×) | {e['peak_mb']:.0f} | {u['peak_mb']:.0f} | "
              f"{u['peak_mb'] / max(e['peak_mb'], 1e-9):.0f}× | {rel:.1e} |", flush=True)


def _synthetic_batch(batch, size, num_classes, seed=0):
    """Random RGB crops with a few scribble-like labeled rows (~3 % of the pixels)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        img = torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
        sem = torch.full((size, size), 255, dtype=torch.long)
        for _ in range(max(1, size // 32)):
            y = int(torch.randint(0, size, (1,), generator=g))
            sem[y, : size // 2] = int(torch.randint(0, num_classes, (1,), generator=g))
        out.append({"image": img, "sem_seg": sem, "height": size, "width": size})
    return out


def train_step(args):
    """Share of Ldfr + Lfd + Lfr (forward + backward) in one training step of CONFIG's model."""
    torch.set_num_threads(args.threads)

    from detectron2.modeling import build_model

    import dfr.modeling.meta_arch.dfr_segmentor as seg
    from dfr.config import get_dfr_cfg

    cfg = get_dfr_cfg(args.train_step,
                      ["MODEL.SWIN.PRETRAINED", "", "MODEL.DEVICE", args.device] + args.opts,
                      cpu_fallback=False)
    model = build_model(cfg)
    model.train()
    size = args.crop or cfg.INPUT.CROP.SIZE[0]
    batch = args.batch or cfg.SOLVER.IMS_PER_BATCH
    data = _synthetic_batch(batch, size, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES)
    names = ("pairwise_losses",)  # the model's single fused call for Ldfr, Lfd, Lfr
    calls = []
    originals = {n: getattr(seg.L, n) for n in names}

    def capture(name):
        def fn(*a, **k):
            calls.append((name, a, k))
            return originals[name](*a, **k)
        return fn

    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    step_times = []
    try:
        for n in names:
            setattr(seg.L, n, capture(n))
        for it in range(args.iters + 1):
            calls.clear()
            model.zero_grad(set_to_none=True)
            sync()
            t0 = time.perf_counter()
            losses = model(data)
            sum(losses.values()).backward()
            sync()
            if it:  # first step: warm-up
                step_times.append(time.perf_counter() - t0)
    finally:
        for n, f in originals.items():
            setattr(seg.L, n, f)
    loss_times = []
    for _ in range(args.iters):
        total = 0.0
        for name, a, k in calls:
            # probs (arg 0) and feats (arg 2) are the differentiable inputs
            a = [x.detach().clone().requires_grad_(x.is_floating_point() and i in (0, 2))
                 if torch.is_tensor(x) else x for i, x in enumerate(a)]
            sync()
            t0 = time.perf_counter()
            sum(originals[name](*a, **k).values()).backward()
            sync()
            total += time.perf_counter() - t0
        loss_times.append(total)
    step, loss = statistics.median(step_times), statistics.median(loss_times)
    shapes = {name: tuple(a[0].shape) for name, a, _ in calls}
    print(f"config: {args.train_step}  device: {args.device}  threads: {args.threads}  "
          f"batch {batch} x {size}²")
    print(f"pairwise losses called on: {shapes}, radius {cfg.MODEL.DFR.RADIUS}")
    print("| training step (fwd+bwd) s | Ldfr+Lfd+Lfr (fwd+bwd) s | share |")
    print("|---|---|---|")
    print(f"| {step:.3f} | {loss:.3f} | {100 * loss / step:.1f} % |")


def _stub_triton_kernels(launches):
    """Off CUDA, count the wrapper's ATen ops around the fused kernels without running them
    (Triton's interpreter issues its own host copies, which a GPU launch does not): each
    kernel launch is recorded in `launches` and does nothing."""
    from dfr.modeling.losses import triton_pairwise

    class Stub:
        def __init__(self, name):
            self.name = name

        def __getitem__(self, grid):
            return lambda *a, **k: launches.append(self.name)

    triton_pairwise._fwd_kernel = Stub("fwd")
    triton_pairwise._bwd_kernel = Stub("bwd")


def count_ops(args):
    """ATen operations of one forward + backward of all three pairwise losses (Ldfr + Lfd +
    Lfr, `pairwise_losses`) at --B/--C/--d/--size/--radius (default: the paper's loss map for a
    512² crop at batch 2): leaf operations that launch a kernel on CUDA, and the view and
    allocation dispatches. On a GPU where the step is launch-bound, the first number sets the
    losses' cost; counted on the CPU, the Python code issues the same operations. --pairwise
    triton off CUDA: the fused kernels are stubbed (counted, not run); compiled: inductor's
    generated kernels are added."""
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(args.threads)
    b, c, d, s = args.B, args.C, args.d, args.size
    launches = []
    if args.pairwise == "triton" and args.device != "cuda":
        _stub_triton_kernels(launches)
    step = _step_fn("efficient", "fused", args.radius, *_make_inputs(b, c, d, s, s, args.device),
                    pairwise=args.pairwise)
    step()  # warm-up (and compilation)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    with profile(activities=acts) as prof:
        step()
    from dfr_tools.profiling import launching_ops

    events = prof.events()
    aten = [e for e in events if e.name.startswith("aten::")]
    kernels, leaf = launching_ops(events)
    generated = [e for e in events if e.name.startswith(("_fwd_kernel", "_bwd_kernel"))
                 and e.device_type.name == "CPU"]
    n_gen = len(generated) + len(launches) // 2  # the stubs record warm-up and profiled runs
    if args.pairwise == "compiled":  # inductor's kernels, each run once per call
        from torch._inductor import metrics
        n_gen = metrics.generated_kernel_count
    n = len(kernels) + n_gen
    print(f"pairwise_losses fwd + bwd ({args.pairwise}), B {b}, C {c}, d {d}, {s}x{s}, "
          f"r {args.radius}: {n} kernel-launching ops ({len(kernels)} ATen, {n_gen} "
          f"generated/fused), {len(leaf) - len(kernels)} view / allocation ops "
          f"({len(aten)} ATen events in all)")
    return n


def main():
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--quick", action="store_true", help="small maps only (seconds)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per case (median)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--train-step", metavar="CONFIG", help="measure the losses' share of a step")
    p.add_argument("--iters", type=int, default=3, help="--train-step: timed steps (median)")
    p.add_argument("--batch", type=int, default=0, help="--train-step: images (0: config's)")
    p.add_argument("--crop", type=int, default=0, help="--train-step: crop size (0: config's)")
    p.add_argument("--count-ops", action="store_true",
                   help="count the ATen ops of one pairwise fwd + bwd (kernel launches on CUDA)")
    p.add_argument("--pairwise", default="torch", choices=("torch", "triton", "compiled"),
                   help="implementation of the fused pairwise case / --count-ops")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="--train-step: config overrides")
    # worker arguments
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", default="efficient", help=argparse.SUPPRESS)
    p.add_argument("--loss", default="dfr", help=argparse.SUPPRESS)
    for k, v in (("B", 2), ("C", 21), ("d", 128), ("size", 128), ("radius", 5)):
        p.add_argument(f"--{k}", type=int, default=v, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.count_ops:
        count_ops(args)
    elif args.worker:
        worker(args)
    elif args.train_step:
        train_step(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
