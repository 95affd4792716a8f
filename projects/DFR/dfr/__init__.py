"""DFR: Dynamic Feature Regularized loss for scribble-supervised semantic segmentation,
as a Detectron2 project.

Importing `dfr` is light (no torch, detectron2 or timm). `add_dfr_config(cfg)` (and
`dfr.config.get_dfr_cfg`, which calls it) registers the model parts (backbone, heads,
meta-architecture) and the builtin dataset names in Detectron2's registries; importing
`dfr.data` registers the dataset names alone. The datasets a config names beyond those:
`dfr.data.register_datasets_from_cfg(cfg)`, called by the entry points.
"""
import importlib
import logging
import warnings

__all__ = ["add_dfr_config", "get_dfr_cfg", "TORCH_JIT_WARNING"]
__version__ = "0.1.0"

# detectron2 and fvcore call torch.jit.script / torch.jit.interface when they are imported,
# and recent torch warns (FutureWarning) for each call. This is the one place for the
# package's warning / log filters (this one and the CUDA_HOME line below): the entry points
# import dfr before detectron2.
TORCH_JIT_WARNING = r"`torch\.jit\.\w+` is deprecated"
warnings.filterwarnings("ignore", TORCH_JIT_WARNING, FutureWarning)


class _NoCudaRuntimeLine(logging.Filter):
    """Drops torch.utils.cpp_extension's `No CUDA runtime is found, using CUDA_HOME=...`:
    Detectron2's collect_env (logged by default_setup at every start) imports cpp_extension,
    which prints it on any machine with nvcc or CUDA_HOME but no GPU. Nothing of DFR compiles
    C++/CUDA extensions, so the line says nothing about a DFR run. A filter on that logger
    (not a level) survives torch._logging resetting the levels of torch's loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No CUDA runtime is found")


logging.getLogger("torch.utils.cpp_extension").addFilter(_NoCudaRuntimeLine())


def __getattr__(name):
    """`dfr.add_dfr_config` / `dfr.get_dfr_cfg` import dfr.config (and detectron2) on first use."""
    if name in ("add_dfr_config", "get_dfr_cfg"):
        return getattr(importlib.import_module(".config", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
