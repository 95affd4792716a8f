"""Your own scribble dataset, registered the way the built-in sets are (lazy, checked).

    register_scribble_dataset("my_scribbles", "photos/", "my_scribbles/scribbles",
                              ["background", "animal", "person", "vehicle"],
                              gt_root="masks/")   # -> my_scribbles_train, my_scribbles_val

- ``<name>_train``: the images with a scribble label PNG in ``scribble_root`` (or the ids listed
  in ``split_file``); ``sem_seg_file_name`` = the scribble PNG (class ids, ``ignore_label``
  elsewhere).
- ``<name>_val`` (only when ``gt_root`` is given): the images with a dense label PNG in
  ``gt_root`` (or the ids of ``val_split_file``), for SemSegEvaluator.

Label PNGs are single-channel (mode L or P: the value / palette index is the class id) and
named ``<id>.png`` where ``<id>`` is the image's file name without extension; images are
found under ``image_root`` (searched recursively) with any common extension.

Registration reads nothing but a class-list file (when ``classes`` is a path); folders and
files are read when a name is first loaded. A missing folder or split file, an image without
its label (or a label without its image) and a label whose size differs from its image's
raise FileNotFoundError / ValueError naming the files, as the built-in sets do.

``background`` is the background class of the feature-distance loss Lfd (A+bg vs A+fg pairs,
Eq. 9-10; MODEL.DFR.BACKGROUND_ID): a class name or id, or None when the dataset has no
background class (then every same-label pair is A+fg). Stored as metadata ``background_id``
(-1 for None); set MODEL.DFR.BACKGROUND_ID to it.

``dataset.json`` (written by datasets/prepare_custom_scribbles.py) holds these arguments, paths
relative to its folder; ``register_scribble_dataset_from_json`` reads it, and configs list
such files in DATASETS.DFR.CUSTOM (registered by ``dfr.data.register_datasets_from_cfg``).
"""

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..classes import IGNORE_LABEL, voc_colors
from ..images import IMAGE_EXTENSIONS, image_hw
from ..paths import require_path

__all__ = [
    "DATASET_JSON",
    "PREPARE_CUSTOM",
    "read_class_list",
    "resolve_background",
    "load_scribble_records",
    "register_scribble_dataset",
]

logger = logging.getLogger(__name__)

DATASET_JSON = "dataset.json"
PREPARE_CUSTOM = (
    "python datasets/prepare_custom_scribbles.py  (README: 'Train on your own scribbles')"
)
_SHOWN = 5  # names listed in an error message

PathLike = Union[str, os.PathLike]


