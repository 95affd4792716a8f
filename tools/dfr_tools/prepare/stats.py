"""Scribble statistics of label maps: labeled-pixel fraction, pixels per class and scribbles
per image (`image_stats`), and the Markdown + histogram report (`write_report`) written by
tools/scribble_stats.py and datasets/prepare_custom_scribbles.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

__all__ = ["image_stats", "write_report"]


def image_stats(label: np.ndarray, num_classes: int, num_scribbles=None):
    """{'fraction', 'pixels' (C,), 'scribbles'} of one label map (255 = unlabeled)."""
    lab = np.asarray(label)
    pix = np.bincount(lab[lab != 255].ravel(), minlength=num_classes)[:num_classes]
    if num_scribbles is None:
        eight = np.ones((3, 3), bool)
        num_scribbles = sum(
            ndimage.label(lab == c, structure=eight)[1] for c in np.flatnonzero(pix)
        )
    return {
        "fraction": float((lab != 255).mean()),
        "pixels": pix,
        "scribbles": int(num_scribbles),
        "size": lab.size,
    }


def write_report(rows, names, out: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fr = np.array([r["fraction"] for r in rows.values()])
    ns = np.array([r["scribbles"] for r in rows.values()])
    pix = np.stack([r["pixels"] for r in rows.values()])
    tot = pix.sum()
    md = [
        f"# Scribble statistics: {title}",
        "",
        f"{len(rows)} images; labeled pixels per image: mean {100 * fr.mean():.2f} %, "
        f"median {100 * np.median(fr):.2f} %, min {100 * fr.min():.2f} %, "
        f"max {100 * fr.max():.2f} % "
        "(standard 3-px VOC conversion: about 3 %); "
        f"scribbles per image: mean {ns.mean():.2f}, min {ns.min()}, max {ns.max()}.",
        "",
        "## Per class",
        "",
        "| id | class | images | share of labeled pixels | mean % of image where present |",
        "|---:|---|---:|---:|---:|",
    ]
    sizes = np.array([r["size"] for r in rows.values()])
    for c, name in enumerate(names):
        has = pix[:, c] > 0
        if not has.any():
            continue
        mean_pct = 100 * np.mean(pix[has, c] / sizes[has])
        md.append(
            f"| {c} | {name} | {has.sum()} | {100 * pix[:, c].sum() / max(tot, 1):.2f} % "
            f"| {mean_pct:.2f} % |"
        )
    md += [
        "",
        "## Per image",
        "",
        "| image | labeled % | scribbles | classes |",
        "|---|---:|---:|---|",
    ]
    order = sorted(rows, key=lambda k: rows[k]["fraction"])
    shown = order if len(order) <= 40 else order[:20] + order[-20:]
    for i, iid in enumerate(shown):
        if len(order) > 40 and i == 20:
            md.append(f"| ... {len(order) - 40} images ... | | | |")
        r = rows[iid]
        cls = ", ".join(names[c] for c in np.flatnonzero(r["pixels"]))
        md.append(f"| {iid} | {100 * r['fraction']:.2f} | {r['scribbles']} | {cls} |")
    md += ["", "![histograms](scribble_stats.png)", ""]
    (out / "scribble_stats.md").write_text("\n".join(md))

    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    ax[0].hist(100 * fr, bins=min(50, max(5, len(fr) // 4)), color="tab:blue")
    ax[0].axvline(3.0, color="k", ls="--", lw=1, label="≈3 % (standard 3-px)")
    ax[0].set(xlabel="labeled pixels per image (%)", ylabel="images", title=title)
    ax[0].legend()
    ax[1].hist(ns, bins=np.arange(ns.max() + 2) - 0.5, color="tab:green")
    ax[1].set(xlabel="scribbles per image", ylabel="images")
    share = 100 * pix.sum(0) / max(tot, 1)
    ax[2].bar(np.arange(len(names)), share, color="tab:orange")
    ax[2].set(xlabel="class id", ylabel="% of labeled pixels")
    fig.tight_layout()
    fig.savefig(out / "scribble_stats.png", dpi=80)
    plt.close(fig)
    return fr, ns
