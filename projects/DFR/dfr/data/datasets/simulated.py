"""Any registered dense dataset -> a scribble dataset: ``<source>_sim_<style>``.

    from dfr.data import register_simulated_scribbles
    register_simulated_scribbles("ade20k_sem_seg_train", style="s4")
    # -> "ade20k_sem_seg_train_sim_s4"

or, without any Python, a name of that form in ``DATASETS.TRAIN`` / ``DATASETS.TEST`` (the
config loader calls ``register_simulated_from_cfg``). ``<source>`` is any name in Detectron2's
DatasetCatalog whose records carry a dense ``sem_seg_file_name`` (Detectron2's builtins
``ade20k_sem_seg_train``, ``cityscapes_fine_sem_seg_train``, the project's
``voc_2012_train_aug_full``, ``synthetic_full_train``, a DATASETS.DFR.CUSTOM set, yours);
``<style>`` one of ``dfr.data.scribbles.STYLES``. The source must be dense: a set whose metadata
says scribbles (``scribble_source``, ``simulated_from``) is refused when registered, one with
less than half of its pixels labeled (``MIN_SOURCE_LABELED``, ``check_source``) when loaded,
unless DATASETS.DFR.SIMULATE_FROM_SPARSE / ``allow_sparse_source``.

Lazy: registration reads nothing. When the name is first loaded, every source label map is
read (``dfr.data.labels.read_label``: whatever single-channel encoding the source's own
loader points at, e.g. Cityscapes ``*_labelTrainIds.png``), simulated with
``simulate_scribbles`` and written once, with a progress bar, to

    <root>/<source>/<style>_seed<seed>/<k>_<label file name>.png   + manifest.json

``root`` defaults to ``$DETECTRON2_DATASETS/simulated``; a set simulated with ``scale`` other
than 1 (``"auto"``: the styles' sizes scale with each image, dfr.data.scribbles.params) lives in
``<style>_<auto|x<s>>_seed<seed>/``. The manifest records the style, seed, scale, generator
version (``GENERATOR_VERSION[style]``), line width, ignore label, source name and number of
records; a later load reuses the files while it matches and regenerates the folder otherwise.

Generation runs in ``workers`` processes (``DATASETS.DFR.SIMULATION_WORKERS``; 0: one per
core), one thread each; the maps are the same bytes for any number of workers (each depends on
its record and the seed only). It is resumable: every map is written under a temporary name and
renamed, the set's identity is in ``.partial.json`` while it is being written, and the manifest
is written last; a run that stops keeps its finished maps, and the next load of the same set
simulates only the missing ones. A folder of another identity (an outdated set) is replaced.

Per-image seed: ``dfr.data.scribbles.image_seed(seed, key)`` (seed and a CRC of the key),
``key`` = the record's ``image_id``, else its image file name without extension (Detectron2's
Cityscapes and ADE20K records carry no image_id). The scribbles of an image thus depend on the
dataset seed and the image only, not on the order or the number of records.

The records are the source's, with ``sem_seg_file_name`` pointing at the simulated maps; the
metadata is the source's (classes, colours, ignore label, evaluator type, background id, ...)
plus ``simulated_from``, ``scribble_style`` and ``scribble_seed``. The source itself stays the
evaluation set.

Scribble-length study (Fig. 3) on simulated scribbles: a style with the suffix ``_len<p>``
(every scribble shortened to p % of its skeleton length) or ``_drop<p>`` (p % of the scribbles
of each image removed), e.g. ``synthetic_full_train_sim_s4_len30``, is the simulated set of the
base style transformed by ``dfr.data.scribbles.transform_label_root`` (what
tools/shorten_scribbles.py does to the VOC scribbles; each map seeded by the set's seed and its
file name), written next to it as ``<style>_<len|drop><p>_seed<seed>/`` with its own manifest.
"""
import json
import logging
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from iopath.common.file_io import file_lock

from ..classes import IGNORE_LABEL
from ..labels import read_label
from ..paths import fresh_tempdir, get_datasets_root
from ..scribbles.params import resolve_scale
from ..scribbles.simulate import GENERATOR_VERSION, STYLES, image_seed, simulate_scribbles
from ..scribbles.tools import transform_label_root

