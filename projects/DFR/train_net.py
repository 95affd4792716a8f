#!/usr/bin/env python
"""DFR training / evaluation entry point (Detectron2 style; the Trainer is dfr.engine.Trainer).

    python projects/DFR/train_net.py --config-file <cfg.yaml> --num-gpus 8
    python projects/DFR/train_net.py --config-file <cfg.yaml> --eval-only MODEL.WEIGHTS <pth>
    python projects/DFR/train_net.py --config-file <cfg.yaml> --resume

Without CUDA the run falls back to MODEL.DEVICE=cpu; --num-gpus N then starts N CPU
processes over gloo (SOLVER.IMS_PER_BATCH is the global batch, split over processes).
"""
import logging
import os

import torch
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from dfr.config import get_dfr_cfg
from dfr.engine import DFRCheckpointer, Trainer


def setup(args):
    cfg = get_dfr_cfg(args.config_file, args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="dfr")
    if cfg.MODEL.DEVICE == "cpu":
        # Share the cores between the processes of this machine instead of oversubscribing.
        per_proc = max(1, (os.cpu_count() or 1) // max(1, comm.get_local_size()))
        torch.set_num_threads(min(torch.get_num_threads(), per_proc))
        logging.getLogger("dfr").info(f"CPU run: {torch.get_num_threads()} thread(s)/process")
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DFRCheckpointer(
            model, save_dir=cfg.OUTPUT_DIR, allow_unsafe=cfg.MODEL.ALLOW_UNSAFE_CHECKPOINT
        ).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        res = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            res.update(Trainer.test_with_TTA(cfg, model))
        if comm.is_main_process():
            verify_results(cfg, res)
        return res

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
