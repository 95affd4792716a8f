#!/usr/bin/env python
"""The synthetic results table: pCE only / + Ldfr (XY+RGB) / + Ldfr (XY+RGB+F) / full DFR
(+ Lfd + Lfr) / fully supervised, at equal iterations, over several seeds.

Each (variant, seed) is one `projects/DFR/train_net.py` run (a subprocess, the command a user
would type) with config overrides; its mIoU is read from
`<output>/<variant>/seed<k>/inference/<val set>/sem_seg_metrics.json`. Finished runs are
reused (delete the folder or pass --force to rerun). Writes `<output>/results.md` (mean ± std
mIoU, per-seed values) and `<output>/results.json`.

    python tools/run_synthetic_ablation.py --seeds 0 1 2 --output output/ablation
    python tools/run_synthetic_ablation.py --seeds 0 --variants pce full SOLVER.MAX_ITER 300
"""
import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TRAIN_NET = REPO / "projects" / "DFR" / "train_net.py"
DEFAULT_CONFIG = REPO / "projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml"

def _switches(dfr: bool, feat: bool = False, fd: bool = False, fr: bool = False):
    """Config overrides for the loss switches of one variant (Tables 4-5 on synthetic data)."""
    return ["MODEL.DFR.USE_DFR", str(dfr), "MODEL.DFR.KERNEL_FEAT", str(feat),
            "MODEL.DFR.USE_FD", str(fd), "MODEL.DFR.USE_FR", str(fr)]


# name -> (table label, config overrides). Equal iterations: only the loss switches differ.
VARIANTS = {
    "pce": ("pCE only", _switches(False)),
    "dfr_xy_rgb": ("pCE + Ldfr (XY+RGB)", _switches(True)),
    "dfr_xy_rgb_f": ("pCE + Ldfr (XY+RGB+F)", _switches(True, feat=True)),
    "full": ("full DFR (+ Lfd + Lfr)", _switches(True, feat=True, fd=True, fr=True)),
    "full_sup": ("fully supervised (dense labels, pCE)",
                 _switches(False) + ["DATASETS.TRAIN", "('synthetic_full_train',)"]),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config-file", default=str(DEFAULT_CONFIG))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--output", default="output/ablation")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="runs in parallel (each one process with --threads threads)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (0: cores/jobs)")
    p.add_argument("--force", action="store_true", help="rerun finished runs")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    return p.parse_args(argv)


def _metrics_path(run_dir: Path):
    found = sorted(run_dir.glob("inference/*/sem_seg_metrics.json"))
    return found[0] if found else None


def run_one(args, variant: str, seed: int, threads: int) -> dict:
    run_dir = Path(args.output) / variant / f"seed{seed}"
    done = _metrics_path(run_dir)
    if done is not None and not args.force:
        res = json.loads(done.read_text())
        print(f"[ablation] {variant} seed {seed}: reused mIoU {res['mIoU']:.2f} ({done})")
        return {"mIoU": res["mIoU"], "seconds": None}
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(TRAIN_NET), "--num-gpus", "1", "--config-file", args.config_file,
           *VARIANTS[variant][1], *args.opts,
           "SEED", str(seed), "OUTPUT_DIR", str(run_dir)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print(f"[ablation] start {variant} seed {seed}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.time()
    with open(run_dir / "stdout.log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    dt = time.time() - t0
    path = _metrics_path(run_dir)
    if rc != 0 or path is None:
        raise RuntimeError(f"{variant} seed {seed} failed (rc={rc}); see {run_dir / 'stdout.log'}")
    miou = json.loads(path.read_text())["mIoU"]
    print(f"[ablation] done  {variant} seed {seed}: mIoU {miou:.2f} in {dt:.0f} s", flush=True)
    return {"mIoU": miou, "seconds": dt}


def make_table(results: dict, seeds, header_note: str = "") -> str:
    lines = [
        "| variant | mIoU (mean ± std) | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|:--|--:|" + "--:|" * len(seeds),
    ]
    for variant, per_seed in results.items():
        vals = np.array([per_seed[s]["mIoU"] for s in seeds], dtype=float)
        std = vals.std(ddof=1) if len(vals) > 1 else 0.0
        lines.append(
            f"| {VARIANTS[variant][0]} | {vals.mean():.1f} ± {std:.1f} | "
            + " | ".join(f"{v:.1f}" for v in vals)
            + " |"
        )
    return (header_note + "\n\n" if header_note else "") + "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    # Seed-major order: an interrupted table still has every variant for the first seeds.
    jobs = [(v, s) for s in args.seeds for v in args.variants]
    print(f"[ablation] {len(jobs)} runs, {args.jobs} in parallel, {threads} thread(s) each")
    t0 = time.time()
    Path(args.output).mkdir(parents=True, exist_ok=True)
    done = {}
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_one, args, v, s, threads): (v, s) for v, s in jobs}
        for fut in as_completed(futures):
            v, s = futures[fut]
            done[(v, s)] = fut.result()
            seeds = [k for k in args.seeds if all((w, k) in done for w in args.variants)]
            if seeds:  # table of the seeds finished so far, for every variant
                part = {w: {k: done[(w, k)] for k in seeds} for w in args.variants}
                (Path(args.output) / "results_partial.md").write_text(make_table(part, seeds))
    out = {v: {s: done[(v, s)] for s in args.seeds} for v in args.variants}
    wall = time.time() - t0
    note = (
        f"Synthetic benchmark (`{os.path.relpath(args.config_file, REPO)}`"
        + (f", overrides `{' '.join(args.opts)}`" if args.opts else "")
        + f"), mIoU on synthetic_scribble_val, {len(args.seeds)} seeds "
        f"({' '.join(map(str, args.seeds))}); wall time {wall / 60:.1f} min."
    )
    table = make_table(out, args.seeds, note)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "results.md").write_text(table)
    summary = {
        "config": args.config_file,
        "opts": args.opts,
        "seeds": args.seeds,
        "results": {v: {str(s): r for s, r in d.items()} for v, d in out.items()},
    }
    (Path(args.output) / "results.json").write_text(json.dumps(summary, indent=1))
    print(table)
    return out


if __name__ == "__main__":
    main()
