"""Shared pytest fixtures. Tests run on CPU; anything heavier than a second is kept tiny."""
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "projects" / "DFR" / "configs"
SHARED = REPO.parent / "shared"
REAL_VOC = SHARED / "real_voc"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def real_voc():
    if not REAL_VOC.is_dir():
        pytest.skip(f"real VOC samples not found at {REAL_VOC}")
    return REAL_VOC
