"""Your own datasets from their `dataset.json` (written by datasets/prepare_custom_scribbles.py)
and from the config key DATASETS.DFR.CUSTOM (`register_datasets_from_cfg` in register.py)."""
import json
import os
from typing import List

from ..classes import IGNORE_LABEL
from ..paths import get_datasets_root, require_path
from .custom import DATASET_JSON, PREPARE_CUSTOM, PathLike, register_scribble_dataset

__all__ = [
    "register_custom_from_cfg",
    "register_scribble_dataset_from_json",
    "resolve_description_path",
]


def register_scribble_dataset_from_json(path: PathLike, replace: bool = False) -> List[str]:
    """Register the dataset described by a ``dataset.json`` (or a folder holding one), as
    written by datasets/prepare_custom_scribbles.py. Relative paths inside it are relative to
    its folder. Returns the registered names."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, DATASET_JSON)
    require_path(path, "dataset description", PREPARE_CUSTOM)
    with open(path, encoding="utf-8") as f:
        try:
            desc = json.load(f)
        except ValueError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    base = os.path.dirname(os.path.abspath(path))
    known = {"name", "image_root", "scribble_root", "classes", "colors", "split_file", "gt_root",
             "val_split_file", "ignore_label", "background"}  # fmt: skip
    unknown = sorted(set(desc) - known)
    if unknown or not {"name", "image_root", "scribble_root", "classes"} <= set(desc):
        raise ValueError(
            f"{path}: expected keys name, image_root, scribble_root, classes (+ optional "
            f"{', '.join(sorted(known - {'name', 'image_root', 'scribble_root', 'classes'}))})"
            f"; unknown: {unknown}"
        )

    def rel(key):
        v = desc.get(key)
        return None if v is None else os.path.normpath(os.path.join(base, v))

    classes = desc["classes"]
    if isinstance(classes, str):
        classes = rel("classes")
    kw = {k: rel(k) for k in ("split_file", "gt_root", "val_split_file")}
    return register_scribble_dataset(
        desc["name"],
        rel("image_root"),
        rel("scribble_root"),
        classes,
        colors=desc.get("colors"),
        ignore_label=desc.get("ignore_label", IGNORE_LABEL),
        background=desc.get("background", "background"),
        replace=replace,
        **kw,
    )


def resolve_description_path(entry: str) -> str:
    """A DATASETS.DFR.CUSTOM entry -> the dataset.json it names: absolute paths as given,
    relative ones under $DETECTRON2_DATASETS (like every dataset path); a folder means the
    dataset.json inside it."""
    path = os.path.expanduser(entry)
    if not os.path.isabs(path):
        path = os.path.join(get_datasets_root(), path)
    if not path.endswith(".json"):
        path = os.path.join(path, DATASET_JSON)
    return path


def register_custom_from_cfg(cfg) -> List[str]:
    """Register every dataset of cfg.DATASETS.DFR.CUSTOM (idempotent); returns the names."""
    out = []
    for entry in cfg.DATASETS.DFR.CUSTOM:
        path = resolve_description_path(entry)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"DATASETS.DFR.CUSTOM entry {entry!r}: {path} not found "
                f"(relative entries are looked up under DETECTRON2_DATASETS="
                f"{get_datasets_root()!r}).\n  Create it with: {PREPARE_CUSTOM}"
            )
        out += register_scribble_dataset_from_json(path)
    return out
