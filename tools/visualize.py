#!/usr/bin/env python
"""Visualise a trained DFR model on one image of a registered dataset.

Writes, under --output:
  <id>_panel.png   image | scribbles | prediction | ground truth (when --gt-dataset is given)
  <id>_kernel.png  for one pixel i, K(i, j) over its (2r+1)^2 window on the loss map (Eq. 5):
                   XY·RGB only | XY·RGB·F (with the learned feature term) | the window's image
  <id>_M.png       the confident-label map M (Eq. 7, gamma = MODEL.DFR.GAMMA) on the loss map;
                   grey = not confident (255)

    python tools/visualize.py \
        --config-file projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml \
        --weights output/demo/model_final.pth --dataset synthetic_scribble_train \
        --gt-dataset synthetic_full_train --index 0 --output output/vis
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import os

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def parse_args(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", required=True, help="model checkpoint (.pth)")
    p.add_argument("--dataset", required=True, help="registered dataset with scribbles")
    p.add_argument("--gt-dataset", default="", help="same images with dense labels (optional)")
    p.add_argument("--index", type=int, nargs="+", default=[0], help="record index(es)")
    p.add_argument("--pixel", type=int, nargs=2, default=None, metavar=("Y", "X"),
                   help="pixel (image coords) for the kernel; default: a scribble pixel near an"
                   " object edge")  # fmt: skip
    p.add_argument("--output", default="output/vis")
    p.add_argument("--scale", type=int, default=2, help="upscaling of the saved panels")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides")
    return p.parse_args(argv)


def _colorize(label: np.ndarray, colors: np.ndarray) -> np.ndarray:
    out = np.full(label.shape + (3,), 128, np.uint8)  # 255 (unlabeled) -> grey
    known = label != 255
    out[known] = colors[np.clip(label[known], 0, len(colors) - 1)]
    return out


def _heat(k: np.ndarray, size: int) -> np.ndarray:
    u8 = (255 * np.clip(k, 0, 1)).astype(np.uint8)
    rgb = cv2.applyColorMap(u8, cv2.COLORMAP_VIRIDIS)[..., ::-1]
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_NEAREST)


def window_kernels(img_s, feats, y, x, radius, sigma_xy, sigma_rgb, sigma_feat, stride=1.0):
    """K(i, j) of Eq. 5 for pixel i = (y, x) and every j in its window, on the loss map.

    img_s: (3, h, w) normalised image at the loss map size; feats: (d, h, w) or None.
    Returns (k_xy_rgb, k_full) as (2r+1, 2r+1) arrays (NaN outside the map; k_full is None
    without feats). The centre (j = i) is 1 by definition and excluded by the loss.
    """
    n = 2 * radius + 1
    _, h, w = img_s.shape
    k1 = np.full((n, n), np.nan)
    k2 = np.full((n, n), np.nan) if feats is not None else None
    for a, dy in enumerate(range(-radius, radius + 1)):
        for b, dx in enumerate(range(-radius, radius + 1)):
            yy, xx = y + dy, x + dx
            if not (0 <= yy < h and 0 <= xx < w):
                continue
            e = (stride**2) * (dy * dy + dx * dx) / (2 * sigma_xy**2)
            e += float(((img_s[:, y, x] - img_s[:, yy, xx]) ** 2).sum()) / (2 * sigma_rgb**2)
            k1[a, b] = np.exp(-e)
            if feats is not None:
                ef = float(((feats[:, y, x] - feats[:, yy, xx]) ** 2).sum()) / (2 * sigma_feat**2)
                k2[a, b] = np.exp(-e - ef)
    return k1, k2


def _default_pixel(scribble: np.ndarray, gt: np.ndarray):
    ys, xs = np.nonzero((scribble != 255) & (scribble != 0))
    if len(ys) == 0:
        ys, xs = np.nonzero(scribble != 255)
    if len(ys) == 0:
        return scribble.shape[0] // 2, scribble.shape[1] // 2
    k = len(ys) // 2
    return int(ys[k]), int(xs[k])


def main(argv=None):
    args = parse_args(argv)

    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dfr.config import get_dfr_cfg
    from dfr.data import ScribbleDatasetMapper, register_datasets_from_cfg
    from dfr.engine import DFRCheckpointer, Trainer
    from dfr.modeling.losses import confident_labels
    from dfr.utils import resize

    cfg = get_dfr_cfg(args.config_file, args.opts)
    register_datasets_from_cfg(cfg)
    cfg.freeze()
    model = Trainer.build_model(cfg).eval()
    DFRCheckpointer.from_config(cfg, model, save_dir="").load(args.weights)
    d = cfg.MODEL.DFR
    colors = np.array(MetadataCatalog.get(args.dataset).stuff_colors, dtype=np.uint8)
    records = DatasetCatalog.get(args.dataset)
    gt_by_file = {}
    if args.gt_dataset:
        gt_by_file = {r["file_name"]: r for r in DatasetCatalog.get(args.gt_dataset)}
    mapper = ScribbleDatasetMapper(cfg, is_train=False)
    os.makedirs(args.output, exist_ok=True)
    s = args.scale
    written = []
    for idx in args.index:
        rec = records[idx]
        inp = mapper(rec)
        stem = os.path.splitext(os.path.basename(rec["file_name"]))[0]
        image = inp["image"].permute(1, 2, 0).numpy()
        scribble = inp["sem_seg"].numpy().astype(np.uint8) if "sem_seg" in inp else None
        if scribble is None:
            scribble = np.full(image.shape[:2], 255, np.uint8)
        with torch.no_grad():
            probs = model([inp])[0]["sem_seg"]
            pred = probs.argmax(0).numpy().astype(np.uint8)
            x = model.normalize(inp["image"])[None]  # any size: the backbone pads inside
            h, w = x.shape[-2:]
            out = model.forward_features(x, with_feats=True)
            size = (-(-x.shape[-2] // d.LOSS_STRIDE), -(-x.shape[-1] // d.LOSS_STRIDE))
            img_s = F.adaptive_avg_pool2d(x, size)[0]
            p_s = resize(out["logits"], size).softmax(1)
            feats = out.get("feats")
            if feats is not None:
                feats = resize(feats, size)[0]
            M = confident_labels(p_s, d.GAMMA)[0].numpy().astype(np.uint8)

        gt = None
        if rec["file_name"] in gt_by_file:
            gt_inp = mapper(gt_by_file[rec["file_name"]])
            gt = gt_inp["sem_seg"].numpy().astype(np.uint8)
        tiles = [image, _colorize(scribble, colors), _colorize(pred, colors)]
        if gt is not None:
            tiles.append(_colorize(gt, colors))
        panel = np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255)
                                for t in tiles], 1)  # fmt: skip
        panel = cv2.resize(
            panel, (panel.shape[1] * s, panel.shape[0] * s), interpolation=cv2.INTER_NEAREST
        )
        path = os.path.join(args.output, f"{stem}_panel.png")
        cv2.imwrite(path, panel[..., ::-1])
        written.append(path)

        py, px = args.pixel if args.pixel else _default_pixel(scribble, gt)
        my, mx = min(py // d.LOSS_STRIDE, size[0] - 1), min(px // d.LOSS_STRIDE, size[1] - 1)
        k1, k2 = window_kernels(img_s.numpy(), None if feats is None else feats.numpy(), my, mx,
                                d.RADIUS, d.SIGMA_XY, d.SIGMA_RGB, d.SIGMA_FEAT,
                                d.POSITION_STRIDE)  # fmt: skip
        n, tile = 2 * d.RADIUS + 1, 44 * s
        r = d.RADIUS * d.LOSS_STRIDE
        y0, x0 = py - r, px - r
        crop = np.zeros((2 * r + d.LOSS_STRIDE, 2 * r + d.LOSS_STRIDE, 3), np.uint8)
        ys = slice(max(y0, 0), py + r + d.LOSS_STRIDE)
        xs = slice(max(x0, 0), px + r + d.LOSS_STRIDE)
        sub = image[ys, xs]
        crop[max(-y0, 0): max(-y0, 0) + sub.shape[0], max(-x0, 0): max(-x0, 0) + sub.shape[1]] = sub
        crop = cv2.resize(crop, (tile, tile), interpolation=cv2.INTER_NEAREST)
        c = tile // 2
        cv2.drawMarker(crop, (c, c), (255, 0, 0), cv2.MARKER_CROSS, max(6, tile // n), 2)
        heats = [_heat(np.nan_to_num(k1), tile)]
        heats.append(_heat(np.nan_to_num(k2), tile) if k2 is not None else np.zeros_like(heats[0]))
        kernel_img = np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255)
                                     for t in heats + [crop]], 1)  # fmt: skip
        path = os.path.join(args.output, f"{stem}_kernel.png")
        cv2.imwrite(path, kernel_img[..., ::-1])
        written.append(path)

        m_img = _colorize(M, colors)
        m_img = cv2.resize(m_img, (w * s, h * s), interpolation=cv2.INTER_NEAREST)
        path = os.path.join(args.output, f"{stem}_M.png")
        cv2.imwrite(path, m_img[..., ::-1])
        written.append(path)
        frac = float((M != 255).mean())
        print(f"{stem}: pixel (y={py}, x={px}) -> loss-map ({my}, {mx}); "
              f"kernel mass XY·RGB {np.nansum(k1) - 1:.2f}"
              + (f", with F {np.nansum(k2) - 1:.2f}" if k2 is not None else ", no feature head")
              + f"; M covers {100 * frac:.1f}% of the map")  # fmt: skip
    for p in written:
        print("wrote", p)
    return written


if __name__ == "__main__":
    main()
