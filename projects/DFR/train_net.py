#!/usr/bin/env python
"""DFR training / evaluation entry point (Detectron2 style; the Trainer is dfr.engine.Trainer).

    python projects/DFR/train_net.py --config-file <cfg.yaml> --num-gpus 8
    python projects/DFR/train_net.py --config-file <cfg.yaml> --eval-only MODEL.WEIGHTS <pth>
    python projects/DFR/train_net.py --config-file <cfg.yaml> --resume

Before the first iteration (and before --eval-only) dfr.engine.checks checks NUM_CLASSES
against the datasets, the batch size and the label files (--skip-checks skips the file scan).
OUTPUT_DIR is locked for the run (a second run into it is refused, naming the first), and
nothing is written into it before those checks and the checkpoint load pass
(dfr.engine.rundir).
SIGTERM / Ctrl-C to a --num-gpus N run stops every worker (dfr.engine.launch).

Without CUDA the run falls back to MODEL.DEVICE=cpu; --num-gpus N then starts N CPU
processes over gloo (SOLVER.IMS_PER_BATCH is the global batch, split over processes).
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import logging
import os

import torch
from detectron2.engine import default_argument_parser
from detectron2.evaluation import verify_results
from detectron2.utils import comm

from dfr.config import get_dfr_cfg
from dfr.data import register_datasets_from_cfg
from dfr.engine import DFRCheckpointer, Trainer, launch, run_startup_checks
from dfr.engine.rundir import active_run, prepare_run


def setup(args):
    """The config, registered datasets, the locked OUTPUT_DIR and console logging (Detectron2's
    default_setup without its writes: config.yaml and log.txt come with `commit`)."""
    cfg = get_dfr_cfg(args.config_file, args.opts)
    register_datasets_from_cfg(cfg)
    cfg.freeze()
    prepare_run(cfg, args)
    if cfg.MODEL.DEVICE == "cpu":
        # Share the cores between the processes of this machine instead of oversubscribing.
        per_proc = max(1, (os.cpu_count() or 1) // max(1, comm.get_local_size()))
        torch.set_num_threads(min(torch.get_num_threads(), per_proc))
        logging.getLogger("dfr").info(f"CPU run: {torch.get_num_threads()} thread(s)/process")
    return cfg


def main(args):
    cfg = setup(args)
    run = active_run(cfg)
    try:
        return _run(cfg, args, run)
    finally:
        run.close()  # a run refused before `commit` leaves OUTPUT_DIR as it was


def _run(cfg, args, run):
    skip_checks = getattr(args, "skip_checks", False)
    if args.eval_only:
        run_startup_checks(cfg, train=False, scan=not skip_checks)
        model = Trainer.build_model(cfg)
        DFRCheckpointer.from_config(cfg, model).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        run.commit()
        res = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            res.update(Trainer.test_with_TTA(cfg, model))
        if comm.is_main_process():
            verify_results(cfg, res)
        return res

    trainer = Trainer(cfg, skip_checks=skip_checks)
    trainer.resume_or_load(resume=args.resume)
    run.commit()
    return trainer.train()


def argument_parser():
    from dfr.cli import add_defaults_to_help

    parser = add_defaults_to_help(default_argument_parser())
    parser.add_argument(
        "--skip-checks",
        action="store_true",
        help="skip the start-up scan of the label files (NUM_CLASSES and batch size are "
        "still checked)",
    )
    return parser


if __name__ == "__main__":
    args = argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
