#!/usr/bin/env python
"""Benchmark the offset-loop losses of dfr.modeling.losses against the naive unfold versions.

For each case, forward + backward time (median of --runs runs after one warm-up) and peak memory,
each measured in its own subprocess: on CPU the growth of the max RSS over the RSS after the
inputs were built; on CUDA (when available, --device cuda) torch.cuda.max_memory_allocated over
the memory allocated by the inputs. "dfr" is Ldfr alone; "all" is Ldfr + Lfd + Lfr summed and
back-propagated together, as in a training step.

    python tools/benchmark_losses.py                # full table (several CPU-minutes)
    python tools/benchmark_losses.py --quick        # small maps, seconds
    python tools/benchmark_losses.py --train-step projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml

--train-step builds the model of CONFIG and reports the share of the pairwise losses (Ldfr, Lfd,
Lfr forward + backward, measured by timing the losses on the shapes the model produces) in one
full training step (forward + backward of the model).
"""
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
sys.path.insert(0, str(ROOT / "tests"))  # reference_losses (the unfold implementation)


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
        from dfr.modeling.losses import (confident_labels, dfr_loss, feature_distance_loss,
                                         feature_regularized_loss)
        return dfr_loss, feature_distance_loss, feature_regularized_loss, confident_labels
    import reference_losses as ref
    from dfr.modeling.losses import confident_labels
    return ref.unfold_dfr, ref.unfold_fd, ref.unfold_fr, confident_labels


def _step_fn(impl, which, radius, logits, image, feats, valid):
    dfr, fd, fr, conf = _loss_fns(impl)
    logits.requires_grad_()
    feats.requires_grad_()

    def step():
        probs = logits.softmax(1)
        loss = dfr(probs, image, feats, valid, radius=radius)
        if which == "all":
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
    step = _step_fn(args.impl, args.loss, args.radius, *inputs)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_mb()
    value = step()  # warm-up (also the first peak)
    times = []
    for _ in range(args.runs):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = _maxrss_mb() - base
    print(json.dumps({"time_ms": 1000 * statistics.median(times), "peak_mb": peak,
                      "value": value}))


def run_case(args, impl, loss, b, c, d, size, radius):
    cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--loss", loss, "--B", str(b),
           "--C", str(c), "--d", str(d), "--size", str(size), "--radius", str(radius),
           "--runs", str(args.runs), "--threads", str(args.threads), "--device", args.device]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["killed"])[-1][:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(args):
    b, c, d = 2, 21, 128
    if args.quick:
        cases = [("dfr", 32, 5), ("all", 32, 5), ("all", 48, 3)]
    else:
        cases = [("dfr", 128, 5), ("all", 128, 5)]
        cases += [("all", s, 5) for s in (32, 64)]
        cases += [("all", 128, r) for r in (1, 3)]
    print(f"device: {args.device}, torch {torch.__version__}, {args.threads} thread(s), "
          f"B={b}, C={c}, d={d}, median of {args.runs} runs (fwd+bwd)\n")
    print("| losses | h×w | r | efficient ms | unfold ms | speed-up | efficient peak MB "
          "| unfold peak MB | memory ratio | |Δvalue|/value |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for loss, size, radius in cases:
        e = run_case(args, "efficient", loss, b, c, d, size, radius)
        u = run_case(args, "unfold", loss, b, c, d, size, radius)
        name = "Ldfr" if loss == "dfr" else "Ldfr+Lfd+Lfr"
        if "error" in e or "error" in u:
            print(f"| {name} | {size}² | {radius} | {e.get('time_ms', e.get('error'))} | "
                  f"{u.get('time_ms', u.get('error'))} | | | | | |")
            continue
        rel = abs(e["value"] - u["value"]) / max(abs(u["value"]), 1e-30)
        print(f"| {name} | {size}² | {radius} | {e['time_ms']:.0f} | {u['time_ms']:.0f} | "
              f"{u['time_ms'] / e['time_ms']:.1f}× | {e['peak_mb']:.0f} | {u['peak_mb']:.0f} | "
              f"{u['peak_mb'] / max(e['peak_mb'], 1e-9):.0f}× | {rel:.1e} |", flush=True)


def train_step(args):
    """Share of the pairwise losses in one training step of the model built from a config."""
    raise SystemExit("--train-step: not implemented yet")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small maps only (seconds)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per case (median)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--train-step", metavar="CONFIG", help="measure the losses' share of a step")
    p.add_argument("--iters", type=int, default=3, help="--train-step: timed steps")
    # worker arguments
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", default="efficient", help=argparse.SUPPRESS)
    p.add_argument("--loss", default="dfr", help=argparse.SUPPRESS)
    for k, v in (("B", 2), ("C", 21), ("d", 128), ("size", 128), ("radius", 5)):
        p.add_argument(f"--{k}", type=int, default=v, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
    elif args.train_step:
        train_step(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
