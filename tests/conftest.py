"""Shared pytest fixtures. Tests run on CPU; anything heavier than a second is kept tiny."""
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "projects" / "DFR" / "configs"
FIXTURES = REPO / "tests" / "fixtures"
REAL_VOC = FIXTURES / "real_voc"  # real VOC / ScribbleSup samples (fixtures/README.md)

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def real_voc():
    """The real samples in the repository: no test skips for want of data."""
    assert REAL_VOC.is_dir(), f"{REAL_VOC} is missing (it is part of the repository)"
    return REAL_VOC
