#!/usr/bin/env python
"""The synthetic results table: pCE only / + Ldfr (XY+RGB) / + Ldfr (XY+RGB+F) /
full DFR (+ Lfd + Lfr) with the feature head supervised by M, by the scribbles or by both
(Table 7), the opt-in changes of the feature branch, [fully supervised]; from a random init
and from the synthetic-pretrained backbone (tools/pretrain_synthetic_backbone.py), at equal
iterations, over several seeds.

Each (init, variant, seed) is one `projects/DFR/train_net.py` run (a subprocess, the command a
user would type) with config overrides; its mIoU is read from
`<output>/<init>/<variant>/seed<k>/inference/<val set>/sem_seg_metrics.json` and the
feature-branch diagnostics (`diag/*`, mean over the last quarter of training) from its
metrics.json. Finished runs are reused (delete the folder or pass --force to rerun); a run
that crashes is reported as such, not dropped. Writes `<output>/results.md` (per init: mean ±
95 % t-interval and every per-seed value, failing seeds marked; paired differences; the
diagnostics) and `<output>/results.json`, and the partial table after every finished run.

    python tools/run_synthetic_ablation.py --seeds 0 1 2 3 4 --output output/ablation
    python tools/run_synthetic_ablation.py --seeds 0 --inits random --variants pce full \
        --max-iter 300
    # a GPU machine: 14 runs at once; MAX_ITER chosen so that everything ends in 420 s
    python tools/run_synthetic_ablation.py --device cuda --jobs 14 --fit-budget 420 ...
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from dfr_tools.seed_runs import FAIL_GAP, failing, fmt_ci, mean_ci, run_train_net

REPO = Path(__file__).resolve().parents[1]
PRETRAIN = REPO / "tools" / "pretrain_synthetic_backbone.py"
DEFAULT_CONFIG = REPO / "projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml"
DEFAULT_PRETRAINED = "pretrained/swin_tiny_synthetic_pretrain.pth"


def _switches(dfr: bool, feat: bool = False, fd: bool = False, fr: bool = False):
    """Config overrides for the loss switches of one variant (Tables 4-5 on synthetic data)."""
    return ["MODEL.DFR.USE_DFR", str(dfr), "MODEL.DFR.KERNEL_FEAT", str(feat),
            "MODEL.DFR.USE_FD", str(fd), "MODEL.DFR.USE_FR", str(fr)]


_FULL = _switches(True, feat=True, fd=True, fr=True)
# name -> (table label, config overrides). Equal iterations: only these overrides differ.
VARIANTS = {
    "pce": ("pCE only", _switches(False)),
    "dfr_xy_rgb": ("pCE + Ldfr (XY+RGB)", _switches(True)),
    "dfr_xy_rgb_f": ("pCE + Ldfr (XY+RGB+F)", _switches(True, feat=True)),
    "full": ("full DFR (+ Lfd + Lfr), feature head on M (Table 7 'M')", _FULL),
    "full_scribble": ("full DFR, feature head on scribbles (Table 7)",
                      _FULL + ["MODEL.DFR.FEAT_SUPERVISION", "scribble"]),
    "full_both": ("full DFR, feature head on scribbles + M (Table 7)",
                  _FULL + ["MODEL.DFR.FEAT_SUPERVISION", "both"]),
    "full_detach": ("full DFR + opt-in FEAT_DETACH_FUSED (Lfd/Lfr not into the fused map)",
                    _FULL + ["MODEL.DFR.FEAT_DETACH_FUSED", "True"]),
    "full_sigrel": ("full DFR + opt-in SIGMA_FEAT_RELATIVE 1 (σ3 = mean window ‖ΔF‖)",
                    _FULL + ["MODEL.DFR.SIGMA_FEAT_RELATIVE", "1.0"]),
    "full_sup": ("fully supervised (dense labels, pCE)",
                 _switches(False) + ["DATASETS.TRAIN", "('synthetic_full_train',)"]),
}
DEFAULT_VARIANTS = [v for v in VARIANTS if v != "full_sup"]
INITS = ("random", "pretrained")


def parse_args(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--config-file", default=str(DEFAULT_CONFIG))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    p.add_argument("--inits", nargs="+", default=list(INITS), choices=INITS)
    p.add_argument("--pretrained", default=DEFAULT_PRETRAINED,
                   help="backbone of the 'pretrained' init (made by the pretraining tool, cached)")
    p.add_argument("--output", default="output/ablation")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="runs in parallel (each one process with --threads threads)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (0: cores/jobs)")
    p.add_argument("--device", default="", help="MODEL.DEVICE of every run (default: config's)")
    p.add_argument("--max-iter", type=int, default=0,
                   help="SOLVER.MAX_ITER (= checkpoint and eval period) of every run")
    p.add_argument("--fit-budget", type=float, default=0.0,
                   help="seconds: measure the speed with --jobs short runs, then set MAX_ITER "
                        "(the same for every run, <= the config's) so that all runs end in time")
    p.add_argument("--min-iter", type=int, default=0,
                   help="with --fit-budget: below this MAX_ITER, drop --drop-order variants")
    p.add_argument("--drop-order", nargs="*", default=[], choices=list(VARIANTS))
    p.add_argument("--calibration-iters", type=int, default=40, help="iterations of --fit-budget")
    p.add_argument("--deadline", type=float, default=0.0,
                   help="seconds from start after which no new run starts (then: 'not run')")
    p.add_argument("--publish", default="", help="also copy results*.md/json into this folder")
    p.add_argument("--force", action="store_true", help="rerun finished runs")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    return p.parse_args(argv)


def run_one(args, init: str, variant: str, seed: int, max_iter: int, run_dir=None) -> dict:
    """One (init, variant, seed) run under `<output>/<init>/<variant>/seed<k>`."""
    run_dir = Path(run_dir or Path(args.output) / init / variant / f"seed{seed}")
    late = ["MODEL.SWIN.PRETRAINED", args.pretrained] if init == "pretrained" else []
    return run_train_net(args, f"{init}/{variant}", VARIANTS[variant][1], seed, max_iter, run_dir,
                         late=late, tag="ablation")


def make_tables(results: dict, seeds, variants, inits, header_note: str = "") -> str:
    """results[(init, variant, seed)] = run dict. Markdown: per init, the mIoU table (mean ±
    95 % interval, per-seed values, † = failing seed, 'crash' / 'not run'); the paired
    differences (same seed) against XY+RGB and pCE; the diagnostics means."""
    lines = [header_note, ""] if header_note else []
    for init in inits:
        lines += [f"**{init} init** — mIoU on synthetic_scribble_val; mean ± 95 % t-interval "
                  f"over the seeds that ran; † = failing seed (> {FAIL_GAP:.0f} below the "
                  "variant's median), kept in the mean", "",
                  "| variant | mIoU | n | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                  "|:--|--:|--:|" + "--:|" * len(seeds)]
        for v in variants:
            runs = {s: results.get((init, v, s)) for s in seeds}
            vals = {s: (r or {}).get("mIoU") for s, r in runs.items()}
            bad = failing(vals)
            m, h = mean_ci([x for x in vals.values() if x is not None])
            cells = []
            for s in seeds:
                r = runs[s]
                if r is None:
                    cells.append("not run")
                elif r.get("mIoU") is None:
                    cells.append(r.get("status", "crash"))
                else:
                    cells.append(f"{r['mIoU']:.1f}" + (" †" if s in bad else ""))
            n = sum(x is not None for x in vals.values())
            lines.append(f"| {VARIANTS[v][0]} | {fmt_ci(m, h)} | {n} | "
                         + " | ".join(cells) + " |")
        lines.append("")
        refs = [r for r in ("dfr_xy_rgb", "pce") if r in variants]
        if refs:
            lines += ["Paired differences (same seed), mean ± 95 % t-interval:", "",
                      "| variant | " + " | ".join(f"− {VARIANTS[r][0]}" for r in refs) + " |",
                      "|:--|" + "--:|" * len(refs)]
            for v in variants:
                if v in refs[:1]:
                    continue
                cells = []
                for ref in refs:
                    d = [results[(init, v, s)]["mIoU"] - results[(init, ref, s)]["mIoU"]
                         for s in seeds
                         if (results.get((init, v, s)) or {}).get("mIoU") is not None
                         and (results.get((init, ref, s)) or {}).get("mIoU") is not None]
                    m, h = mean_ci(d)
                    cells.append(fmt_ci(m, h).replace("nan", "–") if v != ref else "")
                lines.append(f"| {VARIANTS[v][0]} | " + " | ".join(cells) + " |")
            lines.append("")
    lines += diag_table(results, seeds, variants, inits)
    return "\n".join(lines) + "\n"


def diag_table(results, seeds, variants, inits):
    """Means over seeds of the last-quarter diagnostics (runs with the DFR losses only)."""
    cols = [("m_frac", "M px", "{:.2f}"), ("pairs_bg", "#A+bg", "{:.0f}"),
            ("pairs_fg", "#A+fg", "{:.0f}"), ("pairs_neg", "#A−", "{:.0f}"),
            ("feat_norm", "‖F‖", "{:.2f}"), ("feat_dead_frac", "dead ch.", "{:.2f}"),
            ("feat_dist", "‖ΔF‖", "{:.2f}"), ("ffac_same", "f same", "{:.3f}"),
            ("ffac_diff", "f diff", "{:.3f}"), ("k_mean", "K", "{:.4f}"),
            ("k_nofeat_mean", "K no F", "{:.4f}")]  # fmt: skip
    rows = []
    for init in inits:
        for v in variants:
            ds = [(results.get((init, v, s)) or {}).get("diag") or {} for s in seeds]
            ds = [d for d in ds if d]
            if not ds:
                continue
            cells = []
            for k, _, f in cols:
                x = [d[k] for d in ds if k in d and d[k] is not None and math.isfinite(d[k])]
                cells.append(f.format(np.mean(x)) if x else "–")
            rows.append(f"| {init} | {v} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return ["Feature-branch diagnostics (`diag/*`, mean over the last quarter of training, "
            "then over seeds; pair counts per batch of 4 at the loss map; f = mean feature "
            "factor exp(−‖ΔF‖²/2σ3²) over same- / different-class scribble pairs):", "",
            "| init | variant | " + " | ".join(c[1] for c in cols) + " |",
            "|:--|:--|" + "--:|" * len(cols), *rows, ""]


# ---- budget fitting ----------------------------------------------------------------------
def _iter_time(run_dir: Path):
    rows = [json.loads(x) for x in (run_dir / "metrics.json").read_text().splitlines() if x]
    t = [r["time"] for r in rows if "time" in r]
    return float(t[-1]) if t else None


def makespan(durations, slots):
    """Greedy list scheduling in order: the time the last of `durations` ends on `slots`."""
    ends = [0.0] * slots
    for d in durations:
        i = int(np.argmin(ends))
        ends[i] += d
    return max(ends)


def fit_max_iter(args, jobs, budget, config_max, cal_iters=40):
    """Run --jobs short runs at once (the first jobs of the list), measure seconds per
    iteration (per variant) and fixed cost per run (start + evaluation), and return the
    largest MAX_ITER (multiple of 50, <= config_max) whose schedule of all jobs fits `budget`."""
    cal = jobs[: args.jobs]
    root = Path(args.output) / "_calibration"
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.time()
    with ThreadPoolExecutor(len(cal)) as pool:
        futs = {pool.submit(run_one, args, i, v, s, cal_iters, root / f"{i}_{v}_{s}"): (i, v, s)
                for i, v, s in cal}  # fmt: skip
        res = {futs[f]: f.result() for f in as_completed(futs)}
    wall = time.time() - t0
    per_var, fixed = {}, []
    for (i, v, s), r in res.items():
        t = _iter_time(root / f"{i}_{v}_{s}") if r["status"] == "ok" else None
        if t is None:
            raise RuntimeError(f"calibration run {i}/{v}/{s} failed: {r['status']}")
        per_var.setdefault(v, []).append(t)
        fixed.append(r["seconds"] - cal_iters * t)
    t_var = {v: float(np.mean(x)) for v, x in per_var.items()}
    t_default = max(t_var.values())
    fix = float(np.max(fixed))
    budget -= time.time() - t0  # what is left after the calibration
    step = 50 if config_max >= 100 else 1

    def fit(jobs):
        best = 0
        for n in range(step, config_max + 1, step):
            d = [fix + n * t_var.get(v, t_default) for _, v, _ in jobs]
            if makespan(d, args.jobs) <= 0.9 * budget:  # 10 % margin for the estimate
                best = n
        return best

    best, dropped = fit(jobs), []
    for v in args.drop_order:  # too few iterations: drop whole variants, in this order
        if best >= args.min_iter or v not in {j[1] for j in jobs}:
            continue
        jobs = [j for j in jobs if j[1] != v]
        dropped.append(v)
        best = fit(jobs)
    info = {"calibration_wall_s": round(wall, 1), "s_per_iter": t_var,
            "fixed_s_per_run": round(fix, 1), "budget_after_calibration_s": round(budget, 1),
            "max_iter": best, "dropped_variants": dropped,
            "predicted_s": round(makespan([fix + best * t_var.get(v, t_default)
                                           for _, v, _ in jobs], args.jobs), 1)}
    print(f"[ablation] calibration: {json.dumps(info)}", flush=True)
    return best, info


def _config_max_iter(args) -> int:
    from dfr.config import get_dfr_cfg

    return int(get_dfr_cfg(args.config_file, args.opts, cpu_fallback=False).SOLVER.MAX_ITER)


def ensure_pretrained(args):
    if Path(args.pretrained).is_file():
        return
    print(f"[ablation] {args.pretrained} missing: running the pretraining tool", flush=True)
    subprocess.check_call([sys.executable, str(PRETRAIN), "--output", args.pretrained], cwd=REPO)


def _write(args, results, seeds, note, extra):
    out = Path(args.output)
    table = make_tables(results, seeds, args.variants, args.inits, note)
    summary = {"config": args.config_file, "opts": args.opts, "seeds": seeds,
               "inits": args.inits, "variants": args.variants, **extra,
               "results": {f"{i}/{v}/{s}": r for (i, v, s), r in results.items()}}
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    if args.publish:
        Path(args.publish).mkdir(parents=True, exist_ok=True)
        for name in ("results.md", "results.json"):
            shutil.copy(out / name, Path(args.publish) / name)
    return table


def main(argv=None):
    args = parse_args(argv)
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]
    t_start = time.time()
    Path(args.output).mkdir(parents=True, exist_ok=True)
    if "pretrained" in args.inits:
        ensure_pretrained(args)
    # Seed-major order: an interrupted table still has every variant for the first seeds.
    jobs = [(i, v, s) for s in args.seeds for i in args.inits for v in args.variants]
    extra = {}
    max_iter = args.max_iter
    if args.fit_budget:
        left = args.fit_budget - (time.time() - t_start)
        max_iter, info = fit_max_iter(args, jobs, left, _config_max_iter(args),
                                      args.calibration_iters)
        extra["calibration"] = info
        if info["dropped_variants"]:
            args.variants = [v for v in args.variants if v not in info["dropped_variants"]]
            jobs = [j for j in jobs if j[1] in args.variants]
        if not max_iter:
            raise SystemExit("[ablation] not even the shortest schedule fits the budget")
    extra["max_iter"] = max_iter or _config_max_iter(args)
    print(f"[ablation] {len(jobs)} runs, {args.jobs} in parallel, MAX_ITER {extra['max_iter']}",
          flush=True)
    results = {}
    t0 = time.time()

    def guarded(i, v, s):
        if args.deadline and time.time() - t_start > args.deadline:
            return {"mIoU": None, "seconds": None, "status": "not run (deadline)", "diag": {}}
        return run_one(args, i, v, s, max_iter)

    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(guarded, *job): job for job in jobs}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            extra["wall_s"] = round(time.time() - t0, 1)
            _write(args, results, args.seeds, "(partial)", extra)
    wall = time.time() - t0
    extra["wall_s"] = round(wall, 1)
    note = (
        f"Synthetic benchmark (`{os.path.relpath(args.config_file, REPO)}`, "
        f"SOLVER.MAX_ITER {extra['max_iter']} for every run"
        + (f", overrides `{' '.join(args.opts)}`" if args.opts else "")
        + f"), {len(args.seeds)} seeds ({' '.join(map(str, args.seeds))}), "
        f"{args.jobs} runs in parallel{' on ' + args.device if args.device else ''}; "
        f"wall time {wall / 60:.1f} min."
    )
    table = _write(args, results, args.seeds, note, extra)
    print(table)
    return results


if __name__ == "__main__":
    main()
