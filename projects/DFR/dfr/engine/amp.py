"""Mixed-precision training (SOLVER.AMP.ENABLED, SOLVER.AMP.PRECISION) on CUDA and on CPU.

Detectron2's AMPTrainer autocasts with `torch.cuda.amp.autocast`, asserts CUDA and always
builds a CUDA GradScaler; DefaultTrainer builds it without a precision. `DFRAMPTrainer` is the
same training step with `torch.autocast(device_type=<the model's device>, dtype=precision)`
and a GradScaler only where it is needed (float16; bfloat16 has float32's exponent range and
trains unscaled). The pairwise losses run in float32 with autocast off whatever the step does
(`dfr.modeling.losses`); only the network is autocast.

A float16 step whose gradients overflow is skipped by the GradScaler (which then halves its
scale). A few skips at the start are the scale calibrating; a loss that overflows every step
(e.g. MODEL.DFR.LAMBDA_DFR 1e30) used to skip them all silently and "train" with the initial
weights. Here skipped steps are counted (``amp/skipped_steps`` in metrics.json), a WARNING names
the loss terms after WARN_AFTER consecutive skips (again at each doubling), and
SOLVER.AMP.MAX_CONSECUTIVE_SKIPS consecutive skips stop the run with FloatingPointError.
"""
import logging
import math
import time

import torch
from detectron2.engine import AMPTrainer
from detectron2.utils.events import get_event_storage

__all__ = ["DFRAMPTrainer", "amp_dtype", "PRECISIONS", "WARN_AFTER"]

logger = logging.getLogger(__name__)
PRECISIONS = {"float16": torch.float16, "bfloat16": torch.bfloat16}
WARN_AFTER = 5  # consecutive skipped steps before the first warning


def amp_dtype(name: str) -> torch.dtype:
    """SOLVER.AMP.PRECISION ("float16" | "bfloat16") -> torch dtype; a clear error otherwise."""
    if name not in PRECISIONS:
        raise ValueError(f"SOLVER.AMP.PRECISION must be one of {sorted(PRECISIONS)}, got {name!r}")
    return PRECISIONS[name]


def _model_device(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _terms(loss_dict) -> str:
    """The loss terms of a step, largest first: "loss_dfr = 3.1e+29, loss_pce = 2.9"."""
    vals = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
            for k, v in loss_dict.items()}  # fmt: skip
    order = sorted(vals, key=lambda k: -abs(vals[k]) if math.isfinite(vals[k]) else -math.inf)
    return ", ".join(f"{k} = {vals[k]:.4g}" for k in order)


class DFRAMPTrainer(AMPTrainer):
    """AMPTrainer on the model's own device type (cuda or cpu), `precision` float16 or
    bfloat16. Without a `grad_scaler`, float16 gets `torch.amp.GradScaler(device)` and
    bfloat16 a disabled one (a pass-through, so checkpoints keep the same keys).
    `max_consecutive_skips` (SOLVER.AMP.MAX_CONSECUTIVE_SKIPS; 0 = never): steps in a row the
    GradScaler may skip before the run stops (module docstring)."""

    def __init__(self, model, data_loader, optimizer, *, precision=torch.float16,
                 grad_scaler=None, max_consecutive_skips: int = 50, **kwargs):
        self.device_type = _model_device(model).type
        if grad_scaler is None:
            grad_scaler = torch.amp.GradScaler(self.device_type,
                                               enabled=precision == torch.float16)
        super().__init__(model, data_loader, optimizer, grad_scaler=grad_scaler,
                         precision=precision, **kwargs)
        self.max_consecutive_skips = int(max_consecutive_skips)
        self.skipped_steps = 0  # in all
        self.consecutive_skips = 0

    def _count_skip(self, skipped: bool, loss_dict, scale: float):
        """Count a step the GradScaler skipped (its gradients overflowed float16); warn, or
        stop the run, when they come in a row."""
        if not skipped:
            self.consecutive_skips = 0
        else:
            self.skipped_steps += 1
            self.consecutive_skips += 1
        get_event_storage().put_scalar("amp/skipped_steps", self.skipped_steps,
                                       smoothing_hint=False)  # fmt: skip
        n = self.consecutive_skips
        if not skipped:
            return
        what = (f"{n} consecutive float16 training steps skipped by the GradScaler (their "
                f"gradients overflowed; scale now {self.grad_scaler.get_scale():.3g}, was "
                f"{scale:.3g}). Loss terms of iteration {self.iter}: {_terms(loss_dict)}")  # fmt: skip
        limit = self.max_consecutive_skips
        if limit and n >= limit:
            raise FloatingPointError(
                f"{what}. The weights have not changed for {n} steps: stopped at "
                f"SOLVER.AMP.MAX_CONSECUTIVE_SKIPS = {limit}. Lower the largest term's weight "
                "(e.g. MODEL.DFR.LAMBDA_DFR / LAMBDA_FEAT) or the learning rate, or train with "
                "SOLVER.AMP.PRECISION bfloat16 (float32's range) or SOLVER.AMP.ENABLED False."
            )
        if n >= WARN_AFTER and n & (n - 1) == 0 or n == WARN_AFTER:
            stop = f"; the run stops at {limit}" if limit else ""
            logger.warning(f"{what}{stop} (SOLVER.AMP.MAX_CONSECUTIVE_SKIPS)")
        else:
            logger.debug(f"GradScaler skipped the step of iteration {self.iter} ({n} in a row)")

    def run_step(self):
        # Detectron2's AMPTrainer.run_step with a device-generic autocast (no CUDA assertion).
        assert self.model.training, "[DFRAMPTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        if self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        with torch.autocast(device_type=self.device_type, dtype=self.precision):
            loss_dict = self.model(data)
            if isinstance(loss_dict, torch.Tensor):
                losses = loss_dict
                loss_dict = {"total_loss": loss_dict}
            else:
                losses = sum(loss_dict.values())
        if not self.zero_grad_before_forward:
            self.optimizer.zero_grad()

        self.grad_scaler.scale(losses).backward()
        if self.log_grad_scaler:
            get_event_storage().put_scalar("[metric]grad_scaler", self.grad_scaler.get_scale())
        self.after_backward()
        if self.async_write_metrics:
            self.concurrent_executor.submit(self._write_metrics, loss_dict, data_time,
                                            iter=self.iter)
        else:
            self._write_metrics(loss_dict, data_time)
        scale = self.grad_scaler.get_scale() if self.grad_scaler.is_enabled() else None
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
        if scale is not None:  # update() lowers the scale exactly when the step was skipped
            self._count_skip(self.grad_scaler.get_scale() < scale, loss_dict, scale)
