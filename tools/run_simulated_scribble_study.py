#!/usr/bin/env python
"""Does DFR train on simulated scribbles as on real ones? On the synthetic benchmark (its dense
labels exist), train the CPU config on (a) the benchmark's own scribbles and (b) scribbles
simulated from its dense training labels in each style (`synthetic_full_train_sim_<style>`,
dfr.data.datasets.simulated), the same seeds each, and report mIoU on the same val set:
mean ± 95 % t-interval per training set and the paired difference to (a) (same seed).

Every run is a `projects/DFR/train_net.py` subprocess with only DATASETS.TRAIN changed
(dfr_tools.seed_runs: the runner and statistics of tools/run_synthetic_ablation.py too);
finished runs are reused (--force reruns). Training seed k trains on the scribbles simulated
with seed k (DATASETS.DFR.SIMULATION_SEED; --simulation-seed fixes one set for every run), so
the interval covers both; every simulated set is written before the runs start. --scale
(default auto) is DATASETS.DFR.SIMULATION_SCALE of the simulated sets. Writes
`<output>/results.md` and `results.json`, the partial table after every run.

--scribble-variants adds the scribble-length study (Fig. 3) on simulated scribbles: each style's
set shortened to p % of every scribble's length (lenP) or with p % of the scribbles dropped
(dropP), `synthetic_full_train_sim_<style>_<lenP|dropP>` (dfr.data.datasets.simulated); their
rows also give the paired difference to the style's full scribbles.

    python tools/run_simulated_scribble_study.py --seeds 0 1 2 --output output/simulated_study
    python tools/run_simulated_scribble_study.py --styles s4 --seeds 0 --max-iter 300 --jobs 2
    python tools/run_simulated_scribble_study.py --styles s4 --seeds 0 1 2 \
        --scribble-variants len30 len50 drop30 drop50 --output output/simulated_study
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import json
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from dfr_tools.seed_runs import fmt_ci, mean_ci, run_train_net

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml"
TARGET = 2.0  # mIoU: a style "trains like real scribbles" when its paired difference is within


SCRIBBLE_VARIANT = re.compile(r"(len|drop)(\d+)")


def scribble_variant(text: str) -> str:
    """argparse type of --scribble-variants: lenP / dropP, P in 0..100."""
    m = SCRIBBLE_VARIANT.fullmatch(text)
    if m is None or int(m.group(2)) > 100:
        raise argparse.ArgumentTypeError(f"{text!r}: expected lenP or dropP, P in 0..100")
    return text


def variants(prefix: str, styles, scribble_variants=()):
    """{name: (label, train set)}: the benchmark's own scribbles, then per style its simulated
    scribbles and their shortened / dropped variants (Fig. 3)."""
    out = {"own": ("own scribbles", f"{prefix}_scribble_train")}
    for s in styles:
        out[f"sim_{s}"] = (f"simulated, style {s}", f"{prefix}_full_train_sim_{s}")
        for v in scribble_variants:
            kind, pct = SCRIBBLE_VARIANT.fullmatch(v).groups()
            how = f"shortened to {pct} %" if kind == "len" else f"{pct} % of scribbles dropped"
            out[f"sim_{s}_{v}"] = (f"simulated, style {s}, {how}",
                                   f"{prefix}_full_train_sim_{s}_{v}")  # fmt: skip
    return out


def full_length(v: str):
    """The variant whose full scribbles `v` shortens or drops (sim_s4_len30 -> sim_s4)."""
    head, _, tail = v.rpartition("_")
    return head if v.startswith("sim_") and SCRIBBLE_VARIANT.fullmatch(tail) else None


def parse_args(argv=None):
    from dfr.data.scribbles import STYLES

    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--config-file", default=str(DEFAULT_CONFIG))
    p.add_argument("--prefix", default="synthetic",
                   help="synthetic set: <prefix>_scribble_train / _full_train / _scribble_val "
                        "(synthetic_tiny: the 16-image smoke set)")  # fmt: skip
    p.add_argument("--styles", nargs="+", default=list(STYLES), choices=list(STYLES))
    p.add_argument("--scribble-variants", nargs="*", default=[], type=scribble_variant,
                   metavar="{lenP,dropP}",
                   help="Fig. 3 study: also train on each style's scribbles shortened to P %% "
                        "(lenP) / with P %% of them dropped (dropP)")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--simulation-seed", type=int, default=None,
                   help="one simulated set for every run (default: the run's training seed)")
    p.add_argument("--scale", default="auto",
                   help="DATASETS.DFR.SIMULATION_SCALE of the simulated sets: 'auto' (the "
                        "styles' sizes scale with each image) or a factor (1.0: the published "
                        "pixel constants, as table 1a of docs/simulated_scribble_study.md)")
    p.add_argument("--output", default="output/simulated_study")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (0: cores/jobs)")
    p.add_argument("--device", default="", help="MODEL.DEVICE of every run (default: config's)")
    p.add_argument("--max-iter", type=int, default=0, help="SOLVER.MAX_ITER of every run")
    p.add_argument("--force", action="store_true", help="rerun finished runs")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    a = p.parse_args(argv)
    if a.opts and a.opts[0] == "--":
        a.opts = a.opts[1:]
    from dfr.data.datasets.simulated import normalize_scale

    try:
        a.scale = normalize_scale(a.scale)
    except ValueError as e:
        p.error(f"--scale: {e}")
    return a


def sim_seed(args, seed: int) -> int:
    return seed if args.simulation_seed is None else args.simulation_seed


def run_key(v: str, args, seed: int) -> str:
    """Name of the run of training set `v` for training seed `seed` (its log label)."""
    return v if v == "own" else f"{v}@sim{sim_seed(args, seed)}"


def prepare_sets(var, args):
    """Load every training set (and simulation seed) once in this process, so that parallel
    runs only read the simulated maps; returns {train set: labeled pixels in %, mean over the
    simulation seeds}."""
    from detectron2.data import DatasetCatalog

    from dfr.data import register_simulated_scribbles
    from dfr.data.datasets.simulated import parse_simulated_name
    from dfr.data.labels import read_label

    shares = {}
    for v, (_, train) in var.items():
        parsed, got = parse_simulated_name(train), []
        for k in sorted({sim_seed(args, s) for s in args.seeds}) if parsed else [None]:
            if parsed:
                register_simulated_scribbles(parsed[0], style=parsed[1], seed=k,
                                             scale=args.scale)  # fmt: skip
            lab = [read_label(r["sem_seg_file_name"]) for r in DatasetCatalog.get(train)]
            got.append(sum(int((x != 255).sum()) for x in lab) / sum(x.size for x in lab))
        shares[train] = 100.0 * sum(got) / len(got)
    return shares


def make_table(results, seeds, var, shares) -> str:
    """Markdown: per training set mean ± 95 % t-interval, per-seed values, labeled share, and
    the paired difference to the own scribbles with the ±TARGET verdict (for a style; a
    shortened / dropped set gets the paired difference to its style's full scribbles)."""
    seed_cols = " | ".join(f"seed {s}" for s in seeds)
    fig3 = any(full_length(v) for v in var)
    lines = [f"| training scribbles | labeled px | mIoU | n | {seed_cols} | "
             + ("− full length (paired) | " if fig3 else "") + f"− own (paired) | "
             f"within {TARGET:g} |",
             "|:--|--:|--:|--:|" + "--:|" * (len(seeds) + fig3) + "--:|:--:|"]  # fmt: skip

    def miou(v, s):
        return (results.get((v, s)) or {}).get("mIoU")

    def paired(v, ref):
        return [miou(v, s) - miou(ref, s) for s in seeds
                if miou(v, s) is not None and miou(ref, s) is not None]  # fmt: skip

    for v, (label, train) in var.items():
        runs = {s: results.get((v, s)) for s in seeds}
        vals = [r["mIoU"] for r in runs.values() if r and r.get("mIoU") is not None]
        m, h = mean_ci(vals)
        cells = ["not run" if r is None else (f"{r['mIoU']:.1f}" if r.get("mIoU") is not None
                                              else r.get("status", "crash"))
                 for r in runs.values()]  # fmt: skip
        diff, verdict = "", ""
        if fig3:
            full = full_length(v)
            cells.append(fmt_ci(*mean_ci(paired(v, full))) if full else "")
        if v != "own":
            d = paired(v, "own")
            dm, dh = mean_ci(d)
            diff = fmt_ci(dm, dh)
            if d and not full_length(v):
                verdict = "yes" if abs(dm) <= TARGET else "no"
                if math.isfinite(dh) and (dm - dh > TARGET or dm + dh < -TARGET):
                    verdict = "no (CI outside)"
                elif math.isfinite(dh) and (abs(dm) + dh > TARGET):
                    verdict += " (CI crosses)"
        share = f"{shares[train]:.2f} %" if train in shares else "–"
        lines.append(f"| {label} (`{train}`) | {share} | {fmt_ci(m, h)} | {len(vals)} | "
                     + " | ".join(cells) + f" | {diff} | {verdict} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    var = variants(args.prefix, args.styles, args.scribble_variants)
    val = f"{args.prefix}_scribble_val"

    def overrides(v, s):
        return ["DATASETS.TRAIN", f"('{var[v][1]}',)", "DATASETS.TEST", f"('{val}',)",
                "DATASETS.DFR.SIMULATION_SEED", str(sim_seed(args, s)),
                "DATASETS.DFR.SIMULATION_SCALE", str(args.scale)]  # fmt: skip

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    shares = prepare_sets(var, args)
    print(f"[study] training sets ready in {time.time() - t0:.0f} s: "
          + ", ".join(f"{k} {v:.2f} % labeled" for k, v in shares.items()), flush=True)
    jobs = [(v, s) for s in args.seeds for v in var]
    results = {}

    def write(note):
        table = make_table(results, args.seeds, var, shares)
        (out / "results.md").write_text((note + "\n\n" if note else "") + table)
        (out / "results.json").write_text(json.dumps({
            "config": args.config_file, "opts": args.opts, "seeds": args.seeds,
            "styles": args.styles, "scribble_variants": args.scribble_variants,
            "prefix": args.prefix, "max_iter": args.max_iter,
            "simulation_seed": args.simulation_seed, "simulation_scale": args.scale,
            "labeled_percent": shares, "target_miou": TARGET,
            "results": {f"{v}/{s}": r for (v, s), r in results.items()}}, indent=1))  # fmt: skip
        return table

    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_train_net, args, run_key(v, args, s), overrides(v, s), s,
                               args.max_iter, out / v / f"seed{s}", tag="study"): (v, s)
                   for v, s in jobs}  # fmt: skip
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            write("(partial)")
    wall = time.time() - t0
    note = (f"Synthetic benchmark (`{os.path.relpath(args.config_file, REPO)}`"
            + (f", SOLVER.MAX_ITER {args.max_iter}" if args.max_iter else "")
            + (f", overrides `{' '.join(args.opts)}`" if args.opts else "")
            + f"), evaluated on `{val}`; {len(args.seeds)} training seeds "
            f"({' '.join(map(str, args.seeds))}), simulation seed "
            + ("= training seed" if args.simulation_seed is None else str(args.simulation_seed))
            + f", simulation scale {args.scale}; {args.jobs} runs in "
            f"parallel; wall time {wall / 60:.1f} min. mIoU: mean ± 95 % t-interval; "
            f"'within {TARGET:g}': |mean paired difference| <= {TARGET:g} mIoU.")  # fmt: skip
    table = write(note)
    print(table)
    return results


if __name__ == "__main__":
    main()
