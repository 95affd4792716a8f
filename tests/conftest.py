"""Pytest fixtures and the test run's settings. Tests run on CPU; anything heavier than a
second is kept tiny. Shared helpers (paths, load_script, logged, tiny models): helpers.py."""
import os

import pytest
import torch
from helpers import REAL_VOC

torch.set_num_threads(min(2, os.cpu_count() or 1))
if not torch.cuda.is_available():  # Triton kernels run interpreted (read when Triton is imported)
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def real_voc():
    """The real samples in the repository: no test skips for want of data."""
    assert REAL_VOC.is_dir(), f"{REAL_VOC} is missing (it is part of the repository)"
    return REAL_VOC


@pytest.fixture(scope="module")
def custom_importer():
    """datasets/prepare_custom_scribbles.py, loaded once per test module."""
    from helpers import load_custom_importer

    return load_custom_importer()
