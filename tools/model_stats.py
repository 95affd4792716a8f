#!/usr/bin/env python
"""Parameter counts (backbone / fusion / heads) and, optionally, CPU inference time of DFR
configs.

    python tools/model_stats.py projects/DFR/configs/voc/dfr_swin_base_bs16_40k.yaml [...] \
        [--time 512] [--threads 2] [--runs 3]
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import statistics
import sys
import time

import torch


def build(config_file: str, device: str):
    from detectron2.modeling import META_ARCH_REGISTRY

    from dfr.config import get_dfr_cfg
    from dfr.utils import meta_device

    cfg = get_dfr_cfg(config_file, ["MODEL.SWIN.PRETRAINED", ""])
    if device == "meta":
        with meta_device():
            return META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    return META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg).to(device)


def count(module) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def main(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("configs", nargs="+")
    p.add_argument("--time", type=int, default=0, help="time eval forward at this square size")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| config | backbone | fusion | semantic head | feature head | aux head | total |"
          + (f" CPU fwd {args.time}² (s) |" if args.time else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if args.time else ""))
    for f in args.configs:
        m = build(f, "cpu" if args.time else "meta")
        parts = [m.backbone, m.fusion, m.sem_seg_head, m.feat_head, m.aux_head]
        row = [f"{count(x) / 1e6:.2f}M" for x in parts] + [f"{count(m) / 1e6:.2f}M"]
        if args.time:
            m.eval()
            x = [{"image": torch.randint(0, 256, (3, args.time, args.time), dtype=torch.uint8),
                  "height": args.time, "width": args.time}]
            times = []
            with torch.no_grad():
                m(x)  # warm-up
                for _ in range(args.runs):
                    t = time.perf_counter()
                    m(x)
                    times.append(time.perf_counter() - t)
            row.append(f"{statistics.median(times):.2f}")
        print(f"| {f.split('configs/')[-1]} | " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
