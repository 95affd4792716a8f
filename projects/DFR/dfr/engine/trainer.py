"""The DFR Trainer: Detectron2's DefaultTrainer with the scribble data pipeline, the Swin
optimizer recipe, WarmupPolyLR, the NaN guard, CPU-capable DDP, sem-seg evaluation and TTA.
"""
import json
import logging
import os
import weakref
from collections import OrderedDict

import torch
from detectron2.data import (
    DatasetCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, hooks
from detectron2.engine.defaults import create_ddp_model
from detectron2.evaluation import SemSegEvaluator, inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from tabulate import tabulate

from ..data import ScribbleDatasetMapper
from ..evaluation import SemSegTTA, VOCSubmissionExporter
from .checkpoint import DFRCheckpointer
from .guard import install_nan_guard
from .solver import build_lr_scheduler, build_optimizer

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)


def _has_ground_truth(dataset_name: str) -> bool:
    dicts = DatasetCatalog.get(dataset_name)
    return len(dicts) > 0 and "sem_seg_file_name" in dicts[0]


def _per_class_table(res: dict) -> str:
    rows = [(k[len("IoU-") :], f"{v:.2f}") for k, v in res.items() if k.startswith("IoU-")]
    head = [("mIoU", f"{res['mIoU']:.2f}"), ("fwIoU", f"{res['fwIoU']:.2f}")]
    head.append(("pACC", f"{res['pACC']:.2f}"))
    return tabulate(head + rows, headers=["class", "IoU"], tablefmt="pipe")


class Trainer(DefaultTrainer):
    """DefaultTrainer with DFR's builders. Differences from Detectron2's `__init__`:
    the NaN guard hook on the model, DDP without `device_ids` on CPU (gloo) and with
    `find_unused_parameters` only when a switched-off loss leaves the feature head without
    gradient, and a checkpointer that explains unreadable files."""

    def __init__(self, cfg):
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())

        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        if cfg.DFR.NAN_GUARD:
            install_nan_guard(model)
        on_cpu = torch.device(cfg.MODEL.DEVICE).type == "cpu"
        model = create_ddp_model(
            model,
            broadcast_buffers=False,
            find_unused_parameters=self._has_unused_parameters(cfg, model),
            **({"device_ids": None} if on_cpu else {}),
        )
        self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(
            model, data_loader, optimizer
        )
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DFRCheckpointer(
            model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self),
            allow_unsafe=cfg.MODEL.ALLOW_UNSAFE_CHECKPOINT,
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @staticmethod
    def _has_unused_parameters(cfg, model) -> bool:
        """DDP must look for parameters without gradient when the feature head exists only
        for the (detached) feature term of the DFR kernel, i.e. without Lfd and Lfr."""
        d = cfg.MODEL.DFR
        return getattr(model, "feat_head", None) is not None and not (d.USE_FD or d.USE_FR)

    def build_hooks(self):
        ret = super().build_hooks()
        if self.cfg.TEST.AUG.ENABLED:
            # Multi-scale evaluation at the end of training (before the writers).
            tta = hooks.EvalHook(0, lambda: self.test_with_TTA(self.cfg, self.model))
            ret.insert(len(ret) - 1 if comm.is_main_process() else len(ret), tta)
        return ret

    def train(self):
        """Train; returns the last evaluation results (dict) when an evaluation ran."""
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
        """SemSegEvaluator on datasets with ground truth; the VOC server export otherwise."""
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        if _has_ground_truth(dataset_name):
            return SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder)
        return VOCSubmissionExporter(dataset_name, output_folder)

    # ---- evaluation -----------------------------------------------------------------
    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """Evaluate `model` on cfg.DATASETS.TEST; logs the per-class IoU table and writes
        `<output>/sem_seg_metrics.json`. TEST.MODE == "slide" wraps the model in
        sliding-window inference."""
        if cfg.TEST.MODE == "slide" and not isinstance(model, SemSegTTA):
            model = SemSegTTA(cfg, model, tta=False)
        if evaluators is not None:
            evaluators = [evaluators] if not isinstance(evaluators, (list, tuple)) else evaluators
            assert len(evaluators) == len(cfg.DATASETS.TEST), (evaluators, cfg.DATASETS.TEST)
        results = OrderedDict()
        for idx, name in enumerate(cfg.DATASETS.TEST):
            loader = cls.build_test_loader(cfg, name)
            if evaluators is not None:
                evaluator = evaluators[idx]
            else:
                evaluator = cls.build_evaluator(cfg, name)
            res = inference_on_dataset(model, loader, evaluator)
            results[name] = res
            if comm.is_main_process():
                print_csv_format(res)
                if "sem_seg" in res:
                    logger.info(f"Per-class IoU on {name}:\n" + _per_class_table(res["sem_seg"]))
                    out_dir = getattr(evaluator, "_output_dir", None)
                    if out_dir:
                        os.makedirs(out_dir, exist_ok=True)
                        with open(os.path.join(out_dir, "sem_seg_metrics.json"), "w") as f:
                            json.dump(res["sem_seg"], f, indent=1)
        return results[cfg.DATASETS.TEST[0]] if len(results) == 1 else results

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
