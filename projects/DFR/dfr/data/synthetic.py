"""The embedded synthetic scribble benchmark: generated deterministically on first use under
`$DETECTRON2_DATASETS/synthetic_scribble/`, so training and evaluation run without downloads.

Design (a fair test of DFR's claim that a learned feature kernel helps where colour misleads):
object classes are defined by SHAPE and TEXTURE, never by colour. Every object is split by a random line into two parts of unrelated
random colours (two-tone), so strong colour edges run INSIDE objects and the RGB kernel of a
CRF-style loss wrongly separates the parts; the background is a smooth random colour field
with clutter (thin lines, specks) whose colours are also random, so object/background colour
contrast is sometimes weak. A learned feature kernel can group the two parts by shape and
texture; the RGB kernel cannot. Objects are large (radius 18-32 % of the short side) and there
are 3 object classes + background, so a tiny Swin learns the task at 128 px in minutes on CPU.

Classes: 0 background, 1 disc (ellipse, polka dots), 2 bar (rotated rectangle, stripes),
3 triangle (checkerboard). Scribbles: skeletons of every region (dfr.data.scribbles.tools.
skeleton_scribbles), 3 px wide, shortened together to ~3 % of the pixels (ScribbleSup's rate).

Tree: <root>/<dirname>/{train,val}/{images,labels,scribbles}/<id>.png + meta.json.
Generation runs once, under a file lock, into a temporary folder renamed atomically, so
several processes of a distributed launch do not race.
"""

import json
import logging
import os
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from iopath.common.file_io import file_lock

from .classes import IGNORE_LABEL, voc_colors
from .images import image_hw
from .paths import fresh_tempdir, get_datasets_root
from .scribbles.tools import skeleton_scribbles

__all__ = [
    "SYNTHETIC_CLASSES",
    "SyntheticSpec",
    "DEFAULT_SPEC",
    "TINY_SPEC",
    "render_sample",
    "ensure_synthetic",
    "load_synthetic",
    "register_synthetic",
]

logger = logging.getLogger(__name__)

SYNTHETIC_CLASSES = ["background", "disc", "bar", "triangle"]
_VERSION = 2  # bump when the generator's output changes: caches regenerate


class SyntheticSpec(dict):
    """Generation parameters (a dict, stored in meta.json; a change regenerates nothing
    silently: a mismatch with meta.json is an error naming the folder)."""

    def __init__(
        self,
        dirname: str = "synthetic_scribble",
        num_train: int = 400,
        num_val: int = 100,
        min_size: int = 128,
        max_size: int = 256,
        seed: int = 0,
        scribble_fraction: float = 0.03,
        scribble_width: int = 3,
    ):
        super().__init__(
            dirname=dirname,
            num_train=num_train,
            num_val=num_val,
            min_size=min_size,
            max_size=max_size,
            seed=seed,
            scribble_fraction=scribble_fraction,
            scribble_width=scribble_width,
            version=_VERSION,
        )


DEFAULT_SPEC = SyntheticSpec()
# For smoke tests and quick schedules: a few small images.
TINY_SPEC = SyntheticSpec(dirname="synthetic_scribble_tiny", num_train=16, num_val=8,
                          min_size=96, max_size=128)  # fmt: skip


def _random_colour(rng) -> np.ndarray:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(60, 256)]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _two_colours(rng) -> Tuple[np.ndarray, np.ndarray]:
    """Two random colours whose hues differ by >= 45 degrees: a strong edge between parts."""
    a = _random_colour(rng)
    for _ in range(20):
        b = _random_colour(rng)
        ha = cv2.cvtColor(a[None, None].astype(np.uint8), cv2.COLOR_RGB2HSV)[0, 0, 0]
        hb = cv2.cvtColor(b[None, None].astype(np.uint8), cv2.COLOR_RGB2HSV)[0, 0, 0]
        dh = abs(int(ha) - int(hb))
        if min(dh, 180 - dh) >= 23 and np.abs(a - b).sum() > 120:
            break
    return a, b


