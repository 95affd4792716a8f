#!/usr/bin/env python
"""Overhead of the feature-branch diagnostics (MODEL.DFR.DIAG_PERIOD): time of one training
step (forward, backward, AdamW step) of a config's model on a fixed batch with the diagnostics
computed at every step vs never; the cost at period N is (on − off) / N.

    python tools/measure_diag_overhead.py --threads 1
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml"


def main(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--config-file", default=str(DEFAULT_CONFIG))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=5, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=3, help="best of this many repeats")
    p.add_argument("opts", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from dfr.config import get_dfr_cfg

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = get_dfr_cfg(args.config_file, args.opts)
    model = build_model(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    h, w = cfg.INPUT.CROP.SIZE
    g = torch.Generator().manual_seed(0)
    batch = []
    for _ in range(cfg.SOLVER.IMS_PER_BATCH):  # random image, a few scribble strokes
        lab = torch.full((h, w), 255, dtype=torch.long)
        lab[h // 6:h // 6 + 10, w // 6:w // 2] = 1
        lab[h // 2:h // 2 + 4, 10:w - 20] = 0
        lab[3 * h // 4:3 * h // 4 + 5, w // 3:2 * w // 3] = 2
        img = torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=g)
        batch.append({"image": img, "sem_seg": lab})

    def step():
        loss = sum(model(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    times = {0: [], 1: []}
    with EventStorage(0):  # iteration 0: every period divides it
        for _ in range(3):
            step()
        for _ in range(args.repeats):
            for period in (0, 1):
                model.criterion.diag_period = period
                t = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[period].append((time.perf_counter() - t) / args.steps)
    off, on = min(times[0]), min(times[1])
    n = cfg.MODEL.DFR.DIAG_PERIOD
    print(f"step {1e3 * off:.1f} ms without diagnostics, {1e3 * on:.1f} ms with them at every "
          f"step: {1e3 * (on - off):.1f} ms per diagnostics call = {100 * (on - off) / off:.1f} % "
          f"of a step; at DIAG_PERIOD {n}: {100 * (on - off) / off / max(n, 1):.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
