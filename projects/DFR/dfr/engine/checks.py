"""Start-up checks: what would otherwise fail after hours (at the first evaluation, or when the
sampler reaches a bad file) fails before the first iteration, naming the config key or file.

- every numeric / choice key of the method against its allowed range (``KEY_RANGES``, the one
  table; docs/GETTING_STARTED.md lists it), training and evaluation alike;
- ``MODEL.SEM_SEG_HEAD.NUM_CLASSES`` against ``len(stuff_classes)`` of every train/test set;
- ``SOLVER.IMS_PER_BATCH``: a positive multiple of the number of processes;
- a scan of the label PNGs (``--skip-checks`` skips it): every test-set ground truth and every
  training label has the image's size and values in {0..C-1, ignore_label} (else an error
  naming the files and values); training images without any labeled pixel are counted and
  logged as a WARNING with a few names; the largest test image fits evaluation's memory
  (TEST.MEMORY_LIMIT_MB, ``dfr.evaluation.postprocess``; else InferenceMemoryError naming it
  and the size that would fit).

The scan decodes each PNG once (PIL + ``np.bincount``) in a thread pool; on a multi-process
run only rank 0 reads the files and every rank raises the same error.
"""
import logging
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils import comm

from ..data.images import thread_map
from ..data.labels import LabelMapError, read_label, values_outside

__all__ = ["StartupCheckError", "run_startup_checks", "check_num_classes", "check_batch_size",
           "check_label_conventions", "check_config_values", "scan_labels", "KEY_RANGES",
           "Range", "ranges_markdown"]  # fmt: skip

logger = logging.getLogger(__name__)
SHOW = 5  # files named in a message


class StartupCheckError(ValueError):
    """A configuration or dataset problem found before training; the message names the key
    or the files."""


class Range:
    """Allowed values of a config key: a number in an interval (``low`` / ``high``, each
    inclusive or not; ``integer`` asks for a whole number), or one of ``choices``."""

    def __init__(self, low=None, high=None, *, low_open=False, high_open=False, integer=False,
                 choices=None, why=""):  # fmt: skip
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.integer, self.choices, self.why = integer, choices, why

    def accepts(self, value) -> bool:
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and float(value) != int(value):
            return False
        if value != value:  # NaN
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def __str__(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            lo, hi = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {lo}{self.low}, {self.high}{hi}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '≥'} {self.low}"
        return f"{kind} {'<' if self.high_open else '≤'} {self.high}"


_POS = dict(low=0, low_open=True)
# The one table of allowed values (docs/GETTING_STARTED.md's table is generated from it): the
# keys whose invalid values would otherwise pass silently or fail deep inside a loss / the LR
# scheduler.
KEY_RANGES: Dict[str, Range] = {
    "MODEL.DFR.FEAT_DIM": Range(1, integer=True, why="d, channels of the feature head"),
    "MODEL.DFR.LAMBDA_DFR": Range(0, why="λ1 of Eq. 1"),
    "MODEL.DFR.LAMBDA_FEAT": Range(0, why="λ2 of Eq. 1"),
    "MODEL.DFR.RADIUS": Range(1, integer=True, why="r: 0 leaves the window without pairs"),
    "MODEL.DFR.SIGMA_XY": Range(**_POS, why="σ1 divides in the kernel (Eq. 6)"),
    "MODEL.DFR.SIGMA_RGB": Range(**_POS, why="σ2 divides in the kernel (Eq. 6)"),
    "MODEL.DFR.SIGMA_FEAT": Range(**_POS, why="σ3 divides in the kernel (Eq. 6)"),
    "MODEL.DFR.SIGMA_FEAT_RELATIVE": Range(0, why="0 = off"),
    "MODEL.DFR.GAMMA": Range(0, 1, low_open=True, why="γ of Eq. 7: > 1 leaves M empty"),
    "MODEL.DFR.POSITION_STRIDE": Range(**_POS, why="S = stride·(x, y)"),
    "MODEL.DFR.LOSS_STRIDE": Range(1, integer=True, why="stride of the pairwise-loss map"),
    "MODEL.DFR.BACKGROUND_ID": Range(-1, integer=True, why="-1 = no background class"),
    "MODEL.DFR.DIAG_PERIOD": Range(0, integer=True, why="0 = off"),
    "MODEL.DFR.FEAT_SUPERVISION": Range(choices=("M", "scribble", "both"), why="Table 7"),
    "MODEL.DFR.FR_PAIRS": Range(choices=("RA", "R"), why="Lfr pair set"),
    "MODEL.AUX_HEAD.LOSS_WEIGHT": Range(0),
    "SOLVER.MAX_ITER": Range(1, integer=True),
    "SOLVER.BASE_LR": Range(**_POS),
    "SOLVER.WARMUP_ITERS": Range(0, integer=True),
    "SOLVER.CHECKPOINT_PERIOD": Range(1, integer=True),
    "SOLVER.POLY_LR_POWER": Range(0),
    "SOLVER.AMP.PRECISION": Range(choices=("float16", "bfloat16")),
    "SOLVER.AMP.MAX_CONSECUTIVE_SKIPS": Range(0, integer=True, why="0 = never stop"),
    "INPUT.DFR.FLIP_PROB": Range(0, 1),
    "TEST.EVAL_PERIOD": Range(0, integer=True, why="0 = only at the end"),
    "TEST.RESIZE_CHUNK_MB": Range(**_POS, why="MB of logits resized at a time"),
    "TEST.MEMORY_LIMIT_MB": Range(-1, why="0 = the memory available, -1 = no check"),
}


