#!/usr/bin/env python
"""Plot training scalars of one or more runs from their metrics.json (Detectron2's JSONWriter):
the losses and the feature-branch diagnostics `diag/*` (MODEL.DFR.DIAG_PERIOD), one panel per
key, one line per run, into a PNG.

    python tools/plot_metrics.py output/demo -o output/demo/metrics.png
    python tools/plot_metrics.py output/ablation/random/{dfr_xy_rgb,full}/seed0 \
        --keys diag/feat_dead_frac diag/ffac_diff loss_fd -o compare.png
"""
import argparse
import json
import math
import sys
from pathlib import Path

DEFAULT_PATTERNS = ("loss_", "diag/", "total_loss")


def read_metrics(path) -> dict:
    """metrics.json (or a run folder holding one) -> {key: [(iteration, value), ...]}."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    series = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        it = row.get("iteration")
        for k, v in row.items():
            if k == "iteration" or not isinstance(v, (int, float)) or v is None:
                continue
            series.setdefault(k, []).append((it, float(v)))
    return series


def default_keys(all_series) -> list:
    keys = sorted({k for s in all_series for k in s if k.startswith(DEFAULT_PATTERNS)})
    return [k for k in keys if not k.startswith("diag/")] + [k for k in keys
                                                            if k.startswith("diag/")]


def plot(runs, labels, keys, out, cols=4, logy=("diag/pairs_",)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [read_metrics(r) for r in runs]
    keys = keys or default_keys(series)
    if not keys:
        raise SystemExit("no matching keys in " + ", ".join(map(str, runs)))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for n, (s, lab) in enumerate(zip(series, labels)):  # one colour per run everywhere
            pts = [(i, v) for i, v in s.get(key, []) if math.isfinite(v)]
            if pts:
                ax.plot(*zip(*pts), label=lab, lw=1.2, color=f"C{n % 10}",
                        marker="." if len(pts) < 30 else None)
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
        if key.startswith(logy):
            ax.set_yscale("symlog")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if len(runs) > 1:
        axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return keys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="metrics.json files or run folders")
    p.add_argument("-o", "--output", default="metrics.png", help="output PNG (default: %(default)s)")
    p.add_argument("--keys", nargs="*", default=None, help="keys to plot (default: every loss_*, diag/* and total_loss)")
    p.add_argument("--labels", nargs="*", default=None, help="legend entries (default: paths)")
    p.add_argument("--cols", type=int, default=4, help="panels per row (default: %(default)s)")
    args = p.parse_args(argv)
    labels = args.labels or [str(r) for r in args.runs]
    keys = plot(args.runs, labels, args.keys, args.output, args.cols)
    print(f"wrote {args.output} ({len(keys)} panels, {len(args.runs)} run(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