def _background(rng, h, w) -> np.ndarray:
    g = int(rng.integers(3, 7))
    field = rng.uniform(0, 255, size=(g, g, 3)).astype(np.float32)
    img = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    img = 0.5 * img + 0.5 * _random_colour(rng)
    for _ in range(int(rng.integers(6, 16))):  # clutter: thin random lines
        p = rng.integers(0, [w, h], size=2)
        q = p + rng.integers(-40, 41, size=2)
        cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q),
                 _random_colour(rng).tolist(), int(rng.integers(1, 3)))  # fmt: skip
    for _ in range(int(rng.integers(4, 12))):  # clutter: small specks
        p = rng.integers(0, [w, h], size=2)
        cv2.circle(img, (int(p[0]), int(p[1])), int(rng.integers(2, 6)),
                   _random_colour(rng).tolist(), -1)  # fmt: skip
    return img


def _shape_mask(cls: int, rng, h, w, cx, cy, s) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    ang = float(rng.uniform(0, 180))
    if cls == 1:  # disc
        axes = (int(s), int(s * rng.uniform(0.65, 1.0)))
        cv2.ellipse(m, (int(cx), int(cy)), axes, ang, 0, 360, 1, -1)
    elif cls == 2:  # bar: an elongated rotated rectangle
        box = ((float(cx), float(cy)), (2 * s, 2 * s * rng.uniform(0.35, 0.55)), ang)
        cv2.fillPoly(m, [np.round(cv2.boxPoints(box)).astype(np.int32)], 1)
    else:  # triangle
        t = np.deg2rad(ang) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        r = s * rng.uniform(1.0, 1.2, size=3)
        pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m.astype(bool)


