"""What importing costs, each in a fresh interpreter: `dfr` and `dfr.cli` load no torch,
`dfr.modeling.losses` loads torch alone (no detectron2, timm, fvcore), `add_dfr_config`
registers what a DFR config names, and the torch.jit FutureWarnings of detectron2 / fvcore
are silenced by importing dfr first."""
import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "detectron2", "timm", "fvcore", "cv2", "PIL", "skimage", "numpy")


def _fresh(code: str, *flags: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    r = subprocess.run([sys.executable, *flags, "-c", code], env=env, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _loaded_after(statement: str):
    code = (f"import json, sys\n{statement}\n"
            "print(json.dumps(sorted(sys.modules)))")  # fmt: skip
    mods = json.loads(_fresh(code).stdout.strip().splitlines()[-1])
    tops = {m.split(".")[0] for m in mods}
    return {h for h in HEAVY if h in tops}, {m for m in mods if m.split(".")[0] == "dfr"}


@pytest.mark.parametrize("statement", ["import dfr", "import dfr.cli"])
def test_package_and_cli_import_nothing_heavy(statement):
    heavy, ours = _loaded_after(statement)
    assert heavy == set(), f"{statement} loads {sorted(heavy)}"
    assert ours <= {"dfr", "dfr.cli"}


def test_losses_load_torch_alone():
    heavy, ours = _loaded_after("import dfr.modeling.losses")
    assert "torch" in heavy
    assert not heavy & {"detectron2", "timm", "fvcore", "cv2", "PIL", "skimage"}, sorted(heavy)
    assert all(m in ("dfr", "dfr.modeling") or m.startswith("dfr.modeling.losses") for m in ours), (
        sorted(ours))
    # the package's class names stay reachable, imported on first access
    heavy, ours = _loaded_after("import dfr.modeling\nassert dfr.modeling.UperNetHead.__name__")
    assert "detectron2" in heavy and "dfr.modeling.heads.seg_heads" in ours


def test_add_dfr_config_registers_what_a_config_names():
    code = """
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY
assert "DFRSegmentor" not in META_ARCH_REGISTRY
from dfr import add_dfr_config
cfg = get_cfg()
add_dfr_config(cfg)
from dfr.modeling.heads import DFR_SEM_SEG_HEADS_REGISTRY
names = DatasetCatalog.list()
print(META_ARCH_REGISTRY.get("DFRSegmentor").__module__,
      BACKBONE_REGISTRY.get("D2SwinTransformer").__module__,
      DFR_SEM_SEG_HEADS_REGISTRY.get("UperNetHead").__module__,
      "voc_2012_val_sem_seg" in names, "synthetic_tiny_scribble_train" in names)
"""
    out = _fresh(code).stdout.split()
    assert out == ["dfr.modeling.meta_arch.dfr_segmentor", "dfr.modeling.backbone.swin",
                   "dfr.modeling.heads.seg_heads", "True", "True"]  # fmt: skip


def test_importing_dfr_first_silences_the_torch_jit_warnings():
    code = "import dfr\nimport detectron2.engine, detectron2.modeling, fvcore.nn"
    r = _fresh(code, "-W", "default")
    assert "torch.jit" not in r.stderr and "FutureWarning" not in r.stderr, r.stderr[-2000:]
