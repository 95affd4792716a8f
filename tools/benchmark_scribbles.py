#!/usr/bin/env python
"""Scribble simulation speed: maps per second per style, one process, on seeded random
512x512 label maps (8 classes, ~20 regions, an ignore band), or on the label PNGs of --labels.

    OMP_NUM_THREADS=1 python tools/benchmark_scribbles.py --maps 20

The target is >= 5 maps/s per style on one thread. Reported per CPU-second of this process
(what one thread costs, also on a busy machine) and per wall-clock second.
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


def random_label_map(rng: np.random.Generator, size: int = 512, classes: int = 8) -> np.ndarray:
    """A scene-like dense map: a few horizontal 'stuff' bands, ~20 filled ellipses and
    polygons of random classes on top, object outlines as a 5-px ignore band (as VOC)."""
    lab = np.zeros((size, size), np.uint8)
    cuts = np.sort(rng.integers(size // 5, size - size // 5, 2))
    lab[cuts[0] : cuts[1]] = 1
    lab[cuts[1] :] = 2
    for _ in range(20):
        c = int(rng.integers(3, classes))
        if rng.random() < 0.5:
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            axes = tuple(int(v) for v in rng.integers(5, size // 5, 2))
            cv2.ellipse(lab, centre, axes, float(rng.uniform(0, 180)), 0, 360, c, -1)
        else:
            pts = rng.integers(0, size, (int(rng.integers(3, 7)), 2)).astype(np.int32)
            cv2.fillPoly(lab, [cv2.convexHull(pts)], c)
    edges = cv2.morphologyEx(lab, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    band = cv2.dilate(edges.view(np.uint8), np.ones((3, 3), np.uint8)) > 0
    lab[band & (rng.random() < 0.5)] = 255
    return lab


def main(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--maps", type=int, default=20, help="random maps per style")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--styles", default=",".join(STYLES))
    p.add_argument("--labels", default=None, help="folder of dense label PNGs instead")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)  # one thread (with OMP_NUM_THREADS=1 for numpy / scipy)
    if args.labels:
        from dfr.data.labels import read_label

        maps = [read_label(str(f)) for f in sorted(Path(args.labels).glob("*.png"))]
    else:
        rng = np.random.default_rng(0)
        maps = [random_label_map(rng, args.size) for _ in range(args.maps)]
    print(f"{len(maps)} maps, {maps[0].shape[0]}x{maps[0].shape[1]} (first), one process")
    for style in args.styles.split(","):
        simulate_scribbles(maps[0], style=style, seed=0)  # warm-up (imports, caches)
        outs = []
        t0, c0 = time.perf_counter(), time.process_time()
        for i, lab in enumerate(maps):
            outs.append(simulate_scribbles(lab, style=style, seed=i))
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        labeled = np.mean([(o != 255).mean() for o in outs])
        wrong = sum(int(((o != 255) & (o != lab)).sum()) for o, lab in zip(outs, maps))
        print(
            f"{style:>9}: {len(maps) / dc:6.2f} maps per CPU-second "
            f"({1000 * dc / len(maps):6.1f} ms CPU/map; wall {len(maps) / dt:6.2f} maps/s), "
            f"labeled {100 * labeled:.2f} %, pixels of another class {wrong}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
