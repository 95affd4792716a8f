"""Training engine: the Trainer (DefaultTrainer + DFR builders), optimizer/LR schedule,
NaN guard, checkpointer, start-up checks, the run directory (lock, deferred writes) and the
multi-process launcher. `dfr.engine` imports `dfr.data` (mapper) — it is the layer that wires
the package to Detectron2's training loop."""
from .checkpoint import (
    CheckpointMismatchError,
    CheckpointReadError,
    CheckpointWriteError,
    DFRCheckpointer,
)
from .checks import StartupCheckError, run_startup_checks
from .guard import check_losses_finite, install_nan_guard
from .launch import launch
from .rundir import OutputDirBusyError
from .solver import PolyParamScheduler, build_lr_scheduler, build_optimizer
from .trainer import Trainer

__all__ = [
    "Trainer",
    "build_optimizer",
    "build_lr_scheduler",
    "PolyParamScheduler",
    "install_nan_guard",
    "check_losses_finite",
    "DFRCheckpointer",
    "CheckpointMismatchError",
    "CheckpointReadError",
    "CheckpointWriteError",
    "OutputDirBusyError",
    "run_startup_checks",
    "StartupCheckError",
    "launch",
]
