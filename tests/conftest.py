"""Shared pytest fixtures. Tests run on CPU; anything heavier than a second is kept tiny."""
import contextlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "projects" / "DFR" / "configs"
FIXTURES = REPO / "tests" / "fixtures"
REAL_VOC = FIXTURES / "real_voc"  # real VOC / ScribbleSup samples (fixtures/README.md)

torch.set_num_threads(min(2, os.cpu_count() or 1))
if not torch.cuda.is_available():  # Triton kernels run interpreted (read when Triton is imported)
    os.environ.setdefault("TRITON_INTERPRET", "1")


def load_script(rel_path, name=None):
    """A script of the repository (tools/, datasets/, train_net.py, demo.py) imported as a
    fresh module `name` (default: its stem), registered in sys.modules so that dataclasses
    and pickling find it."""
    path = REPO / rel_path
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    @property
    def text(self):
        return "\n".join(self.messages)


@contextlib.contextmanager
def logged(name: str):
    """What logger `name` logs at INFO and above (`.messages`, `.text`), read from the logger
    itself (an earlier test's Detectron2 `setup_logger` stops propagation to caplog)."""
    logger, handler = logging.getLogger(name), _Records()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def real_voc():
    """The real samples in the repository: no test skips for want of data."""
    assert REAL_VOC.is_dir(), f"{REAL_VOC} is missing (it is part of the repository)"
    return REAL_VOC