__all__ = [
    "SIM_INFIX",
    "MANIFEST",
    "parse_simulated_name",
    "split_style",
    "simulation_dir",
    "image_key",
    "check_source",
    "load_simulated_scribbles",
    "normalize_scale",
    "simulation_workers",
    "worker_pool",
    "register_simulated_scribbles",
    "register_simulated_from_cfg",
]

logger = logging.getLogger(__name__)

SIM_INFIX = "_sim_"
MANIFEST = "manifest.json"
PARTIAL = ".partial.json"  # the identity of a set being written (resume only into the same)
MANIFEST_FORMAT = 1
_INFO_KEYS = ("created", "masked_pixels", "transform_stats")  # describe, not identify, a set
_VARIANT = re.compile(r"(?P<base>.+)_(?P<kind>len|drop)(?P<pct>\d+)")
_SPECS: Dict[str, tuple] = {}  # names registered here -> (source, style, seed, root, width, ..)
Scale = Union[str, float]  # "auto" or a factor (dfr.data.scribbles.params)
# A source must be dense: at least MIN_SOURCE_LABELED of the pixels of its label maps labeled
# (pooled over up to SOURCE_SAMPLE maps spread over the set), and not a scribble set by its
# metadata. Scribbles simulated from scribbles keep a few of their pixels (s4 maps, 4-6 %
# labeled -> 0.07-1.6 %) and train on almost nothing; dense sets are ~90 % labeled.
MIN_SOURCE_LABELED = 0.5
SOURCE_SAMPLE = 16
_SCRIBBLE_META = ("scribble_source", "simulated_from")  # metadata keys of scribble sets
_SPARSE_OPT_IN = ("set DATASETS.DFR.SIMULATE_FROM_SPARSE True (register_simulated_scribbles("
                  "..., allow_sparse_source=True)) to simulate from it anyway")


def parse_simulated_name(name: str) -> Optional[Tuple[str, str]]:
    """``"<source>_sim_<style>"`` -> (source, style); None when `name` has no ``_sim_``. The
    style is not checked here (see register_simulated_from_cfg)."""
    source, sep, style = name.rpartition(SIM_INFIX)
    if not sep or not source or not style:
        return None
    return source, style


def split_style(style: str) -> Tuple[str, Optional[Tuple[str, float]]]:
    """``"s4"`` -> ("s4", None); ``"s4_len30"`` -> ("s4", ("length", 0.3)); ``"s4_drop50"`` ->
    ("s4", ("drop", 0.5)): the generator style and the Fig. 3 transform of its scribbles."""
    m = _VARIANT.fullmatch(style)
    if m is None:
        return style, None
    kind = "length" if m.group("kind") == "len" else "drop"
    return m.group("base"), (kind, int(m.group("pct")) / 100)


def _check_style(style: str, name: str):
    base, variant = split_style(style)
    if base not in STYLES:
        raise ValueError(
            f"unknown scribble style {style!r} for {name}; known styles: {', '.join(STYLES)} "
            "(optionally with _len<p> or _drop<p>, p in 0..100: Fig. 3 shortened / dropped)"
        )
    if variant is not None and variant[1] > 1.0:
        raise ValueError(f"{name}: {style!r}: a percentage above 100")


def normalize_scale(scale: Scale) -> Scale:
    """"auto" or a positive float (what the manifest records); raises ValueError otherwise."""
    if isinstance(scale, str) and scale.strip().lower() == "auto":
        return "auto"
    return resolve_scale(scale, (1, 1))


def simulation_dir(
    source: str, style: str, seed: int, root: Optional[str] = None, scale: Scale = 1.0
) -> str:
    """Folder of the simulated label maps of (source, style, seed, scale)."""
    root = root if root is not None else os.path.join(get_datasets_root(), "simulated")
    scale = normalize_scale(scale)
    tag = "" if scale == 1.0 else ("_auto" if scale == "auto" else f"_x{scale:g}")
    return os.path.join(os.path.expanduser(root), source, f"{style}{tag}_seed{int(seed)}")


def simulation_workers(workers: int = 0) -> int:
    """The number of worker processes for `workers` (0 or less: one per usable core)."""
    if workers and workers > 0:
        return int(workers)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def image_key(record: Dict) -> str:
    """The id a record's per-image seed is drawn from: its image_id, else its image's file
    name without extension (Detectron2's ADE20K / Cityscapes records carry no image_id)."""
    if record.get("image_id") is not None:
        return str(record["image_id"])
    return os.path.splitext(os.path.basename(record["file_name"]))[0]


