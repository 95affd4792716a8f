#!/usr/bin/env python
"""Scale of the feature-consistency features against σ3: one training-mode forward
(no gradient; BN on batch statistics and drop-path as in training) of a config's model on a
few images, then the feature-branch diagnostics at the loss map (dfr.modeling.losses.
diagnostics) and the distribution of ‖F(i) − F(j)‖ over the window pairs.

Images: files (--images, with optional --scribbles PNGs, 255 = unlabeled), resized so the
short side is --size and centre-cropped to --size x --size; or the first --n images of a
registered dataset (--dataset, labels = its sem_seg files), centre crops of --crop px.

    python tools/measure_feature_scale.py --config-file \
        projects/DFR/configs/voc/dfr_swin_base_bs16_40k.yaml --images \
        /work/shared/real_voc/jpg/2007_000032.jpg /work/shared/real_voc/jpg/2007_000033.jpg \
        --scribbles /work/shared/real_voc/scribble_png/2007_000032.png \
        /work/shared/real_voc/scribble_png/2007_000033.png
    python tools/measure_feature_scale.py --config-file \
        projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml \
        --dataset synthetic_scribble_train --n 16
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def _load(path, size, nearest):
    from PIL import Image

    im = Image.open(path)
    if not nearest:
        im = im.convert("RGB")
    w, h = im.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    im = im.resize((nw, nh), Image.NEAREST if nearest else Image.BILINEAR)
    x0, y0 = (nw - size) // 2, (nh - size) // 2
    return np.asarray(im.crop((x0, y0, x0 + size, y0 + size)))


def _inputs(args):
    if args.dataset:
        from detectron2.data import DatasetCatalog
        from PIL import Image

        out = []
        c = args.crop
        for d in DatasetCatalog.get(args.dataset)[: args.n]:  # centre crops of c x c
            img = np.asarray(Image.open(d["file_name"]).convert("RGB"))
            lab = np.asarray(Image.open(d["sem_seg_file_name"]))
            y, x = (img.shape[0] - c) // 2, (img.shape[1] - c) // 2
            out.append((img[y:y + c, x:x + c], lab[y:y + c, x:x + c]))
        return out
    scr = args.scribbles or [None] * len(args.images)
    out = []
    for im, sc in zip(args.images, scr):
        img = _load(im, args.size, nearest=False)
        lab = _load(sc, args.size, nearest=True) if sc else np.full(img.shape[:2], 255, np.uint8)
        out.append((img, lab))
    return out


def _build(cfg):
    """The config's model; MODEL.WEIGHTS (a trained DFR checkpoint) loaded when set."""
    from detectron2.modeling import build_model

    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        from dfr.engine import DFRCheckpointer

        DFRCheckpointer.from_config(cfg, model, save_dir="").load(cfg.MODEL.WEIGHTS)
    return model


