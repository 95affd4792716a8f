"""Helpers for the engine tests (test_engine.py, test_train_net.py, test_tta.py): a tiny
synthetic dataset registered under tmp_path, the instant-test config, train_net.py's main."""
import itertools
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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
    from conftest import load_script

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