def _out_name(index: int, record: Dict) -> str:
    stem = os.path.splitext(os.path.basename(record["sem_seg_file_name"]))[0]
    return f"{index:06d}_{stem}.png"


def _read_manifest(folder: str) -> Optional[Dict]:
    try:
        with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _usable(folder: str, expected: Dict, names: List[str]) -> bool:
    old = _read_manifest(folder)
    if old is None:
        return False
    old = {k: v for k, v in old.items() if k not in _INFO_KEYS}
    return old == expected and all(os.path.isfile(os.path.join(folder, n)) for n in names)


def _simulate_one(task) -> Tuple[str, int]:
    """Simulate and write one map (a worker's unit): (name, pixels left unlabeled because they
    disagreed with the dense label). The file is written under a temporary name and renamed."""
    from PIL import Image

    dense_file, out_dir, name, style, seed, ignore_label, width, scale = task
    dense = read_label(dense_file)
    sim = simulate_scribbles(dense, style=style, seed=seed, ignore_label=ignore_label,
                             width=width, scale=scale)  # fmt: skip
    # the training labels never contradict the dense ones: a simulated pixel of another
    # class (a generator bug) is left unlabeled, counted and reported
    wrong = (sim != ignore_label) & (sim != dense)
    if wrong.any():
        sim = np.where(wrong, np.uint8(ignore_label), sim)
    tmp = os.path.join(out_dir, f".{name}.{os.getpid()}.tmp")
    Image.fromarray(np.ascontiguousarray(sim, dtype=np.uint8), mode="L").save(tmp, format="PNG")
    os.replace(tmp, os.path.join(out_dir, name))
    return name, int(wrong.sum())


def worker_pool(workers: int):
    """`workers` processes with one OpenCV thread each. Forked where possible (nothing to
    re-import); OpenCV's thread count is set to 1 in this process around the fork (set in a
    forked child after the parent used OpenCV's thread pool, it deadlocks) and restored."""
    import cv2

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return multiprocessing.get_context(method).Pool(workers)
    finally:
        cv2.setNumThreads(threads)


def _simulate_into(folder, records, names, expected, workers: int) -> Dict:
    """Write the simulated map of every record into `folder` that is not there yet, in
    `workers` processes; returns the manifest's info (pixels masked over the whole set)."""
    from tqdm import tqdm

    style, seed, scale = expected["style"], expected["seed"], expected["scale"]
    log = os.path.join(folder, ".masked.jsonl")  # per map, what the manifest sums at the end
    tasks = [(rec["sem_seg_file_name"], folder, name, style, image_seed(seed, image_key(rec)),
              expected["ignore_label"], expected["width"], scale)
             for rec, name in zip(records, names)
             if not os.path.isfile(os.path.join(folder, name))]  # fmt: skip
    desc = f"simulating {expected['source']} -> {style} scribbles (seed {seed})"
    if len(tasks) < len(names):
        desc += f", resumed: {len(names) - len(tasks)} of {len(names)} done"
    workers = max(1, min(simulation_workers(workers), len(tasks)))
    with open(log, "a", encoding="utf-8") as out:
        if workers == 1:
            results = map(_simulate_one, tasks)
            pool = None
        else:
            pool = worker_pool(workers)
            results = pool.imap_unordered(_simulate_one, tasks, chunksize=4)
        try:
            for name, masked in tqdm(results, total=len(tasks), desc=desc, unit="img"):
                if masked:
                    out.write(json.dumps([name, masked]) + "\n")
                    out.flush()
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    with open(log, encoding="utf-8") as f:
        counts = dict(json.loads(line) for line in f if line.strip())
    masked = sum(counts.values())
    if masked:
        logger.warning(f"{masked} {style} scribble pixels disagreed with the dense labels of "
                       f"{expected['source']} (left unlabeled), e.g. in {min(counts)}")  # fmt: skip
    return {"masked_pixels": masked}


