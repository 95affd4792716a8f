"""The DFR Trainer: Detectron2's DefaultTrainer with the scribble data pipeline, the Swin
optimizer recipe, WarmupPolyLR, the NaN guard, CPU-capable DDP, sem-seg evaluation and TTA.
"""
import contextlib
import copy
import functools
import json
import logging
import os
import weakref
from collections import OrderedDict

import torch
from detectron2.data import (
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.engine import DefaultTrainer, hooks
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, EventWriter, JSONWriter, TensorboardXWriter
from tabulate import tabulate

from ..data import ScribbleDatasetMapper
from ..evaluation import DFRSemSegEvaluator, SemSegTTA, VOCSubmissionExporter
from ..utils import json_safe
from .amp import DFRAMPTrainer, amp_dtype
from .checkpoint import DFRCheckpointer
from .checks import run_startup_checks
from .guard import install_nan_guard
from .rundir import commit_run
from .solver import build_lr_scheduler, build_optimizer

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)


def _per_class_table(res: dict) -> str:
    rows = [(k[len("IoU-") :], f"{v:.2f}") for k, v in res.items() if k.startswith("IoU-")]
    head = [("mIoU", f"{res['mIoU']:.2f}"), ("fwIoU", f"{res['fwIoU']:.2f}")]
    head.append(("pACC", f"{res['pACC']:.2f}"))
    return tabulate(head + rows, headers=["class", "IoU"], tablefmt="pipe")


def _report(name: str, res: dict, evaluator):
    """Log the per-class IoU table of a sem-seg result and write it to
    `<evaluator output>/sem_seg_metrics.json`."""
    if "sem_seg" not in res:
        return
    logger.info(f"Per-class IoU on {name}:\n" + _per_class_table(res["sem_seg"]))
    out_dir = getattr(evaluator, "_output_dir", None)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "sem_seg_metrics.json"), "w") as f:
            json.dump(json_safe(res["sem_seg"]), f, indent=1, allow_nan=False)


@contextlib.contextmanager
def _ddp_options(cfg):
    """DefaultTrainer.__init__ wraps the model with `create_ddp_model(model,
    broadcast_buffers=False)`, which passes `device_ids=[local rank]`; a CPU module under
    gloo needs `device_ids=None`. This swaps in that one keyword for the duration of
    `DefaultTrainer.__init__` instead of copying it. Every trainable parameter gets a gradient
    in every shipped config (tests/test_configs.py), so `find_unused_parameters` stays off."""
    from detectron2.engine import defaults

    original = defaults.create_ddp_model
    if torch.device(cfg.MODEL.DEVICE).type == "cpu":
        defaults.create_ddp_model = functools.partial(original, device_ids=None)
    try:
        yield
    finally:
        defaults.create_ddp_model = original


@contextlib.contextmanager
def _amp_trainer(cfg):
    """With SOLVER.AMP.ENABLED, DefaultTrainer.__init__ builds `AMPTrainer(model, loader,
    optimizer)`: CUDA only, float16 only. This swaps in DFRAMPTrainer (any device, the dtype of
    SOLVER.AMP.PRECISION, skipped steps counted and bounded by SOLVER.AMP.MAX_CONSECUTIVE_SKIPS)
    for the duration of `DefaultTrainer.__init__`."""
    from detectron2.engine import defaults

    original = defaults.AMPTrainer
    if cfg.SOLVER.AMP.ENABLED:
        precision = amp_dtype(cfg.SOLVER.AMP.PRECISION)
        defaults.AMPTrainer = functools.partial(
            DFRAMPTrainer, precision=precision,
            max_consecutive_skips=cfg.SOLVER.AMP.MAX_CONSECUTIVE_SKIPS)  # fmt: skip
    try:
        yield
    finally:
        defaults.AMPTrainer = original


class _OpenOnWrite(EventWriter):
    """An EventWriter made on its first `write`: Detectron2's JSONWriter opens metrics.json
    (and creates OUTPUT_DIR) when built, i.e. before a run's checks and checkpoint load."""

    def __init__(self, make):
        self._make, self._writer = make, None

    def write(self):
        if self._writer is None:
            self._writer = self._make()
        self._writer.write()

    def close(self):
        if self._writer is not None:
            self._writer.close()


def _json_writer(path: str) -> JSONWriter:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return JSONWriter(path)


