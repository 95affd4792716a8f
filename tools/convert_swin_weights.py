#!/usr/bin/env python
"""Convert an official Swin / mmseg / timm checkpoint into a Detectron2 checkpoint for
MODEL.WEIGHTS (keys "backbone.swin.*", "backbone.out_norms.*").

The backbone is built from the config (size, window), the file is read and converted exactly as
MODEL.SWIN.PRETRAINED would be (timm's checkpoint filter, relative-position tables resized to
the config's window, bicubically), and only the tensors that came from the file are written.
The file is read with torch.load(weights_only=True); one that holds pickled objects is refused
unless `MODEL.ALLOW_UNSAFE_CHECKPOINT True` is passed among the overrides (trusted files only):
the output then holds tensors only and loads without that opt-in.

    python tools/convert_swin_weights.py --config-file \
        projects/DFR/configs/voc/dfr_swin_base_bs16_40k.yaml \
        swin_base_patch4_window12_384_22k.pth pretrained/swin_base_d2.pth [KEY VALUE ...]
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import logging
import sys

import torch


def convert(src: str, dst: str, config_file: str, opts=()):
    from detectron2.modeling import build_backbone

    from dfr.config import get_dfr_cfg
    from dfr.modeling.backbone import swin_state_dict_from_file

    cfg = get_dfr_cfg(config_file, list(opts) + ["MODEL.SWIN.PRETRAINED", src])
    backbone = build_backbone(cfg)  # loads `src` and logs missing / unexpected keys
    converted, fmt = swin_state_dict_from_file(
        backbone, src, allow_unsafe=cfg.MODEL.ALLOW_UNSAFE_CHECKPOINT
    )
    own = backbone.state_dict()
    model = {
        f"backbone.{k}": own[k].clone()
        for k, v in converted.items()
        if k in own and own[k].shape == v.shape
    }
    torch.save({"model": model, "__author__": f"convert_swin_weights ({fmt} format)"}, dst)
    return model, fmt


def main(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("src", help="official Swin / mmseg / timm checkpoint (.pth/.pkl/.safetensors)")
    p.add_argument("dst", help="output .pth for MODEL.WEIGHTS")
    p.add_argument("--config-file", required=True, help="DFR config giving size and window")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    model, fmt = convert(args.src, args.dst, args.config_file, args.opts)
    print(f"wrote {len(model)} tensors ({fmt} format) to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