def _texture(cls: int, rng, h, w) -> np.ndarray:
    """Multiplicative texture in [1 - a, 1 + a] that identifies the class."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if cls == 1:  # polka dots on a square grid
        period = rng.uniform(6, 9)
        dy, dx = (yy % period) - period / 2, (xx % period) - period / 2
        return 1 - 0.35 * (dy * dy + dx * dx < (0.22 * period) ** 2)
    if cls == 2:  # stripes
        t = rng.uniform(0, np.pi)
        period = rng.uniform(6, 10)
        return 1 + 0.3 * np.sign(np.sin(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t)) / period))
    cell = int(rng.integers(4, 7))  # checkerboard
    return 1 + 0.3 * (((xx // cell + yy // cell) % 2) * 2 - 1)


def render_sample(rng: np.random.Generator, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """One image (H, W, 3) uint8 RGB and its dense label map (H, W) uint8."""
    img = _background(rng, h, w)
    label = np.zeros((h, w), np.uint8)
    short = min(h, w)
    owner = np.full((h, w), -1, np.int32)  # which object a pixel shows (occlusion check)
    areas = []
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(1, len(SYNTHETIC_CLASSES)))
        for _try in range(10):  # a new object may hide at most half of any earlier one
            s = rng.uniform(0.18, 0.32) * short
            cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
            mask = _shape_mask(cls, rng, h, w, cx, cy, s)
            left = np.bincount(owner[~mask].ravel() + 1, minlength=len(areas) + 1)[1:]
            if all(left[j] >= 0.5 * a for j, a in enumerate(areas)):
                break
        else:
            continue
        # Two-tone: a random line through the centre splits the object into two colours.
        t = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        side = ((xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)) > rng.uniform(-0.3, 0.3) * s
        ca, cb = _two_colours(rng)
        colour = np.where(side[..., None], ca, cb) * _texture(cls, rng, h, w)[..., None]
        img[mask] = colour[mask]
        label[mask] = cls
        owner[mask] = len(areas)
        areas.append(int(mask.sum()))
    img += 4 * rng.standard_normal(size=img.shape, dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), label


def _sizes(rng, spec) -> Tuple[int, int]:
    h, w = rng.integers(spec["min_size"], spec["max_size"] + 1, size=2)
    return int(h), int(w)


def _write_splits(dst: str, spec: SyntheticSpec) -> Dict:
    """Render the train / val images, labels and scribbles of `spec` into `dst`; returns the
    per-split counts and labeled fractions."""
    from PIL import Image

    stats = {}
    for split_idx, (split, n) in enumerate(
        (("train", spec["num_train"]), ("val", spec["num_val"]))
    ):
        for sub in ("images", "labels", "scribbles"):
            os.makedirs(os.path.join(dst, split, sub), exist_ok=True)
        labeled = total = 0
        for i in range(n):
            rng = np.random.default_rng([spec["seed"], split_idx, i])
            h, w = _sizes(rng, spec)
            img, label = render_sample(rng, h, w)
            scr = skeleton_scribbles(
                label, rng, width=spec["scribble_width"], target_fraction=spec["scribble_fraction"]
            )
            labeled += int((scr != IGNORE_LABEL).sum())
            total += scr.size
            name = f"{split}_{i:05d}.png"
            for sub, arr in (("images", img), ("labels", label), ("scribbles", scr)):
                Image.fromarray(arr).save(os.path.join(dst, split, sub, name), compress_level=1)
        stats[split] = {"images": n, "scribble_labeled_fraction": labeled / max(total, 1)}
    return stats


def _stale(meta_path: str, spec: SyntheticSpec) -> bool:
    """True when meta.json exists but records an older generator version."""
    if not os.path.isfile(meta_path):
        return False
    with open(meta_path) as f:
        return json.load(f)["spec"].get("version") != spec["version"]


def ensure_synthetic(root: Optional[str] = None, spec: SyntheticSpec = DEFAULT_SPEC) -> str:
    """Generate the benchmark under `root` (default $DETECTRON2_DATASETS) unless it exists;
    returns its folder. Safe under concurrent calls (file lock + atomic rename)."""
    root = root or get_datasets_root()
    out = os.path.join(root, spec["dirname"])
    meta_path = os.path.join(out, "meta.json")
    os.makedirs(root, exist_ok=True)
    if _stale(meta_path, spec) or not os.path.isfile(meta_path):
        # one generator at a time (the processes of a distributed launch), as detectron2's
        # coco.py does with iopath's file lock
        with file_lock(os.path.join(root, f".{spec['dirname']}")):
            if _stale(meta_path, spec):
                logger.info(f"{out} was made by an older generator version; regenerating")
                shutil.rmtree(out)
            if not os.path.isfile(meta_path):
                if os.path.exists(out):
                    raise RuntimeError(f"{out} exists without meta.json; delete it to regenerate")
                logger.info(f"Generating synthetic scribble benchmark into {out} ...")
                tmp = fresh_tempdir(out)  # removes what a killed run left; umask permissions
                try:
                    stats = _write_splits(tmp, spec)
                    with open(os.path.join(tmp, "meta.json"), "w") as f:
                        json.dump({"spec": dict(spec), "classes": SYNTHETIC_CLASSES,
                                   "stats": stats}, f, indent=1)  # fmt: skip
                    os.rename(tmp, out)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                logger.info(f"Synthetic benchmark written: {stats}")
    with open(meta_path) as f:
        meta = json.load(f)
    if meta["spec"] != dict(spec):
        raise RuntimeError(
            f"{out} was generated with {meta['spec']}, but {dict(spec)} is requested; "
            f"delete {out} to regenerate"
        )
    return out


def load_synthetic(split: str, labels: str, root=None, spec=DEFAULT_SPEC) -> List[Dict]:
    """Dataset dicts of `split` ("train" | "val") with `labels` ("scribbles" | "labels")."""
    out = ensure_synthetic(root, spec)
    n = spec["num_train"] if split == "train" else spec["num_val"]
    records = []
    for i in range(n):
        name = f"{split}_{i:05d}.png"
        img = os.path.join(out, split, "images", name)
        h, w = image_hw(img)
        records.append({
            "file_name": img,
            "sem_seg_file_name": os.path.join(out, split, labels, name),
            "height": h, "width": w, "image_id": f"{split}_{i:05d}",
        })  # fmt: skip
    return records


def register_synthetic(
    prefix: str = "synthetic",
    spec: SyntheticSpec = DEFAULT_SPEC,
    root: Optional[str] = None,
    names: Sequence[str] = ("scribble_train", "full_train", "scribble_val"),
):
    """Register {prefix}_scribble_train (scribbles), {prefix}_full_train (same images, dense
    labels: the fully supervised upper bound) and {prefix}_scribble_val (dense GT). Lazy: the
    data are generated when a name is first loaded. `root=None`: $DETECTRON2_DATASETS then."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    what = {"scribble_train": ("train", "scribbles"), "full_train": ("train", "labels"),
            "scribble_val": ("val", "labels")}  # fmt: skip
    for key in names:
        split, labels = what[key]
        name = f"{prefix}_{key}"
        DatasetCatalog.register(
            name, lambda s=split, l=labels: load_synthetic(s, l, root=root, spec=spec)
        )
        MetadataCatalog.get(name).set(
            stuff_classes=list(SYNTHETIC_CLASSES),
            stuff_colors=voc_colors(len(SYNTHETIC_CLASSES)),
            ignore_label=IGNORE_LABEL,
            evaluator_type="sem_seg",
            background_id=0,
        )
