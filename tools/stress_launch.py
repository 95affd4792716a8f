#!/usr/bin/env python
"""Run `train_net.py --num-gpus 2` (CPU processes over gloo) N times and count clean exits.

Each run trains the instant-test config for 2 iterations and evaluates. A run is clean when it
exits 0 and printed no "terminate called" line (a C++ thread still alive at interpreter exit).

    python tools/stress_launch.py --runs 20
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN_NET = REPO / "projects" / "DFR" / "train_net.py"
INSTANT = REPO / "projects/DFR/configs/quick_schedules/dfr_swin_tiny_synthetic_instant_test.yaml"


def run_once(out_dir: Path, timeout: float):
    cmd = [sys.executable, str(TRAIN_NET), "--num-gpus", "2", "--dist-url", "auto",
           "--config-file", str(INSTANT), "SOLVER.MAX_ITER", "2", "TEST.EVAL_PERIOD", "0",
           "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(out_dir)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    log = proc.stdout + proc.stderr
    evaluated = "mIoU" in log
    return proc.returncode, "terminate called" in log, evaluated, time.monotonic() - start, log


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="number of 2-process runs")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--keep-logs", type=Path, default=None,
                        help="write the log of every unclean run into this folder")  # fmt: skip
    args = parser.parse_args(argv)
    clean = 0
    with tempfile.TemporaryDirectory(prefix="dfr-stress-") as tmp:
        for i in range(args.runs):
            rc, terminate, evaluated, secs, log = run_once(Path(tmp) / f"run{i}", args.timeout)
            ok = rc == 0 and not terminate and evaluated
            clean += ok
            print(f"run {i + 1:3d}/{args.runs}: exit {rc:4d}  terminate-line {terminate!s:5}  "
                  f"evaluated {evaluated!s:5}  {secs:5.1f} s  {'clean' if ok else 'FAILED'}",
                  flush=True)  # fmt: skip
            if not ok and args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                (args.keep_logs / f"run{i}.log").write_text(log)
    print(f"{clean}/{args.runs} clean runs")
    return 0 if clean == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