def ranges_markdown() -> str:
    """The table of docs/GETTING_STARTED.md: every MODEL.DFR key (switches: True / False,
    checked by the config itself) and every other key of KEY_RANGES, with its allowed values.
    A test keeps the page equal to it."""
    from ..config import get_dfr_cfg

    dfr = get_dfr_cfg(cpu_fallback=False).MODEL.DFR
    keys = [f"MODEL.DFR.{k}" for k in dfr] + [k for k in KEY_RANGES if not k.startswith(
        "MODEL.DFR.")]  # fmt: skip
    rows = ["| key | allowed | note |", "|---|---|---|"]
    for k in keys:
        r = KEY_RANGES.get(k)
        if r is None:
            v = dfr[k.rsplit(".", 1)[1]]
            allowed = "True or False" if isinstance(v, bool) else type(v).__name__
            rows.append(f"| `{k}` | {allowed} | |")
        else:
            rows.append(f"| `{k}` | {r} | {r.why} |")
    return "\n".join(rows)


def _lookup(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def check_config_values(cfg, train: bool = True):
    """Every key of ``KEY_RANGES`` holds an allowed value (all problems in one message); for an
    evaluation (``train=False``) only the MODEL keys."""
    problems = []
    for key, allowed in KEY_RANGES.items():
        if not train and not key.startswith("MODEL."):
            continue
        try:
            value = _lookup(cfg, key)
        except KeyError:
            continue  # a key of an optional part of the config (e.g. a newer Detectron2's)
        if not allowed.accepts(value):
            why = f" ({allowed.why})" if allowed.why else ""
            problems.append(f"{key} = {value!r}: expected {allowed}{why}")
    if problems:
        raise StartupCheckError("invalid config value(s):\n  " + "\n  ".join(problems))


def check_num_classes(cfg, dataset_names: Sequence[str], key: str = "DATASETS"):
    """Every dataset is registered and has as many ``stuff_classes`` as the head predicts."""
    num = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    registered = set(DatasetCatalog.list())
    for name in dataset_names:
        if name not in registered:
            raise StartupCheckError(f"{key}: dataset {name!r} is not registered")
        classes = MetadataCatalog.get(name).get("stuff_classes", None)
        source = MetadataCatalog.get(name).get("simulated_from", None)
        if classes is None and source is not None:
            _check_simulation_source(name, source, key, num)
        if classes is None:
            raise StartupCheckError(
                f"{key}: dataset {name!r} has no stuff_classes metadata, so "
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES = {num} cannot be checked (and the evaluator "
                f"needs it): set MetadataCatalog.get({name!r}).stuff_classes"
            )
        if len(classes) != num:
            raise StartupCheckError(
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES = {num}, but dataset {name!r} ({key}) has "
                f"{len(classes)} classes (stuff_classes {list(classes[:3])} ...): set "
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES {len(classes)} or use a dataset with {num}"
            )


def _check_simulation_source(name: str, source: str, key: str, num: int):
    """A `<source>_sim_<style>` set without classes: its source's are missing. Say why: a
    source without dense label maps (e.g. a detection set) is named as such; otherwise the
    classes belong on the source, not on the simulated name."""
    from ..data.datasets.simulated import check_source

    try:
        check_source(source, name, DatasetCatalog.get(source), allow_sparse=True)
    except ValueError as e:
        raise StartupCheckError(f"{key}: {e}") from None
    raise StartupCheckError(
        f"{key}: dataset {name!r} has no stuff_classes because its source {source!r} has none, "
        f"so MODEL.SEM_SEG_HEAD.NUM_CLASSES = {num} cannot be checked (and the evaluator needs "
        f"them): set MetadataCatalog.get({source!r}).stuff_classes before registering {name!r}"
    )


def check_label_conventions(cfg, dataset_names: Sequence[str], key: str, train: bool):
    """The config's ignore value matches each dataset's `ignore_label`, and, for training
    with Lfd, MODEL.DFR.BACKGROUND_ID matches the dataset's `background_id` (when it has
    one): A+bg / A+fg of Eq. 9-10 would otherwise be built from the wrong class."""
    ignore = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE
    for name in dataset_names:
        meta = MetadataCatalog.get(name)
        if meta.get("ignore_label", ignore) != ignore:
            raise StartupCheckError(
                f"MODEL.SEM_SEG_HEAD.IGNORE_VALUE = {ignore}, but dataset {name!r} ({key}) "
                f"marks unlabeled pixels with {meta.ignore_label}: set "
                f"MODEL.SEM_SEG_HEAD.IGNORE_VALUE {meta.ignore_label}"
            )
        bg = meta.get("background_id", None)
        if train and cfg.MODEL.DFR.USE_FD and bg is not None and bg != cfg.MODEL.DFR.BACKGROUND_ID:
            what = "no background class" if bg < 0 else f"background = class {bg}"
            raise StartupCheckError(
                f"MODEL.DFR.BACKGROUND_ID = {cfg.MODEL.DFR.BACKGROUND_ID}, but dataset {name!r} "
                f"({key}) has {what}: set MODEL.DFR.BACKGROUND_ID {bg}"
            )


def check_batch_size(cfg, world_size: int):
    """The global batch (after Detectron2's SOLVER.REFERENCE_WORLD_SIZE scaling, if set) is a
    positive multiple of the number of processes."""
    n = cfg.SOLVER.IMS_PER_BATCH
    ref = cfg.SOLVER.REFERENCE_WORLD_SIZE
    scaled = int(round(n * world_size / ref)) if ref and n > 0 else n
    if n <= 0 or scaled % world_size:
        via = f" (scaled to {scaled} by SOLVER.REFERENCE_WORLD_SIZE = {ref})" if scaled != n else ""
        raise StartupCheckError(
            f"SOLVER.IMS_PER_BATCH = {n}{via} must be a positive multiple of the number of "
            f"processes ({world_size} = --num-gpus x --num-machines): it is the global batch, "
            "split evenly over the processes"
        )


def _label_summary(rec: Dict) -> Dict:
    """Size and set of values of one label PNG (or the error reading it)."""
    path = rec["sem_seg_file_name"]
    try:
        arr = read_label(path)
    except LabelMapError as e:
        return {"file": path, "error": str(e)}
    values = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
    out = {"file": path, "values": values.tolist(), "shape": arr.shape}
    if "height" in rec and "width" in rec and arr.shape != (rec["height"], rec["width"]):
        out["error"] = (
            f"label is {arr.shape[1]}x{arr.shape[0]} (WxH) but the image is "
            f"{rec['width']}x{rec['height']}"
        )
    return out


def scan_labels(records: Sequence[Dict], workers: int = 0) -> List[Dict]:
    """``_label_summary`` of every record with a ``sem_seg_file_name``, in a thread pool (PIL
    releases the GIL while decoding); ``workers`` <= 0: min(8, CPU count)."""
    recs = [r for r in records if "sem_seg_file_name" in r]
    return thread_map(_label_summary, recs, workers=workers)


def _check_test_memory(cfg, name: str, results: List[Dict]):
    """The largest image of a test set must fit evaluation's memory (TEST.MEMORY_LIMIT_MB; with
    TEST.AUG.ENABLED, its multi-scale pass): else InferenceMemoryError naming it, hours
    before the first evaluation would have failed."""
    from ..evaluation.tta import check_inference_memory

    sized = [r for r in results if "shape" in r]
    if not sized:
        return
    big = max(sized, key=lambda r: r["shape"][0] * r["shape"][1])
    check_inference_memory(cfg, tuple(big["shape"]), f"{big['file']} (dataset {name!r})",
                           tta=cfg.TEST.AUG.ENABLED)  # fmt: skip


def _dataset_problems(name: str, role: str, num_classes: int, cfg=None) -> Optional[str]:
    """Scan one dataset; return an error message, or None (and log the unlabeled count)."""
    ignore = MetadataCatalog.get(name).get("ignore_label", 255)
    results = scan_labels(DatasetCatalog.get(name))
    if role == "test" and cfg is not None:
        _check_test_memory(cfg, name, results)
    bad = []
    for r in results:
        if "error" in r:
            bad.append(f"{r['file']}: {r['error']}")
        else:
            extra = values_outside(np.asarray(r["values"]), num_classes, ignore)
            if extra.size:
                bad.append(f"{r['file']}: values {extra.tolist()} outside 0..{num_classes - 1}, "
                           f"{ignore}")  # fmt: skip
    if bad:
        what = "ground-truth" if role == "test" else "label"
        more = f"\n  ... and {len(bad) - SHOW} more" if len(bad) > SHOW else ""
        return (
            f"dataset {name!r} (DATASETS.{role.upper()}): {len(bad)} of {len(results)} {what} "
            f"files unusable with MODEL.SEM_SEG_HEAD.NUM_CLASSES = {num_classes}, "
            f"ignore_label = {ignore}:\n  " + "\n  ".join(bad[:SHOW]) + more + "\n"
            "Fix the files (or the dataset / NUM_CLASSES); --skip-checks skips this scan."
        )
    if role == "train":
        empty = [r["file"] for r in results if set(r["values"]) <= {ignore}]
        if empty:
            names = ", ".join(os.path.basename(f) for f in empty[:SHOW])
            logger.warning(
                f"dataset {name!r}: {len(empty)} of {len(results)} training images have no "
                f"labeled pixel (all {ignore}), so no partial cross-entropy on them, e.g. "
                f"{names}{' ...' if len(empty) > SHOW else ''}"
            )
    return None


def run_startup_checks(cfg, train: bool = True, scan: bool = True):
    """The checks for a training run (``train``) or an evaluation (test sets only). Raises
    ``StartupCheckError``; every process of a multi-process run raises the same one."""
    check_config_values(cfg, train=train)
    if train:
        check_batch_size(cfg, comm.get_world_size())
        check_num_classes(cfg, cfg.DATASETS.TRAIN, "DATASETS.TRAIN")
        check_label_conventions(cfg, cfg.DATASETS.TRAIN, "DATASETS.TRAIN", train=True)
    check_num_classes(cfg, cfg.DATASETS.TEST, "DATASETS.TEST")
    check_label_conventions(cfg, cfg.DATASETS.TEST, "DATASETS.TEST", train=False)
    if not scan:
        logger.info("Start-up label scan skipped (--skip-checks)")
        return
    msg, err = None, None
    if comm.is_main_process():
        t0 = time.perf_counter()
        roles = [("train", n) for n in cfg.DATASETS.TRAIN] if train else []
        roles += [("test", n) for n in cfg.DATASETS.TEST]
        try:
            for role, name in roles:
                msg = _dataset_problems(name, role, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, cfg)
                if msg:
                    break
        except Exception as e:  # e.g. a missing dataset folder: the other ranks must stop too
            err, msg = e, f"{type(e).__name__}: {e}"
        logger.info(
            f"Start-up label scan of {len(roles)} dataset(s) ({', '.join(n for _, n in roles)}): "
            f"{time.perf_counter() - t0:.2f} s"
        )
    if comm.get_world_size() > 1:
        msg = comm.all_gather(msg)[0]
    if err is not None:
        raise err
    if msg:
        raise StartupCheckError(msg)
