#!/usr/bin/env python
"""Pretrain the small Swin of the synthetic CPU config on a separate dense-label task
(dfr_tools.synthetic_pretrain: other classes, textures and colours than the benchmark), and
write its backbone as an mmseg-format Swin checkpoint (plain tensors) that
MODEL.SWIN.PRETRAINED reads through the real loader (dfr.modeling.backbone.weights).

The model is the config's own DFRSegmentor (Swin + UperNet + aux head) with 6 classes and only
the cross-entropy on dense labels (the DFR losses off); optimizer and schedule are the
project's (AdamW paramwise groups, WarmupPolyLR). Images are rendered on the fly (rng seeded by
[seed, iteration, image]), random size in [128, 192] px, random 128 px crop, random flip.
Cached: a finished checkpoint whose sidecar JSON records the same settings is reused
(`--force` retrains). `make pretrain` runs this with its defaults.

    python tools/pretrain_synthetic_backbone.py                    # -> pretrained/...pth
    python tools/pretrain_synthetic_backbone.py --iters 2 --output /tmp/p.pth   # smoke
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "projects/DFR/configs/synthetic/dfr_swin_tiny_synthetic_cpu.yaml"
DEFAULT_OUTPUT = "pretrained/swin_tiny_synthetic_pretrain.pth"
CROP = 128

logger = logging.getLogger("pretrain")


def parse_args(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--config-file", default=str(DEFAULT_CONFIG), help="gives the Swin size")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="checkpoint path (.pth)")
    p.add_argument("--iters", type=int, default=3000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--force", action="store_true", help="retrain even if cached")
    return p.parse_args(argv)


def _settings(args) -> dict:
    """What the checkpoint depends on: the effective config (not its comments) and the
    generator's source."""
    cfg_text = build_cfg(args.config_file, args.iters, args.lr, "cpu").dump()
    gen = (REPO / "tools/dfr_tools/synthetic_pretrain.py").read_bytes()
    return {"iters": args.iters, "batch": args.batch, "lr": args.lr, "seed": args.seed,
            "config_sha": hashlib.sha256(cfg_text.encode()).hexdigest()[:16],
            "generator_sha": hashlib.sha256(gen).hexdigest()[:16]}  # fmt: skip


def build_cfg(config_file, iters, lr, device):
    from dfr.config import get_dfr_cfg
    from dfr_tools.synthetic_pretrain import PRETRAIN_CLASSES

    opts = ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", len(PRETRAIN_CLASSES), "MODEL.DFR.USE_DFR", False,
            "MODEL.DFR.USE_FD", False, "MODEL.DFR.USE_FR", False, "MODEL.DFR.KERNEL_FEAT", False,
            "MODEL.SWIN.PRETRAINED", "", "MODEL.WEIGHTS", "", "MODEL.DEVICE", device,
            "SOLVER.MAX_ITER", iters, "SOLVER.BASE_LR", lr]  # fmt: skip
    return get_dfr_cfg(config_file, [str(o) for o in opts])


def make_batch(seed, it, batch, train=True):
    """List of model inputs {"image": uint8 (3, h, w), "sem_seg": long (h, w)}."""
    from dfr_tools.synthetic_pretrain import render_pretrain_sample

    out = []
    for i in range(batch):
        rng = np.random.default_rng([seed, 0 if train else 1, it, i])
        h, w = (int(v) for v in rng.integers(CROP, CROP + 65, size=2))
        img, lab = render_pretrain_sample(rng, h, w)
        if train:
            y, x = int(rng.integers(0, h - CROP + 1)), int(rng.integers(0, w - CROP + 1))
            img, lab = img[y:y + CROP, x:x + CROP], lab[y:y + CROP, x:x + CROP]
            if rng.random() < 0.5:
                img, lab = img[:, ::-1], lab[:, ::-1]
        out.append({"image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
                    "sem_seg": torch.from_numpy(np.ascontiguousarray(lab)).long()})
    return out