def _write_json(path: str, data: Dict):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def _generate_resumable(folder, expected, names, fill):
    """Write a set in place: keep the finished maps of an interrupted run of the same set
    (``.partial.json`` equal to `expected`), replace a folder of another identity, run
    ``fill(folder) -> manifest info`` and write the manifest last. Called under the set's lock."""
    partial = os.path.join(folder, PARTIAL)
    try:
        with open(partial, encoding="utf-8") as f:
            resume = json.load(f) == expected
    except (OSError, ValueError):
        resume = False
    if not resume and os.path.exists(folder):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.old-",
                               dir=os.path.dirname(folder))  # fmt: skip
        os.rename(folder, os.path.join(old, "set"))
        shutil.rmtree(old, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    if not resume:
        _write_json(partial, expected)
    info = fill(folder)
    for name in os.listdir(folder):  # what killed writers left
        if name.startswith(".") and name.endswith(".tmp"):
            os.remove(os.path.join(folder, name))
    _write_json(os.path.join(folder, MANIFEST),
                dict(expected, created=time.strftime("%Y-%m-%dT%H:%M:%S"), **info))  # fmt: skip
    os.remove(partial)
    masked_log = os.path.join(folder, ".masked.jsonl")
    if os.path.exists(masked_log):
        os.remove(masked_log)


def _generate(folder, expected, names, fill):
    """Write a set into a temporary folder next to `folder` (normal permissions; what a killed
    run left is removed first) with ``fill(tmp) -> manifest info``, then rename it into place,
    replacing an outdated `folder`. Called under the set's lock."""
    parent = os.path.dirname(folder)
    tmp = fresh_tempdir(folder)
    try:
        info = fill(tmp)
        data = dict(expected, created=time.strftime("%Y-%m-%dT%H:%M:%S"), **info)
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        old = None
        if os.path.isdir(folder):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.old-", dir=parent)
            os.rename(folder, os.path.join(old, "set"))
        try:
            os.rename(tmp, folder)
        except OSError:
            # another process finished the same set first: keep its files if they fit
            if not _usable(folder, expected, names):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_source(source: str, name: str, records: List[Dict], ignore_label: int = IGNORE_LABEL,
                 allow_sparse: bool = False):
    """ValueError unless `records` (of `source`) can be simulated from: every record has a
    dense ``sem_seg_file_name`` (a detection / instance set has none) and, unless
    `allow_sparse`, at least MIN_SOURCE_LABELED of the pixels of SOURCE_SAMPLE label maps spread
    over the set are labeled. Reads those maps; writes nothing."""
    head = f"dataset {source!r} cannot be the source of {name}: "
    if not records:
        raise ValueError(head + "it has no records")
    no_label = [r.get("file_name", "?") for r in records if not r.get("sem_seg_file_name")]
    if no_label:
        raise ValueError(
            head + f"{len(no_label)} of its {len(records)} records have no dense "
            f"sem_seg_file_name (a semantic-segmentation label map per image; a detection or "
            f"instance set has none), e.g. {no_label[:3]}"
        )
    if allow_sparse:
        return
    step = max(1, len(records) // SOURCE_SAMPLE)
    sample = records[::step][:SOURCE_SAMPLE]
    labeled = total = 0
    for r in sample:
        lab = read_label(r["sem_seg_file_name"])
        labeled += int((lab != ignore_label).sum())
        total += lab.size
    share = labeled / max(total, 1)
    if share < MIN_SOURCE_LABELED:
        raise ValueError(
            head + f"it is not dense: {100 * share:.1f} % of the pixels of {len(sample)} of its "
            f"label maps are labeled (e.g. {sample[0]['sem_seg_file_name']}). Scribbles are "
            f"simulated from dense labels: a source needs at least "
            f"{100 * MIN_SOURCE_LABELED:.0f} % of its pixels labeled (not {ignore_label}); "
            f"simulated from scribbles, they keep a few of them. Train on {source!r} itself, "
            f"or {_SPARSE_OPT_IN}."
        )


def load_simulated_scribbles(
    source: str,
    style: str,
    seed: int = 0,
    root: Optional[str] = None,
    width: int = 3,
    allow_sparse: bool = False,
    scale: Scale = 1.0,
    workers: int = 0,
) -> List[Dict]:
    """The records of `source` with ``sem_seg_file_name`` at simulated scribble maps
    (generated on first use in `workers` processes, 0: one per core; resumed after a stop;
    reused while the manifest matches). A `style` with a ``_len<p>`` / ``_drop<p>`` suffix:
    the base style's set (made first), shortened / dropped. The source is checked first
    (``check_source``; `allow_sparse` skips its density rule)."""
    scale = normalize_scale(scale)
    base, variant = split_style(style)
    if variant is not None:
        return _load_variant(source, style, base, variant, seed, root, width, allow_sparse,
                             scale, workers)  # fmt: skip
    records = [dict(r) for r in DatasetCatalog.get(source)]
    ignore_label = int(MetadataCatalog.get(source).get("ignore_label", IGNORE_LABEL))
    check_source(source, f"{source}{SIM_INFIX}{style}", records, ignore_label, allow_sparse)
    folder = simulation_dir(source, style, seed, root, scale)
    names = [_out_name(i, r) for i, r in enumerate(records)]
    expected = {"format": MANIFEST_FORMAT, "source": source, "style": style, "seed": int(seed),
                "scale": scale, "generator_version": GENERATOR_VERSION[style],
                "width": int(width), "ignore_label": ignore_label,
                "num_records": len(records)}  # fmt: skip
    _ensure(folder, expected, names, lambda out: _simulate_into(
        out, records, names, expected, workers), resumable=True)  # fmt: skip
    for rec, name in zip(records, names):
        rec["sem_seg_file_name"] = os.path.join(folder, name)
    return records


def _ensure(folder, expected, names, fill, resumable: bool = False):
    """Generate the set in `folder` unless its manifest matches `expected` and every file of
    `names` is there (in place and resumable, or in a temporary folder renamed into place);
    one generator at a time (the processes of a distributed launch): the others wait and then
    find the set complete."""
    if _usable(folder, expected, names):
        return
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with file_lock(os.path.join(os.path.dirname(folder), f".{os.path.basename(folder)}")):
        if not _usable(folder, expected, names):
            old = _read_manifest(folder)
            why = "no manifest" if old is None else "manifest differs"
            logger.info(f"{folder}: {why}; writing {len(names)} scribble maps")
            (_generate_resumable if resumable else _generate)(folder, expected, names, fill)


def _load_variant(source, style, base, variant, seed, root, width, allow_sparse, scale,
                  workers) -> List[Dict]:  # fmt: skip
    """The base style's records with their maps shortened / dropped (Fig. 3), cached like a
    simulated set; the manifest adds the base set's manifest entries and the transform."""
    records = load_simulated_scribbles(source, base, seed, root, width, allow_sparse, scale,
                                       workers)  # fmt: skip
    base_folder = simulation_dir(source, base, seed, root, scale)
    ignore_label = int(MetadataCatalog.get(source).get("ignore_label", IGNORE_LABEL))
    if ignore_label != IGNORE_LABEL:
        raise ValueError(f"{source}{SIM_INFIX}{style}: shortening / dropping needs ignore label "
                         f"{IGNORE_LABEL}, {source} has {ignore_label}")  # fmt: skip
    names = [os.path.basename(r["sem_seg_file_name"]) for r in records]
    expected = {k: v for k, v in _read_manifest(base_folder).items() if k not in _INFO_KEYS}
    expected.update(style=style, base_style=base, transform=variant[0], fraction=variant[1])
    kw = {variant[0]: variant[1]}
    folder = simulation_dir(source, style, seed, root, scale)
    _ensure(folder, expected, names, lambda tmp: {
        "transform_stats": transform_label_root(base_folder, tmp, seed=int(seed), **kw)})
    for rec, name in zip(records, names):
        rec["sem_seg_file_name"] = os.path.join(folder, name)
    return records


def register_simulated_scribbles(
    source_name: str,
    *,
    style: str = "s4",
    seed: int = 0,
    root: Optional[str] = None,
    width: int = 3,
    allow_sparse_source: bool = False,
    scale: Scale = 1.0,
    workers: int = 0,
) -> str:
    """Register ``<source_name>_sim_<style>`` (see the module docstring) and return the name.
    Registering the same name again with other arguments (e.g. another seed) replaces it.
    `style` may carry a Fig. 3 suffix (``"s4_len30"``, ``"s4_drop50"``; module docstring).
    A source that is a scribble set (its metadata names a ``scribble_source`` or says
    ``simulated_from``) is refused here, a sparse one when loaded (``check_source``), unless
    `allow_sparse_source`. `scale`: 1.0, a factor, or "auto" (the styles' sizes scale with each
    image); `workers`: processes that simulate the set when it is first loaded (0: one per
    core)."""
    _check_style(style, f"{source_name}{SIM_INFIX}{style}")
    scale = normalize_scale(scale)
    if source_name not in DatasetCatalog.list():
        raise KeyError(
            f"source dataset {source_name!r} of {source_name}{SIM_INFIX}{style} is not "
            "registered in Detectron2's DatasetCatalog (a dense semantic segmentation set: "
            "e.g. ade20k_sem_seg_train, cityscapes_fine_sem_seg_train, voc_2012_train_aug_full, "
            "or a DATASETS.DFR.CUSTOM / register_scribble_dataset name)"
        )
    name = f"{source_name}{SIM_INFIX}{style}"
    scribbles = [k for k in _SCRIBBLE_META if MetadataCatalog.get(source_name).get(k, None)]
    if scribbles and not allow_sparse_source:
        what = ", ".join(f"{k}={MetadataCatalog.get(source_name).get(k)!r}" for k in scribbles)
        raise ValueError(
            f"dataset {source_name!r} cannot be the source of {name}: it is a scribble set "
            f"({what}), not a dense one. Scribbles are simulated from dense labels (at least "
            f"{100 * MIN_SOURCE_LABELED:.0f} % of the pixels labeled); train on "
            f"{source_name!r} itself, or {_SPARSE_OPT_IN}."
        )
    spec = (source_name, style, int(seed), root, int(width), bool(allow_sparse_source), scale,
            int(workers))  # fmt: skip
    if name in DatasetCatalog.list():
        if _SPECS.get(name) == spec:
            return name
        if name not in _SPECS:
            raise ValueError(f"dataset {name!r} is already registered by someone else")
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: load_simulated_scribbles(
        source_name, style, seed, root, width, allow_sparse_source, scale, workers))
    drop = ("name", "gt_dir")  # the source's dense label folder (Cityscapes) is not ours
    meta = {k: v for k, v in MetadataCatalog.get(source_name).as_dict().items() if k not in drop}
    meta.update(sem_seg_root=simulation_dir(source_name, style, seed, root, scale),
                simulated_from=source_name, scribble_style=style, scribble_seed=int(seed),
                scribble_scale=scale)  # fmt: skip
    MetadataCatalog.get(name).set(**meta)
    _SPECS[name] = spec
    return name


def register_simulated_from_cfg(cfg) -> List[str]:
    """Register every ``<source>_sim_<style>`` of cfg.DATASETS.TRAIN / TEST with the seed
    DATASETS.DFR.SIMULATION_SEED, the scale DATASETS.DFR.SIMULATION_SCALE and the worker
    processes DATASETS.DFR.SIMULATION_WORKERS (default root); returns the names registered or
    re-registered (another seed, scale, ...). A name with ``_sim_`` whose style or source is
    unknown raises, naming the config key; a dataset of such a name registered otherwise is
    left alone."""
    dfr = cfg.DATASETS.get("DFR", {})
    seed = int(dfr.get("SIMULATION_SEED", 0))
    workers = int(dfr.get("SIMULATION_WORKERS", 0))
    try:
        scale = normalize_scale(dfr.get("SIMULATION_SCALE", "1.0"))
    except ValueError as e:
        raise ValueError(f"DATASETS.DFR.SIMULATION_SCALE: {e}") from None
    sparse = bool(dfr.get("SIMULATE_FROM_SPARSE", False))
    out = []
    for key in ("TRAIN", "TEST"):
        for name in cfg.DATASETS[key]:
            parsed = parse_simulated_name(name)
            if parsed is None or (name in DatasetCatalog.list() and name not in _SPECS):
                continue
            before = _SPECS.get(name)
            try:
                register_simulated_scribbles(parsed[0], style=parsed[1], seed=seed,
                                             allow_sparse_source=sparse, scale=scale,
                                             workers=workers)  # fmt: skip
            except (KeyError, ValueError) as e:
                msg = e.args[0] if e.args else str(e)
                raise ValueError(f"DATASETS.{key}: {name!r}: {msg}") from None
            if _SPECS.get(name) != before:
                out.append(name)
    return out
