"""Mixed-precision training (SOLVER.AMP.ENABLED, SOLVER.AMP.PRECISION) on CUDA and on CPU.

Detectron2's AMPTrainer autocasts with `torch.cuda.amp.autocast`, asserts CUDA and always
builds a CUDA GradScaler; DefaultTrainer builds it without a precision. `DFRAMPTrainer` is the
same training step with `torch.autocast(device_type=<the model's device>, dtype=precision)`
and a GradScaler only where it is needed (float16; bfloat16 has float32's exponent range and
trains unscaled). The pairwise losses run in float32 with autocast off whatever the step does
(`dfr.modeling.losses`); only the network is autocast.
"""
import time

import torch
from detectron2.engine import AMPTrainer
from detectron2.utils.events import get_event_storage

__all__ = ["DFRAMPTrainer", "amp_dtype", "PRECISIONS"]

PRECISIONS = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def amp_dtype(name: str) -> torch.dtype:
    """SOLVER.AMP.PRECISION ("float16" | "bfloat16") -> torch dtype; a clear error otherwise."""
    if name not in PRECISIONS:
        raise ValueError(f"SOLVER.AMP.PRECISION must be one of {sorted(PRECISIONS)}, got {name!r}")
    return PRECISIONS[name]


def _model_device(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


class DFRAMPTrainer(AMPTrainer):
    """AMPTrainer on the model's own device type (cuda or cpu), `precision` float16 or
    bfloat16. Without a `grad_scaler`, float16 gets `torch.amp.GradScaler(device)` and
    bfloat16 a disabled one (a pass-through, so checkpoints keep the same keys)."""

    def __init__(self, model, data_loader, optimizer, *, precision=torch.float16,
                 grad_scaler=None, **kwargs):
        self.device_type = _model_device(model).type
        if grad_scaler is None:
            grad_scaler = torch.amp.GradScaler(self.device_type,
                                               enabled=precision == torch.float16)
        super().__init__(model, data_loader, optimizer, grad_scaler=grad_scaler,
                         precision=precision, **kwargs)

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
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