@torch.no_grad()
def evaluate(model, seed, n=32):
    """mIoU (%), pixel accuracy and per-class IoU on n held-out rendered images (full size)."""
    from dfr_tools.synthetic_pretrain import PRETRAIN_CLASSES

    k = len(PRETRAIN_CLASSES)
    conf = np.zeros((k, k), np.int64)
    model.eval()
    for i in range(n):
        x = make_batch(seed + 1000, i, 1, train=False)[0]
        pred = model([x])[0]["sem_seg"].argmax(0).cpu().numpy()
        gt = x["sem_seg"].numpy()
        conf += np.bincount(gt.ravel() * k + pred.ravel(), minlength=k * k).reshape(k, k)
    model.train()
    iou = np.diag(conf) / np.maximum(conf.sum(0) + conf.sum(1) - np.diag(conf), 1)
    per_class = {c: round(100 * float(v), 1) for c, v in zip(PRETRAIN_CLASSES, iou)}
    return 100 * float(iou.mean()), 100 * float(np.diag(conf).sum() / conf.sum()), per_class


def backbone_to_mmseg(sd: dict) -> dict:
    """D2SwinTransformer state dict ("swin.*" timm features_only names, "out_norms.*") ->
    mmseg Swin names (stages.i.blocks.j.attn.w_msa.*, ffn.layers.*, patch merging at the END
    of stage i in mmseg's unfold channel order, norm0..3). Inverse of the loader's mapping."""

    def unfold_order(x):  # timm/official [x0, x1, x2, x3] blocks -> mmseg nn.Unfold order
        if x.dim() == 2:
            o, i = x.shape
            return x.reshape(o, 4, i // 4)[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(o, i)
        i = x.shape[0]
        return x.reshape(4, i // 4)[[0, 2, 1, 3], :].transpose(0, 1).reshape(i)

    out = {}
    for k, v in sd.items():
        v = v.detach().cpu().clone()
        if k.startswith("out_norms."):
            _, i, p = k.split(".")
            out[f"norm{i}.{p}"] = v
            continue
        assert k.startswith("swin."), k
        k = k[len("swin."):]
        if k.startswith("patch_embed.proj."):
            out[k.replace("patch_embed.proj.", "patch_embed.projection.")] = v
            continue
        if k.startswith("patch_embed."):
            out[k] = v
            continue
        stage, rest = k.split(".", 1)
        i = int(stage[len("layers_"):])
        if rest.startswith("downsample."):  # timm: start of stage i; mmseg: end of stage i-1
            out[f"stages.{i - 1}.{rest}"] = unfold_order(v)  # reduction.weight, norm.*
            continue
        rest = rest.replace(".attn.", ".attn.w_msa.").replace(".mlp.fc1.", ".ffn.layers.0.0.")
        out[f"stages.{i}.{rest.replace('.mlp.fc2.', '.ffn.layers.1.')}"] = v
    return out


def pretrain(args):
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from dfr.engine.solver import build_lr_scheduler, build_optimizer

    torch.manual_seed(args.seed)
    cfg = build_cfg(args.config_file, args.iters, args.lr, args.device)
    model = build_model(cfg)
    model.train()
    opt = build_optimizer(cfg, model)
    sched = build_lr_scheduler(cfg, opt)
    t0 = time.time()
    with EventStorage(0) as storage:
        for it in range(args.iters):
            storage.iter = it
            losses = model(make_batch(args.seed, it, args.batch))
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if it % 100 == 0 or it == args.iters - 1:
                logger.info(f"iter {it}/{args.iters}  loss {float(loss):.4f}  "
                            f"lr {opt.param_groups[0]['lr']:.2e}  {time.time() - t0:.0f} s")
    miou, pacc, per_class = evaluate(model, args.seed)
    return model, {"val_mIoU": round(miou, 2), "val_pACC": round(pacc, 2), "IoU": per_class,
                   "seconds": round(time.time() - t0, 1)}  # fmt: skip


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[pretrain] %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.output)
    meta_path = out.with_suffix(".json")
    settings = _settings(args)
    if out.is_file() and meta_path.is_file() and not args.force:
        meta = json.loads(meta_path.read_text())
        if meta.get("settings") == settings:
            logger.info(f"cached: {out} ({meta.get('result')}); --force retrains")
            return 0
        logger.info(f"{out} was made with other settings ({meta.get('settings')}); retraining")
    model, result = pretrain(args)
    sd = backbone_to_mmseg(model.backbone.state_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    torch.save({"state_dict": sd}, tmp)  # plain tensors only (weights_only loadable)
    os.replace(tmp, out)
    meta_path.write_text(json.dumps({"settings": settings, "result": result,
                                     "format": "mmseg Swin (stages.*, norm0..3)",
                                     "tensors": len(sd)}, indent=1))  # fmt: skip
    logger.info(f"wrote {out} ({len(sd)} tensors): held-out {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