class Trainer(DefaultTrainer):
    """DefaultTrainer with DFR's builders: the scribble mapper, mmseg's Swin optimizer
    groups and LR schedule, the NaN guard (in `build_model`), the checkpointer that refuses
    to unpickle code and explains unreadable files, DDP on CPU (gloo), sem-seg evaluation
    chosen from the dataset's metadata, multi-scale TTA, and mixed precision on CUDA or CPU
    (SOLVER.AMP.ENABLED / SOLVER.AMP.PRECISION, `amp.DFRAMPTrainer`)."""

    def __init__(self, cfg, skip_checks: bool = False):
        # NUM_CLASSES, batch size and the label files, before anything is built (checks.py)
        run_startup_checks(cfg, train=True, scan=not skip_checks)
        with _ddp_options(cfg), _amp_trainer(cfg):
            super().__init__(cfg)

    @classmethod
    def build_model(cls, cfg):
        model = super().build_model(cfg)
        if cfg.SOLVER.NAN_GUARD:
            install_nan_guard(model)
        if cfg.SOLVER.COMPILE:
            model.compile_training(cfg.SOLVER.COMPILE)
        return model

    def build_hooks(self):
        # DefaultTrainer made a DetectionCheckpointer; ours is used by every hook built here.
        self.checkpointer = DFRCheckpointer.from_config(
            self.cfg, self._trainer.model, trainer=weakref.proxy(self)
        )
        ret = super().build_hooks()
        if self.cfg.TEST.AUG.ENABLED:
            # Multi-scale evaluation at the end of training (before the writers).
            tta = hooks.EvalHook(0, lambda: self.test_with_TTA(self.cfg, self.model))
            ret.insert(len(ret) - 1 if comm.is_main_process() else len(ret), tta)
        return ret

    def build_writers(self):
        """Detectron2's writers (console, metrics.json, TensorBoard), none of which touches
        OUTPUT_DIR before it writes its first row (dfr.engine.rundir)."""
        out = self.cfg.OUTPUT_DIR
        return [
            CommonMetricPrinter(self.max_iter),
            _OpenOnWrite(functools.partial(_json_writer, os.path.join(out, "metrics.json"))),
            TensorboardXWriter(out),  # opens its event file on the first write
        ]

    def train(self):
        """Train; returns the last evaluation results (dict) when an evaluation ran. The
        run's deferred config.yaml / log.txt are written first (dfr.engine.rundir)."""
        commit_run(self.cfg)
        super().train()
        return getattr(self, "_last_eval_results", None)

    # ---- builders -------------------------------------------------------------------
    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=ScribbleDatasetMapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        mapper = ScribbleDatasetMapper(cfg, is_train=False)
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        """From the dataset's `evaluator_type` metadata: "sem_seg" -> SemSegEvaluator,
        "voc_submission" -> the VOC test-server export."""
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        kind = MetadataCatalog.get(dataset_name).get("evaluator_type", "sem_seg")
        # Detectron2's Cityscapes sets say "cityscapes_sem_seg" (cityscapesScripts on labelIds);
        # their records point at labelTrainIds PNGs, so SemSegEvaluator gives the 19-class mIoU.
        if kind in ("sem_seg", "cityscapes_sem_seg"):
            return DFRSemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder)
        if kind == "voc_submission":
            return VOCSubmissionExporter(dataset_name, output_folder)
        raise ValueError(
            f"dataset {dataset_name!r} has evaluator_type {kind!r} in its MetadataCatalog "
            "entry; DFR evaluates 'sem_seg' or 'voc_submission'"
        )

    # ---- evaluation -----------------------------------------------------------------
    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """Detectron2's `DefaultTrainer.test` (loaders from `build_test_loader`, evaluators
        from `build_evaluator`), with four additions: when every evaluator reads class labels
        (`accepts_labels`: the project's sem-seg evaluator, the VOC export, the demo), the
        model runs in a `SemSegTTA(output="labels")`, whose full-size labels take memory
        independent of the number of classes (dfr.evaluation.postprocess; an image that
        cannot fit is refused by name); TEST.MODE == "slide" wraps the model in sliding-window
        inference; a SemSegTTA model reads original-size images (it resizes each view itself,
        so INPUT.DFR.TEST_RESIZE is off for its loader); and, per dataset, the per-class IoU
        table is logged and `<evaluator output>/sem_seg_metrics.json` written (strict JSON:
        an undefined IoU is null)."""
        if evaluators is None:  # built here, to find their output folders afterwards
            evaluators = [cls.build_evaluator(cfg, name) for name in cfg.DATASETS.TEST]
        elif isinstance(evaluators, DatasetEvaluator):
            evaluators = [evaluators]
        output = "labels" if all(getattr(e, "accepts_labels", False) for e in evaluators) \
            else "probs"  # fmt: skip
        if isinstance(model, SemSegTTA):
            if model.output != output:
                model = copy.copy(model)  # the caller's wrapper keeps its own output
                model.output = output
        elif cfg.TEST.MODE == "slide" or output == "labels":
            model = SemSegTTA(cfg, model, tta=False, output=output)
        if isinstance(model, SemSegTTA) and cfg.INPUT.DFR.TEST_RESIZE:
            cfg = cfg.clone()
            cfg.defrost()
            cfg.INPUT.DFR.TEST_RESIZE = False
            cfg.freeze()
        results = super().test(cfg, model, evaluators)
        if comm.is_main_process():
            one = len(cfg.DATASETS.TEST) == 1
            for name, evaluator in zip(cfg.DATASETS.TEST, evaluators):
                _report(name, results if one else results[name], evaluator)
        return results

    @classmethod
    def test_with_TTA(cls, cfg, model):
        """Multi-scale (TEST.AUG.SCALES) + flip (TEST.AUG.FLIP) evaluation ("ms")."""
        logger.info(f"TTA inference: scales {cfg.TEST.AUG.SCALES}, flip {cfg.TEST.AUG.FLIP}")
        tta = SemSegTTA(cfg, model, tta=True)
        evaluators = [
            cls.build_evaluator(cfg, name, os.path.join(cfg.OUTPUT_DIR, "inference_TTA", name))
            for name in cfg.DATASETS.TEST
        ]
        res = cls.test(cfg, tta, evaluators)
        return OrderedDict((k + "_TTA", v) for k, v in res.items())
