"""Seeded training runs and their statistics, shared by tools/run_synthetic_ablation.py and
tools/run_simulated_scribble_study.py.

Each run is one `projects/DFR/train_net.py` subprocess (the command a user would type) with
config overrides; its mIoU is read from `<run>/inference/<val set>/sem_seg_metrics.json` and the
feature-branch diagnostics (`diag/*`) from its metrics.json. A finished run is reused unless
forced; a crash is reported as such. Statistics: mean ± 95 % Student-t interval over seeds and
the "failing seed" mark.
"""
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

__all__ = ["REPO", "TRAIN_NET", "DIAG_KEYS", "FAIL_GAP", "metrics_path", "read_diagnostics",
           "train_net_command", "run_train_net", "t975", "mean_ci", "failing",
           "fmt_ci"]  # fmt: skip

# The checkout the package is installed from (editable install): the runs are its train_net.py.
REPO = Path(__file__).resolve().parents[2]
TRAIN_NET = REPO / "projects" / "DFR" / "train_net.py"
FAIL_GAP = 10.0  # a seed this many mIoU below the median of the variant's seeds is "failing"
DIAG_KEYS = ("m_frac", "pairs_bg", "pairs_fg", "pairs_neg", "feat_norm", "feat_dead_frac",
             "feat_dist", "ffac_same", "ffac_diff", "k_mean", "k_nofeat_mean")


def metrics_path(run_dir: Path):
    """The run's sem_seg_metrics.json, or None while it has not finished."""
    found = sorted(Path(run_dir).glob("inference/*/sem_seg_metrics.json"))
    return found[0] if found else None


def read_diagnostics(run_dir: Path) -> dict:
    """Mean of each diag/* scalar over the last quarter of the logged iterations, plus the
    first logged value (iteration 0 or the first diag row) as `<key>@0`."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return {}
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    out = {}
    for k in DIAG_KEYS:
        vals = [(r["iteration"], r[f"diag/{k}"]) for r in rows if f"diag/{k}" in r]
        if not vals:
            continue
        last = max(it for it, _ in vals)
        tail = [v for it, v in vals if it >= 0.75 * last and v is not None and math.isfinite(v)]
        out[k] = float(np.mean(tail)) if tail else float("nan")
        out[f"{k}@0"] = vals[0][1]
    return out


def train_net_command(args, overrides: Sequence[str], seed: int, run_dir: Path,
                      max_iter: int, late: Sequence[str] = ()) -> List[str]:  # fmt: skip
    """train_net.py on `args.config_file` with `overrides`, then `args.opts`, `args.device`,
    `late` (overrides that win over the user's) and `max_iter` (also the checkpoint and
    evaluation period), the seed and the output folder."""
    extra = list(args.opts)
    if args.device:
        extra += ["MODEL.DEVICE", args.device]
    extra += list(late)
    if max_iter:
        extra += ["SOLVER.MAX_ITER", str(max_iter), "SOLVER.CHECKPOINT_PERIOD", str(max_iter),
                  "TEST.EVAL_PERIOD", str(max_iter)]
    return [sys.executable, str(TRAIN_NET), "--num-gpus", "1", "--config-file", args.config_file,
            *overrides, *extra, "SEED", str(seed), "OUTPUT_DIR", str(run_dir)]


def run_train_net(args, name: str, overrides: Sequence[str], seed: int, max_iter: int,
                  run_dir: Path, late: Sequence[str] = (), tag: str = "runs") -> Dict:  # fmt: skip
    """One run (reused when finished, unless `args.force`): {"mIoU", "seconds" (None when
    reused), "status", "diag"}. `args`: config_file, opts, device, force, threads, jobs;
    `overrides` / `late`: as `train_net_command`; `name` and `tag` label the log lines."""
    run_dir = Path(run_dir)
    done = metrics_path(run_dir)
    if done is not None and not args.force:
        res = json.loads(done.read_text())
        print(f"[{tag}] {name} seed {seed}: reused mIoU {res['mIoU']:.2f}", flush=True)
        return {"mIoU": res["mIoU"], "seconds": None, "status": "ok",
                "diag": read_diagnostics(run_dir)}
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = train_net_command(args, overrides, seed, run_dir, max_iter, late)
    threads = str(args.threads or max(1, (os.cpu_count() or 1) // args.jobs))
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    print(f"[{tag}] start {name} seed {seed}", flush=True)
    t0 = time.time()
    with open(run_dir / "stdout.log", "w") as log:
        log.write(" ".join(cmd[1:]) + "\n")
        log.flush()
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    dt = time.time() - t0
    path = metrics_path(run_dir)
    if rc != 0 or path is None:
        tail = (run_dir / "stdout.log").read_text().splitlines()[-5:]
        print(f"[{tag}] FAILED {name} seed {seed} (rc={rc}): {tail}", flush=True)
        return {"mIoU": None, "seconds": dt, "status": f"crashed (rc={rc})",
                "diag": read_diagnostics(run_dir)}
    miou = json.loads(path.read_text())["mIoU"]
    print(f"[{tag}] done  {name} seed {seed}: mIoU {miou:.2f} in {dt:.0f} s", flush=True)
    return {"mIoU": miou, "seconds": dt, "status": "ok", "diag": read_diagnostics(run_dir)}


# ---- statistics --------------------------------------------------------------------------
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(dof: int) -> float:
    """Two-sided 95 % Student-t quantile (table; interpolated between entries, 1.96 beyond)."""
    if dof in _T975:
        return _T975[dof]
    keys = sorted(_T975)
    if dof > keys[-1]:
        return 1.96
    lo = max(k for k in keys if k < dof)
    hi = min(k for k in keys if k > dof)
    return _T975[lo] + (_T975[hi] - _T975[lo]) * (dof - lo) / (hi - lo)


def mean_ci(vals):
    """(mean, half-width of the 95 % t-interval) of a list; half-width NaN for one value."""
    v = np.asarray(vals, dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return float(v[0]), float("nan")
    return float(v.mean()), float(t975(len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def failing(vals: dict) -> set:
    """Seeds whose mIoU is more than FAIL_GAP below the median of the variant's seeds."""
    ok = {s: v for s, v in vals.items() if v is not None}
    if len(ok) < 3:
        return set()
    med = float(np.median(list(ok.values())))
    return {s for s, v in ok.items() if v < med - FAIL_GAP}


def fmt_ci(m, h) -> str:
    """"m ± h" with one decimal ("m" when h is NaN, "–" when m is)."""
    if not math.isfinite(m):
        return "–"
    return f"{m:.1f} ± {h:.1f}" if math.isfinite(h) else f"{m:.1f}"