def measure(cfg, samples, seed=0):
    import torch.nn.functional as F

    from dfr.modeling.losses import feature_branch_diagnostics
    from dfr.modeling.losses.pairwise import WindowLayout

    torch.manual_seed(seed)
    model = _build(cfg)
    model.train()  # BN on batch statistics, drop-path on: what the losses see in training
    d = cfg.MODEL.DFR
    res = []
    with torch.no_grad():
        for group in [samples]:  # one batch (BN on its statistics)
            img = torch.stack([torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1)))
                               for i, _ in group])  # fmt: skip
            lab = torch.stack([torch.from_numpy(lb.astype(np.int64)) for _, lb in group])
            x = model.normalize(img)
            out = model.forward_features(x, with_feats=True)
            h, w = -(-x.shape[-2] // d.LOSS_STRIDE), -(-x.shape[-1] // d.LOSS_STRIDE)
            feats = F.interpolate(out["feats"], (h, w), mode="bilinear", align_corners=False)
            probs = F.interpolate(out["logits"], (h, w), mode="bilinear",
                                  align_corners=False).softmax(1)  # fmt: skip
            img_s = F.adaptive_avg_pool2d(x, (h, w))
            lab_s = F.interpolate(lab[:, None].float(), (h, w), mode="nearest-exact")[:, 0].long()
            valid = torch.ones(lab_s.shape, dtype=torch.bool)
            diag = feature_branch_diagnostics(
                probs, img_s, feats, lab_s, None, valid, radius=d.RADIUS, sigma_xy=d.SIGMA_XY,
                sigma_rgb=d.SIGMA_RGB, sigma_feat=d.SIGMA_FEAT, stride=d.POSITION_STRIDE,
                gamma=d.GAMMA, background=d.BACKGROUND_ID)
            lay = WindowLayout(h, w, d.RADIUS)
            Fl = lay.flat(feats.double())
            V = lay.flat(valid[:, None].double())[..., 0]
            dists = []
            for _, _, s in lay.offsets:  # window pairs with both pixels inside the map
                both = (V[:, : lay.L] * V[:, s : s + lay.L]) > 0
                dd = torch.linalg.vector_norm(Fl[:, : lay.L] - Fl[:, s : s + lay.L], dim=-1)
                dists.append(dd[both])
            dists = torch.cat(dists)
            diag["_dists"] = dists
            diag["_n"] = len(group)
            diag["fused_channels"] = int(out["fused"].shape[1])
            res.append(diag)
    return res


def fused_gradients(cfg, samples, seed=0):
    """Norm of each weighted training loss's gradient at the shared fused map (training mode,
    the samples' labels as scribbles), and the cosine between the Lfd + Lfr gradient and the
    pCE gradient there: how hard the feature head's losses pull on the semantic features."""
    from detectron2.utils.events import EventStorage

    torch.manual_seed(seed)
    model = _build(cfg)
    model.train()
    kept = {}

    def keep(module, inputs, output):
        kept["fused"] = output

    model.fusion.register_forward_hook(keep)
    batch = [{"image": torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1))),
              "sem_seg": torch.from_numpy(lb.astype(np.int64))} for i, lb in samples]
    with EventStorage(1):  # iteration 1: no diagnostics
        losses = model(batch)
    fused = kept["fused"]
    grads = {k: torch.autograd.grad(v, fused, retain_graph=True, allow_unused=True)[0]
             for k, v in losses.items()}  # fmt: skip
    out = {f"grad_{k}": float(g.norm()) if g is not None else 0.0 for k, g in grads.items()}
    if grads.get("loss_fd") is not None and grads.get("loss_pce") is not None:
        feat = grads["loss_fd"] + (grads.get("loss_fr") if grads.get("loss_fr") is not None
                                   else 0)  # fmt: skip
        out["cos_featloss_pce"] = float(torch.nn.functional.cosine_similarity(
            feat.flatten(), grads["loss_pce"].flatten(), dim=0))
    out.update({k: float(v) for k, v in losses.items()})
    return out


def summarise(res, sigma):
    keys = [k for k in res[0] if not k.startswith("_") and k != "fused_channels"]
    def wmean(k):  # image-weighted mean over the batches that have the key (NaN: none)
        v = [(r[k], r["_n"]) for r in res if r.get(k) is not None and np.isfinite(r[k])]
        return float(sum(a * b for a, b in v) / sum(b for _, b in v)) if v else float("nan")

    out = {k: wmean(k) for k in keys}
    dists = torch.cat([r["_dists"] for r in res]).numpy()
    q = np.percentile(dists, [5, 50, 95])
    out.update(dist_p5=float(q[0]), dist_median=float(q[1]), dist_p95=float(q[2]),
               sigma_feat=sigma, dist_over_sigma=out["feat_dist"] / sigma,
               fused_channels=res[0]["fused_channels"])
    return out


def main(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--images", nargs="*", default=[])
    p.add_argument("--scribbles", nargs="*", default=None)
    p.add_argument("--dataset", default="")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--crop", type=int, default=128, help="crop of --dataset images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="", help="also write the summary here")
    p.add_argument("--grads", action="store_true",
                   help="also the norm of each loss's gradient at the fused map")
    p.add_argument("opts", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    from dfr.config import get_dfr_cfg
    from dfr.data import register_datasets_from_cfg

    cfg = get_dfr_cfg(args.config_file, args.opts + ["MODEL.DEVICE", "cpu"])
    register_datasets_from_cfg(cfg)
    s = summarise(measure(cfg, _inputs(args), args.seed), cfg.MODEL.DFR.SIGMA_FEAT)
    s.update(config=args.config_file, opts=args.opts, feat_dim=cfg.MODEL.DFR.FEAT_DIM,
             images=args.images or f"{args.dataset}[:{args.n}]")
    if args.grads:
        s["fused_gradients"] = fused_gradients(cfg, _inputs(args), args.seed)
    print(json.dumps(s, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(s, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
