#!/usr/bin/env python
"""Write docs/synthetic_samples.png: image | scribbles | dense ground truth for a few samples
of the embedded synthetic benchmark (dfr.data.synthetic), rendered exactly as the generator
does (same seeds as the training split), without touching the dataset folder.

    .venv/bin/python tools/make_synthetic_samples.py [--num 4] [--output docs/synthetic_samples.png]
"""

# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import os

import cv2
import numpy as np

from dfr.data.classes import IGNORE_LABEL, voc_palette
from dfr.data.scribbles import skeleton_scribbles
from dfr.data.synthetic import DEFAULT_SPEC, SYNTHETIC_CLASSES, _sizes, render_sample


def colourise(label: np.ndarray, image: np.ndarray = None) -> np.ndarray:
    pal = voc_palette(256).copy()
    if image is not None:
        pal[0] = 255  # background scribbles in white (palette black is invisible on dark)
    out = pal[label]
    if image is not None:  # unlabeled pixels show a dimmed image, so scribbles stand out
        out = np.where((label == IGNORE_LABEL)[..., None], (image * 0.35).astype(np.uint8), out)
    return out


def main():
    from dfr.cli import HelpFormatter

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    ap.add_argument("--num", type=int, default=4)
    ap.add_argument("--output", default="docs/synthetic_samples.png")
    args = ap.parse_args()
    spec, rows, side = DEFAULT_SPEC, [], 256
    for i in range(args.num):
        rng = np.random.default_rng([spec["seed"], 0, i])  # = train_{i:05d}.png
        h, w = _sizes(rng, spec)
        img, label = render_sample(rng, h, w)
        scr = skeleton_scribbles(label, rng, width=spec["scribble_width"],
                                 target_fraction=spec["scribble_fraction"])  # fmt: skip
        tiles = [img, colourise(scr, img), colourise(label)]
        tiles = [cv2.resize(t, (side, side), interpolation=cv2.INTER_NEAREST) for t in tiles]
        pad = np.full((side, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([tiles[0], pad, tiles[1], pad, tiles[2]], 1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    grid = np.concatenate(rows[:-1], 0)
    legend = np.full((28, grid.shape[1], 3), 255, np.uint8)
    x = 4
    for c, name in enumerate(SYNTHETIC_CLASSES):
        cv2.rectangle(legend, (x, 6), (x + 16, 22), voc_palette(256)[c].tolist(), -1)
        cv2.putText(legend, name, (x + 20, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        x += 30 + 10 * len(name)
    cv2.putText(legend, "image | scribbles | ground truth", (x + 10, 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)  # fmt: skip
    grid = np.concatenate([grid, legend], 0)
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    cv2.imwrite(args.output, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.output} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()
