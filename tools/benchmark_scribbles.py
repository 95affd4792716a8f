#!/usr/bin/env python
"""Scribble simulation speed: maps per second per style on seeded random scene-like label
maps (8 classes, ~20 regions, an ignore band; --size W or WxH), or on the label PNGs of
--labels.

    OMP_NUM_THREADS=1 python tools/benchmark_scribbles.py --maps 20 --size 640x480
    OMP_NUM_THREADS=1 python tools/benchmark_scribbles.py --maps 1 --size 4000 --scale auto
    OMP_NUM_THREADS=1 python tools/benchmark_scribbles.py --maps 64 --size 640x480 --workers 2

One process (default): maps per CPU-second of this process (what one thread costs, also on a
busy machine) and per wall-clock second. --workers N: N processes of one thread each (as
DATASETS.DFR.SIMULATION_WORKERS runs them), maps per wall-clock second and per core (/ N).
Targets (docs/scribble_faithfulness.md): >= 2.1 maps/s per core at 640x480, <= 10 s for a
4000x4000 map, every style.
"""

from __future__ import annotations

# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from dfr.data.scribbles.simulate import STYLES, simulate_scribbles


def random_label_map(rng: np.random.Generator, size=512, classes: int = 8) -> np.ndarray:
    """A scene-like dense map of `size` (an int or (h, w)): a few horizontal 'stuff' bands,
    ~20 filled ellipses and polygons of random classes on top, object outlines as a 5-px
    ignore band (as VOC)."""
    h, w = (size, size) if np.isscalar(size) else size
    side = min(h, w)
    lab = np.zeros((h, w), np.uint8)
    cuts = np.sort(rng.integers(h // 5, h - h // 5, 2))
    lab[cuts[0] : cuts[1]] = 1
    lab[cuts[1] :] = 2
    for _ in range(20):
        c = int(rng.integers(3, classes))
        if rng.random() < 0.5:
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = tuple(int(v) for v in rng.integers(5, side // 5, 2))
            cv2.ellipse(lab, centre, axes, float(rng.uniform(0, 180)), 0, 360, c, -1)
        else:
            pts = (rng.random((int(rng.integers(3, 7)), 2)) * [w, h]).astype(np.int32)
            cv2.fillPoly(lab, [cv2.convexHull(pts)], c)
    edges = cv2.morphologyEx(lab, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    band = cv2.dilate(edges.view(np.uint8), np.ones((3, 3), np.uint8)) > 0
    lab[band & (rng.random() < 0.5)] = 255
    return lab


def main(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--maps", type=int, default=20, help="random maps per style")
    p.add_argument("--size", default="512", help="W or WxH of the random maps")
    p.add_argument("--scale", default="1.0", help="simulate_scribbles(scale=): 1.0, s or auto")
    p.add_argument("--workers", type=int, default=0,
                   help="N > 0: N processes of one thread each, maps per wall-second and core")
    p.add_argument("--styles", default=",".join(STYLES))
    p.add_argument("--labels", default=None, help="folder of dense label PNGs instead")
    args = p.parse_args(argv)
    w, _, h = args.size.partition("x")
    size = (int(h or w), int(w))
    cv2.setNumThreads(1)  # one thread (with OMP_NUM_THREADS=1 for numpy / scipy)
    if args.labels:
        from dfr.data.labels import read_label

        maps = [read_label(str(f)) for f in sorted(Path(args.labels).glob("*.png"))]
    else:
        rng = np.random.default_rng(0)
        maps = [random_label_map(rng, size) for _ in range(args.maps)]
    how = f"{args.workers} processes" if args.workers > 0 else "one process"
    print(f"{len(maps)} maps, {maps[0].shape[1]}x{maps[0].shape[0]} (first, w x h), {how}, "
          f"scale {args.scale}")  # fmt: skip
    if args.workers > 0:
        return _pool_rates(maps, args)
    for style in args.styles.split(","):
        simulate_scribbles(maps[0], style=style, seed=0, scale=args.scale)  # warm-up
        outs = []
        t0, c0 = time.perf_counter(), time.process_time()
        for i, lab in enumerate(maps):
            outs.append(simulate_scribbles(lab, style=style, seed=i, scale=args.scale))
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        labeled = np.mean([(o != 255).mean() for o in outs])
        wrong = sum(int(((o != 255) & (o != lab)).sum()) for o, lab in zip(outs, maps))
        print(
            f"{style:>13}: {len(maps) / dc:6.2f} maps per CPU-second "
            f"({1000 * dc / len(maps):6.1f} ms CPU/map; wall {len(maps) / dt:6.2f} maps/s), "
            f"labeled {100 * labeled:.2f} %, pixels of another class {wrong}"
        )
    return 0


def _one(task):
    lab, style, seed, scale = task
    return int((simulate_scribbles(lab, style=style, seed=seed, scale=scale) != 255).sum())


def _pool_rates(maps, args):
    from dfr.data.datasets.simulated import worker_pool  # the datasets' one-thread workers

    with worker_pool(args.workers) as pool:
        pool.map(_one, [(maps[0], s, 0, args.scale) for s in args.styles.split(",")])  # warm-up
        for style in args.styles.split(","):
            t0 = time.perf_counter()
            pool.map(_one, [(m, style, i, args.scale) for i, m in enumerate(maps)], chunksize=1)
            rate = len(maps) / (time.perf_counter() - t0)
            print(f"{style:>13}: {rate:6.2f} maps/s wall, {rate / args.workers:6.2f} per core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
