"""The tests' shared helpers (the one module tests import helpers from; pytest fixtures stay
in conftest.py): repository paths, loading a script as a module, log capture, the tiny models
and configs several test modules build, the engine tests' synthetic set and train_net.py
setup, and the custom-dataset writers."""
import contextlib
import importlib.util
import itertools
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "projects" / "DFR" / "configs"
FIXTURES = REPO / "tests" / "fixtures"
REAL_VOC = FIXTURES / "real_voc"  # real VOC / ScribbleSup samples (fixtures/README.md)


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


# ---------------------------------------------------------------- tiny models and configs
# A 5-class tiny network on Base-DFR.yaml (checkpoint loading / resume tests).
TINY_MODEL_OPTS = ["MODEL.DEVICE", "cpu", "MODEL.SWIN.SIZE", "custom", "MODEL.SWIN.EMBED_DIM", 16,
                   "MODEL.SWIN.DEPTHS", [1, 1, 1, 1], "MODEL.SWIN.NUM_HEADS", [1, 2, 2, 4],
                   "MODEL.SWIN.WINDOW_SIZE", 7, "MODEL.SWIN.PRETRAIN_IMG_SIZE", 224,
                   "MODEL.SWIN.DROP_PATH_RATE", 0.0, "MODEL.UPERNET.CHANNELS", 8,
                   "MODEL.AUX_HEAD.CHANNELS", 8, "MODEL.DFR.FEAT_DIM", 8,
                   "MODEL.SEM_SEG_HEAD.NUM_CLASSES", 5]  # fmt: skip


def tiny_model(*opts, seed=0):
    """The TINY_MODEL_OPTS network (+ `opts`), seeded, in eval mode."""
    import torch
    from detectron2.modeling import build_model

    from dfr.config import get_dfr_cfg

    torch.manual_seed(seed)
    return build_model(get_dfr_cfg(CONFIGS / "Base-DFR.yaml", TINY_MODEL_OPTS + list(opts))).eval()


# Overrides that make any config's network tiny (every YAML built, trained a step).
TINY_TRAIN_OPTS = ["MODEL.SWIN.SIZE", "custom", "MODEL.SWIN.EMBED_DIM", "8", "MODEL.SWIN.DEPTHS",
                   "[1,1,1,1]", "MODEL.SWIN.NUM_HEADS", "[1,1,1,1]", "MODEL.SWIN.WINDOW_SIZE", "4",
                   "MODEL.SWIN.DROP_PATH_RATE", "0.1", "MODEL.UPERNET.CHANNELS", "8",
                   "MODEL.AUX_HEAD.CHANNELS", "8", "MODEL.DFR.FEAT_DIM", "4", "MODEL.DEVICE", "cpu",
                   "MODEL.SEM_SEG_HEAD.NORM", "BN", "INPUT.CROP.SIZE", "(40, 56)"]  # fmt: skip


# ---------------------------------------------------------------- engine tests
TRAIN_NET = REPO / "projects" / "DFR" / "train_net.py"
INSTANT = REPO / "projects/DFR/configs/quick_schedules/dfr_swin_tiny_synthetic_instant_test.yaml"

# 4 train / 2 val images of 64 x 64: one crop = one image, no random resize / flip / colour.
TINY_SPEC_KW = dict(num_train=4, num_val=2, min_size=64, max_size=64, seed=3)
DETERMINISTIC_OPTS = [
    "INPUT.DFR.RESIZE_SCALE", "[64, 64]", "INPUT.DFR.RATIO_RANGE", "[1.0, 1.0]",
    "INPUT.DFR.FLIP_PROB", "0.0", "INPUT.DFR.PHOTOMETRIC", "False",
    "DATALOADER.NUM_WORKERS", "0", "SOLVER.CHECKPOINT_PERIOD", "2",
]  # fmt: skip
_counter = itertools.count()


def register_tiny(root: Path, prefix: str = None) -> str:
    """Register <prefix>_{scribble_train,full_train,scribble_val} on a 64-px synthetic set."""
    from dfr.data.synthetic import SyntheticSpec, register_synthetic

    prefix = prefix or f"enginetest{os.getpid()}_{next(_counter)}"
    spec = SyntheticSpec(dirname="engine_tiny", **TINY_SPEC_KW)
    register_synthetic(prefix, spec, root=str(root))
    return prefix


def dataset_opts(prefix: str, train: str = "scribble_train"):
    return ["DATASETS.TRAIN", f"('{prefix}_{train}',)",
            "DATASETS.TEST", f"('{prefix}_scribble_val',)"]  # fmt: skip


def load_train_net():
    return load_script(TRAIN_NET.relative_to(REPO), "dfr_train_net")


def parse(argv):
    from detectron2.engine import default_argument_parser

    return default_argument_parser().parse_args([str(a) for a in argv])


def setup_cfg(out_dir: Path, prefix: str, *opts, config=INSTANT):
    """The train_net.py config (incl. default_setup) for the tiny set."""
    args = parse(["--config-file", config, *DETERMINISTIC_OPTS, *dataset_opts(prefix),
                  "OUTPUT_DIR", out_dir, *opts])  # fmt: skip
    return load_train_net().setup(args)


def metrics_rows(out_dir: Path):
    rows = [json.loads(line) for line in (Path(out_dir) / "metrics.json").read_text().splitlines()]
    merged = {}
    for r in rows:
        merged.setdefault(r["iteration"], {}).update(r)
    return merged


def python():
    return sys.executable


# ---------------------------------------------------------------- your own scribbles
CUSTOM_CLASSES = ["background", "animal", "person", "vehicle"]


def load_custom_importer():
    return load_script("datasets/prepare_custom_scribbles.py")


def write_random_image(path, hw, seed=0):
    """A random RGB image of size `hw` at `path` (folders created)."""
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def checkout_like(work: Path):
    """`work` laid out like the checkout for the README's commands: projects/, tools/,
    datasets/*.py linked, and .venv/bin/python = the running interpreter (sys.executable)."""
    work.mkdir(parents=True)
    for name in ("projects", "tools"):
        os.symlink(REPO / name, work / name)
    (work / "datasets").mkdir()
    for script in (REPO / "datasets").glob("*.py"):
        os.symlink(script, work / "datasets" / script.name)
    py = work / ".venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    py.chmod(0o755)


def tree_hash(root) -> dict:
    """Every file (its hash) and folder (None) under `root`: a file written, changed or
    removed, or a folder created, shows."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else None
        for p in sorted(Path(root).rglob("*"))
    }


def run_importer(importer, capsys, *argv):
    """Run the custom importer's main on `argv`: (exit status, what it printed)."""
    code = importer.main([str(a) for a in argv])
    return code, capsys.readouterr().out