def read_class_list(path: PathLike) -> List[str]:
    """A class-list file: one class name per line, line k = class id k (blank lines and lines
    starting with '#' skipped)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class list not found: {path}")
    with open(path, encoding="utf-8") as f:
        names = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    if not names:
        raise ValueError(f"class list {path} is empty")
    return names


def _class_names(classes: Union[PathLike, Sequence[str]]) -> List[str]:
    if isinstance(classes, (str, os.PathLike)):
        names = read_class_list(classes)
    else:
        names = [str(c) for c in classes]
    if not names:
        raise ValueError("classes is empty")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"duplicate class names: {dup}")
    return names


def resolve_background(background: Union[str, int, None], classes: Sequence[str]) -> int:
    """``background`` (class name, class id or None) -> class id, -1 for None (no background
    class). A name is matched case-insensitively; unknown names / ids raise ValueError."""
    if background is None:
        return -1
    if isinstance(background, bool):
        raise ValueError(f"background must be a class name, id or None, got {background!r}")
    if isinstance(background, int):
        if not 0 <= background < len(classes):
            raise ValueError(f"background id {background} not in 0..{len(classes) - 1}")
        return background
    low = [c.lower() for c in classes]
    if str(background).lower() in low:
        return low.index(str(background).lower())
    raise ValueError(
        f"background class {background!r} is not one of the classes {list(classes)}; pass "
        "background=<name or id> of your background class, or background=None if the "
        "dataset has none"
    )


def _index_images(image_root: str) -> Tuple[Dict[str, str], Dict[str, List[str]]]:
    """{file name without extension: path} of every image under image_root (recursive) and
    the names shared by several files ({name: paths})."""
    found: Dict[str, List[str]] = {}
    for dirpath, dirnames, filenames in os.walk(image_root):
        dirnames.sort()
        for fn in sorted(filenames):
            stem, ext = os.path.splitext(fn)
            if ext.lower() in IMAGE_EXTENSIONS and not fn.startswith("."):
                found.setdefault(stem, []).append(os.path.join(dirpath, fn))
    unique = {k: v[0] for k, v in found.items() if len(v) == 1}
    return unique, {k: v for k, v in found.items() if len(v) > 1}


def _read_ids(split_file: str) -> List[str]:
    with open(split_file, encoding="utf-8") as f:
        return [os.path.splitext(ln.strip())[0] for ln in f if ln.strip()]  # names may hold spaces


def _listing(items: List[str]) -> str:
    more = f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return "\n    " + "\n    ".join(items[:_SHOWN]) + more


def load_scribble_records(
    image_root: str,
    label_root: str,
    split_file: Optional[str] = None,
    prepare: str = PREPARE_CUSTOM,
    what: str = "label",
) -> List[Dict]:
    """Records {file_name, sem_seg_file_name, height, width, image_id}: the ids of
    ``split_file`` (one per line), else every ``<id>.png`` in ``label_root``. Every problem
    (image or label missing, image name shared by two files, size mismatch) is collected and
    raised at once, naming the files."""
    require_path(image_root, "image folder", prepare)
    require_path(label_root, f"{what} folder", prepare)
    if split_file is not None:
        require_path(split_file, "split file", prepare)
        ids = _read_ids(split_file)
    else:
        ids = sorted(
            os.path.splitext(fn)[0]
            for fn in os.listdir(label_root)
            if fn.lower().endswith(".png") and not fn.startswith(".")
        )
    if not ids:
        src = split_file or f"{label_root} (no .png {what}s)"
        raise FileNotFoundError(f"no images listed in {src}\n  Create them with: {prepare}")
    images, shared = _index_images(image_root)
    records, missing, ambiguous, mismatched = [], [], [], []
    for image_id in ids:
        lab = os.path.join(label_root, image_id + ".png")
        img = images.get(image_id)
        if image_id in shared:
            ambiguous.append(f"{image_id}: {', '.join(shared[image_id])}")
            continue
        if img is None:
            missing.append(f"image {image_id}.* in {image_root} (for {lab})")
            continue
        if not os.path.isfile(lab):
            missing.append(f"{what} {lab} (for image {img})")
            continue
        h, w = image_hw(img)
        lh, lw = image_hw(lab)
        if (lh, lw) != (h, w):
            mismatched.append(f"{lab}: {lw}x{lh}, image {img}: {w}x{h}")
            continue
        records.append(
            {"file_name": img, "sem_seg_file_name": lab, "height": h, "width": w,
             "image_id": image_id}
        )  # fmt: skip
    src = f"listed in {split_file}" if split_file else f"of {label_root}"
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(ids)} images {src} miss a file:{_listing(missing)}\n"
            f"  Create them with: {prepare}"
        )
    if ambiguous:
        raise ValueError(
            f"{len(ambiguous)} image names {src} match several files in {image_root} "
            f"(ids are file names without extension):{_listing(ambiguous)}"
        )
    if mismatched:
        raise ValueError(
            f"{len(mismatched)} {what}s {src} differ in size from their image:"
            f"{_listing(mismatched)}"
        )
    return records


_SPECS: Dict[str, tuple] = {}  # registered name -> the arguments it was registered with


def register_scribble_dataset(
    name: str,
    image_root: PathLike,
    scribble_root: PathLike,
    classes: Union[PathLike, Sequence[str]],
    *,
    colors: Optional[Sequence[Sequence[int]]] = None,
    split_file: Optional[PathLike] = None,
    gt_root: Optional[PathLike] = None,
    val_split_file: Optional[PathLike] = None,
    ignore_label: int = IGNORE_LABEL,
    background: Union[str, int, None] = "background",
    replace: bool = False,
) -> List[str]:
    """Register ``<name>_train`` (scribbles) and, with ``gt_root``, ``<name>_val`` (dense
    labels); returns the registered names. See the module docstring for the layout.

    Args:
        name: dataset name prefix.
        image_root: folder of the images (searched recursively; ids are file names without
            extension).
        scribble_root: folder of the scribble label PNGs ``<id>.png``.
        classes: class names (index = id) or a class-list file (one name per line).
        colors: RGB per class for visualisation (default: the VOC palette).
        split_file: ids of the training images (default: every PNG in scribble_root).
        gt_root: folder of dense label PNGs ``<id>.png``: registers ``<name>_val``.
        val_split_file: ids of the validation images (default: every PNG in gt_root).
        ignore_label: value of unlabeled pixels (must equal MODEL.SEM_SEG_HEAD.IGNORE_VALUE).
        background: background class (name or id) for Lfd's A+bg / A+fg, None if none.
        replace: re-register names that exist (default: an error unless the arguments are the
            same, in which case nothing happens).
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    names = _class_names(classes)
    if colors is None:
        colors = voc_colors(len(names))
    colors = [[int(v) for v in c] for c in colors]
    if len(colors) != len(names) or any(len(c) != 3 for c in colors):
        raise ValueError(f"colors: expected {len(names)} RGB triples, got {colors}")
    if not 0 <= int(ignore_label) <= 255 or int(ignore_label) < len(names):
        raise ValueError(f"ignore_label {ignore_label} must be in {len(names)}..255")
    bg = resolve_background(background, names)
    fs = lambda p: None if p is None else os.fspath(p)  # noqa: E731
    image_root, scribble_root, gt_root = fs(image_root), fs(scribble_root), fs(gt_root)
    split_file, val_split_file = fs(split_file), fs(val_split_file)
    if val_split_file is not None and gt_root is None:
        raise ValueError("val_split_file needs gt_root (the dense labels of the val images)")

    splits = {f"{name}_train": (scribble_root, split_file, "scribble label")}
    if gt_root is not None:
        splits[f"{name}_val"] = (gt_root, val_split_file, "ground-truth label")
    for ds_name, (label_root, split, what) in splits.items():
        spec = (image_root, label_root, split, tuple(names), str(colors), int(ignore_label), bg)
        if ds_name in DatasetCatalog.list():
            if _SPECS.get(ds_name) == spec:
                continue  # the same registration again (a second register_datasets_from_cfg)
            if not replace:
                raise ValueError(
                    f"dataset {ds_name!r} is already registered (with other arguments); pick "
                    "another name or pass replace=True"
                )
            DatasetCatalog.remove(ds_name)
            MetadataCatalog.remove(ds_name)

        def _load(i=image_root, lr=label_root, s=split, w=what):
            return load_scribble_records(i, lr, s, PREPARE_CUSTOM, w)

        DatasetCatalog.register(ds_name, _load)
        MetadataCatalog.get(ds_name).set(
            stuff_classes=list(names),
            stuff_colors=colors,
            ignore_label=int(ignore_label),
            evaluator_type="sem_seg",
            background_id=bg,
            image_root=image_root,
            sem_seg_root=label_root,
        )
        _SPECS[ds_name] = spec
    return list(splits)
