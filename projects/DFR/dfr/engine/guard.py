"""Never a silent NaN model: check every training loss before backward.

`install_nan_guard(model)` registers a forward hook; in training mode it inspects the loss
dict the model returns and raises `FloatingPointError` naming the iteration, the non-finite
loss(es) and the batch's file names, before `backward()` and the optimizer step run — so the
last checkpoint and the weights in memory stay finite. Works unchanged with SimpleTrainer,
AMPTrainer and DDP (the hook sits on the wrapped module).
"""
import math

import torch
from detectron2.utils.events import get_event_storage

__all__ = ["install_nan_guard", "check_losses_finite"]


def _current_iter():
    try:
        return get_event_storage().iter
    except AssertionError:  # no EventStorage outside a training loop
        return None


def check_losses_finite(loss_dict, batch, iteration=None):
    """Raise FloatingPointError if any loss in `loss_dict` is NaN or inf.

    Args:
        loss_dict: {name: scalar tensor} as returned by the model in training mode.
        batch: the list of mapper dicts fed to the model (their "file_name" is reported).
        iteration: training iteration for the message (default: the EventStorage's).
    """
    values = {name: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
              for name, v in loss_dict.items()}
    bad = {name: v for name, v in values.items() if not math.isfinite(v)}
    if not bad:
        return
    it = _current_iter() if iteration is None else iteration
    files = [d.get("file_name", "<no file_name>") for d in batch] if batch is not None else []
    finite = {k: v for k, v in values.items() if k not in bad}
    raise FloatingPointError(
        f"Non-finite loss at iteration {it}: "
        + ", ".join(f"{k}={v}" for k, v in bad.items())
        + f" (finite: {finite}); batch files: {files}. "
        "Training stopped before backward; the last checkpoint is unaffected."
    )


def install_nan_guard(model: torch.nn.Module):
    """Register the check as a forward hook on `model`; returns the hook handle."""

    def hook(module, inputs, output):
        if module.training and isinstance(output, dict):
            check_losses_finite(output, inputs[0] if inputs else None)

    return model.register_forward_hook(hook)
