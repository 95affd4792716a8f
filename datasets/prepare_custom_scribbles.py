#!/usr/bin/env python
"""Import scribbles drawn in LabelMe or CVAT as a DFR dataset (README: "Train on your own
scribbles").

Reads, for the images of --images (ids = file names without extension):

    --labelme  LabelMe JSON files, or folders of them (searched recursively); shapes
               `line`, `linestrip`, `polygon` (its closed outline) and `point`
    --cvat     "CVAT for images 1.1" XML exports (annotations.xml, or the export .zip);
               shapes `polyline`, `points` and `polygon` (its closed outline)
    --gt       optional dense label PNGs <id>.png (class ids; for the <name>_val split)

and writes under --out (default $DETECTRON2_DATASETS/<name>):

    scribbles/<id>.png       one label PNG per annotated image (palette PNG: index = class id,
                             --ignore-label elsewhere), drawn with the ScribbleSup rule of
                             dfr.data.scribbles.rasterize: polylines 3 px wide, points as
                             5-px dots, later shapes over earlier (CVAT: by z_order)
    classes.txt              the class list (line k = class id k)
    train.txt / val.txt      the ids of the training images / of the --gt images
    dataset.json             the arguments of dfr.data.register_scribble_dataset (relative
                             paths are relative to --out); configs name it in DATASETS.DFR.CUSTOM
    scribble_stats.md/.png   labeled pixels per class and image (as tools/scribble_stats.py)

Coordinates are used as pixel indices, as LabelMe's labelme2voc and the ScribbleSup conversion
do (CVAT's frame puts pixel centres at +0.5: below the 3-px line width). Points may lie
anywhere in [0, width] x [0, height] (both tools' canvas) and are clamped to the last pixel.

Problems are reported by file, shape and image name: labels not in --classes, points outside
the image, unsupported shape types, images without any annotation, annotations of images that
are not in --images, sizes that differ from the image, unreadable files (every image is decoded;
--fast reads headers only), bad --gt maps. With
--on-problem error (default) they are listed, the exit status is 1 and no dataset.json is
written; with --on-problem warn they are listed and left out (the shape, or the image), and
the import goes on. A shape overshooting the image by a few pixels (2 % of the longer side,
at least 2 px) is clamped; one that reaches farther is clipped at the border, or dropped when
more than half of it lies outside.

Example (README; `--example my_data` first writes that folder from tests/fixtures/custom):
    python datasets/prepare_custom_scribbles.py --example my_data
    python datasets/prepare_custom_scribbles.py --name my_scribbles --images my_data/images \
        --labelme my_data/labelme --cvat my_data/cvat/annotations.xml --gt my_data/masks \
        --classes background animal person vehicle --out datasets/my_scribbles
"""

from __future__ import annotations

# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from dfr.cli import HelpFormatter
from dfr.data.classes import voc_colors, voc_palette
from dfr.data.datasets.custom import (
    DATASET_JSON,
    read_class_list,
    resolve_background,
)
from dfr.data.datasets.custom_json import register_scribble_dataset_from_json
from dfr.data.images import IMAGE_EXTENSIONS, image_hw
from dfr.data.labels import LabelMapError, read_label
from dfr_tools.prepare import Problems, default_root, image_stats, tqdm, write_ids, write_report
from dfr.data.scribbles import Scribble, TagMap, UnknownTagError, rasterize

# Tool shape type -> how it is drawn ("polyline": open, "polygon": closed outline, "points":
# one dot per point). Every other type is reported as unsupported.
LABELME_SHAPES = {"line": "polyline", "linestrip": "polyline", "polygon": "polygon",
                  "point": "points"}  # fmt: skip
CVAT_SHAPES = {"polyline": "polyline", "polygon": "polygon", "points": "points"}
CVAT_IGNORED = {"tag", "attribute"}  # image-level tags carry no position


@dataclass
class Shape:
    label: str
    kind: str  # "polyline" | "polygon" | "points"
    points: np.ndarray  # (N, 2) float64 (x, y)
    where: str  # "<file> shape #k" for messages
    z: int = 0


@dataclass
class ImageAnnotation:
    """The shapes one annotation file gives one image."""

    image_id: str
    source: str
    shapes: List[Shape] = field(default_factory=list)
    size: Optional[Tuple[int, int]] = None  # (height, width) declared by the tool
    unsupported: List[str] = field(default_factory=list)  # "<where>: type 'rectangle'"


class AnnotationFormatError(ValueError):
    """A file that is not valid LabelMe JSON / CVAT XML (message names the file)."""


def _stem(name: str) -> str:
    return os.path.splitext(os.path.basename(str(name).replace("\\", "/")))[0]


def _points(raw, where: str) -> np.ndarray:
    try:
        pts = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise AnnotationFormatError(f"{where}: points {str(raw)[:80]!r} are not (x, y) pairs")
    if not np.isfinite(pts).all():
        raise AnnotationFormatError(f"{where}: non-finite coordinates")
    return pts


# ---------------------------------------------------------------------------- readers
def parse_labelme(path: Path) -> ImageAnnotation:
    """One LabelMe JSON -> its image's shapes. The image is `imagePath`'s file name (else the
    JSON's own name); `imageHeight`/`imageWidth` are checked against the image later."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AnnotationFormatError(f"{path}: not a readable LabelMe JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise AnnotationFormatError(f"{path}: no 'shapes' list (not a LabelMe JSON)")
    image_id = _stem(data.get("imagePath") or path)
    size = None
    if data.get("imageHeight") and data.get("imageWidth"):
        size = (int(data["imageHeight"]), int(data["imageWidth"]))
    ann = ImageAnnotation(image_id, str(path), size=size)
    for k, s in enumerate(data["shapes"]):
        where = f"{path} shape #{k}"
        if not isinstance(s, dict) or "label" not in s or "points" not in s:
            raise AnnotationFormatError(f"{where}: expected a dict with 'label' and 'points'")
        stype = s.get("shape_type") or "polygon"  # LabelMe's default when the key is absent
        where = f"{where} ({stype} {s['label']!r})"
        if stype not in LABELME_SHAPES:
            ann.unsupported.append(f"{where}: shape type {stype!r}")
            continue
        ann.shapes.append(Shape(str(s["label"]), LABELME_SHAPES[stype],
                                _points(s["points"], where), where))  # fmt: skip
    return ann


def _cvat_points(text: Optional[str], where: str) -> np.ndarray:
    if not text:
        raise AnnotationFormatError(f"{where}: no 'points' attribute")
    try:
        pairs = [[float(v) for v in p.split(",")] for p in text.strip().split(";") if p.strip()]
    except ValueError:
        raise AnnotationFormatError(f"{where}: points {text[:80]!r} are not 'x,y;x,y;...'")
    return _points(pairs, where)


def parse_cvat(path: Path) -> List[ImageAnnotation]:
    """A "CVAT for images 1.1" XML (or export .zip holding annotations.xml) -> one annotation
    per <image>, shapes in (z_order, file) order."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith("annotations.xml")]
                if not names:
                    raise AnnotationFormatError(f"{path}: no annotations.xml in the zip")
                data = z.read(names[0])
        else:
            data = path.read_bytes()
        root = ET.fromstring(data)
    except (OSError, ET.ParseError) as e:
        raise AnnotationFormatError(f"{path}: not a readable CVAT XML ({e})") from None
    if root.tag != "annotations":
        raise AnnotationFormatError(f"{path}: root <{root.tag}>, expected <annotations> (CVAT)")
    if root.find("track") is not None and root.find("image") is None:
        raise AnnotationFormatError(
            f"{path}: a 'CVAT for video' export (<track>); export 'CVAT for images 1.1'"
        )
    out = []
    for im in root.iter("image"):
        name = im.get("name")
        if not name:
            raise AnnotationFormatError(f"{path}: <image id={im.get('id')!r}> has no name")
        size = None
        if im.get("height") and im.get("width"):
            size = (int(float(im.get("height"))), int(float(im.get("width"))))
        ann = ImageAnnotation(_stem(name), f"{path} image {name!r}", size=size)
        for k, el in enumerate(im):
            where = f"{path} image {name!r} shape #{k} ({el.tag} {el.get('label')!r})"
            if el.tag in CVAT_IGNORED:
                continue
            if el.tag not in CVAT_SHAPES:
                ann.unsupported.append(f"{where}: shape type {el.tag!r}")
                continue
            if not el.get("label"):
                raise AnnotationFormatError(f"{where}: no 'label' attribute")
            pts = _cvat_points(el.get("points"), where)
            z = int(float(el.get("z_order", 0) or 0))
            ann.shapes.append(Shape(el.get("label"), CVAT_SHAPES[el.tag], pts, where, z))
        ann.shapes.sort(key=lambda s: s.z)  # stable: file order within a z level
        out.append(ann)
    return out


def find_files(paths: Sequence[Path], suffix: str) -> List[Path]:
    files = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += sorted(q for q in p.rglob(f"*{suffix}") if not q.name.startswith("."))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"annotation path not found: {p}")
    return files


def index_images(root: Path) -> Tuple[Dict[str, Path], Dict[str, List[Path]]]:
    """{id: path} of the images under root (recursive) and the ids shared by several files."""
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    found: Dict[str, List[Path]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."):
            found.setdefault(p.stem, []).append(p)
    return ({k: v[0] for k, v in found.items() if len(v) == 1},
            {k: v for k, v in found.items() if len(v) > 1})  # fmt: skip


# ---------------------------------------------------------------------------- conversion
CLAMP_MARGIN = 0.02  # overshoots up to this share of the longer image side (>= 2 px) are clamped


def scribbles_of(
    ann: ImageAnnotation, hw: Tuple[int, int], tag_map: TagMap, report
) -> List[Scribble]:
    """Shapes -> Scribble polylines in drawing order; every problem goes to `report(kind,
    msg, fatal_for_shape)`: unknown labels and unsupported types drop the shape; points
    outside [0, w] x [0, h] are reported, and when kept (--on-problem warn) the shape is
    clamped, clipped or dropped (`_fit_into_image`)."""
    h, w = hw
    for msg in ann.unsupported:
        report("unsupported shape", msg + " (supported: LabelMe line, linestrip, polygon, "
               "point; CVAT polyline, points, polygon)")  # fmt: skip
    out = []
    for s in ann.shapes:
        try:
            cid = tag_map(s.label, s.where)
        except UnknownTagError:
            report("unknown label", f"{s.where}: label {s.label!r} is not one of the classes")
            continue
        if len(s.points) == 0:
            report("empty shape", f"{s.where}: no points")
            continue
        pts = s.points
        if s.kind == "polygon" and len(pts) > 2:
            pts = np.vstack([pts, pts[:1]])
        x, y = pts[:, 0], pts[:, 1]
        bad = (x < 0) | (y < 0) | (x > w) | (y > h)
        pieces = [pts[None, i] for i in range(len(pts))] if s.kind == "points" else [pts]
        if bad.any():
            pieces, action = _fit_into_image(pts, s.kind == "points", h, w)
            px, py = pts[np.flatnonzero(bad)[0]]
            report("outside image", f"{s.where}: {int(bad.sum())} point(s) outside the {w}x{h} "
                   f"image {ann.image_id!r}, e.g. ({px:g}, {py:g}): {action}")  # fmt: skip
        out += [Scribble(cid, p, s.label) for p in pieces]
    return out


def _overshoot(pts: np.ndarray, h: int, w: int) -> np.ndarray:
    """Distance of each point outside [0, w] x [0, h] (0 inside)."""
    dx = np.maximum(np.maximum(-pts[:, 0], pts[:, 0] - w), 0)
    dy = np.maximum(np.maximum(-pts[:, 1], pts[:, 1] - h), 0)
    return np.hypot(dx, dy)


def _clip_segment(p, q, h, w):
    """Liang-Barsky: the part of segment p-q inside [0, w] x [0, h], or None."""
    d = q - p
    t0, t1 = 0.0, 1.0
    for num, den in ((p[0], -d[0]), (w - p[0], d[0]), (p[1], -d[1]), (h - p[1], d[1])):
        if den == 0:
            if num < 0:
                return None
            continue
        t = num / den
        if den < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
    return (p + t0 * d, p + t1 * d) if t0 <= t1 else None


def _fit_into_image(pts: np.ndarray, single_points: bool, h: int, w: int):
    """A shape that overshoots the image: small overshoots (every point within
    CLAMP_MARGIN of the image, as a click just past the border) are clamped; otherwise the
    polyline is clipped to the image and dropped when less than half of its length (or, for
    points, none of them) lies inside. Returns (polylines, what was done)."""
    margin = max(2.0, CLAMP_MARGIN * max(h, w))
    far = _overshoot(pts, h, w)
    if far.max() <= margin:
        clamped = np.stack([np.clip(pts[:, 0], 0, w), np.clip(pts[:, 1], 0, h)], 1)
        return ([clamped[None, i] for i in range(len(pts))] if single_points else [clamped],
                f"clamped (within {margin:g} px of the image)")  # fmt: skip
    if single_points or len(pts) == 1:
        keep = [pts[None, i] for i in range(len(pts)) if far[i] == 0]
        return keep, (f"{len(pts) - len(keep)} point(s) dropped" if keep else "shape dropped")
    pieces, inside, total = [], 0.0, 0.0
    for p, q in zip(pts[:-1], pts[1:]):
        total += float(np.hypot(*(q - p)))
        seg = _clip_segment(p, q, h, w)
        if seg is None:
            continue
        inside += float(np.hypot(*(seg[1] - seg[0])))
        if pieces and np.allclose(pieces[-1][-1], seg[0]):
            pieces[-1].append(seg[1])
        else:
            pieces.append([seg[0], seg[1]])
    if total == 0 or inside < 0.5 * total:
        return [], f"shape dropped ({100 * (1 - inside / max(total, 1e-9)):.0f} % of it outside)"
    return [np.asarray(pc) for pc in pieces], "clipped to the image"


def label_palette(colors: Sequence[Sequence[int]]) -> np.ndarray:
    pal = voc_palette(256).copy()
    pal[: len(colors)] = np.asarray(colors, dtype=np.uint8)
    return pal


def write_label_png(path: Path, label: np.ndarray, palette: np.ndarray):
    """An (H, W) id map as a palette PNG (index = class id), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8), mode="P")
    img.putpalette(palette.reshape(-1).tolist())
    tmp = path.with_name(path.name + ".tmp.png")
    img.save(tmp)
    os.replace(tmp, path)


def check_gt(gt_root: Path, images: Dict[str, Path], num_classes: int, ignore: int, report,
             decode: bool = True):  # fmt: skip
    """Dense label PNGs of --gt: single channel, the image's size, values in the classes."""
    ids = []
    allowed = set(range(num_classes)) | {ignore}
    for p in sorted(gt_root.glob("*.png")):
        img = images.get(p.stem)
        if img is None:
            report("ground truth", f"{p}: no image {p.stem}.* in --images")
            continue
        try:
            lab = read_label(p)
        except LabelMapError as e:
            report("ground truth", str(e))
            continue
        try:
            h, w = image_hw(img, decode=decode)
        except ValueError as e:
            report("unreadable image", str(e))
            continue
        if lab.shape != (h, w):
            report("ground truth", f"{p}: size {lab.shape[1]}x{lab.shape[0]}, image {w}x{h}")
            continue
        bad = sorted(set(np.unique(lab).tolist()) - allowed)
        if bad:
            report("ground truth", f"{p}: values {bad} are not class ids 0..{num_classes - 1} "
                   f"or {ignore}")  # fmt: skip
            continue
        ids.append(p.stem)
    if not ids:
        report("ground truth", f"{gt_root}: no usable <id>.png label maps")
    return ids


def _rel(target: Path, base: Path) -> str:
    """Path for dataset.json: relative to its folder when inside it, absolute otherwise."""
    target, base = target.resolve(), base.resolve()
    try:
        return target.relative_to(base).as_posix()
    except ValueError:
        return str(target)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--example", type=Path, metavar="DIR", default=None,
                   help="only write an example folder DIR (images, LabelMe JSON, CVAT XML, "
                   "masks; from tests/fixtures/custom) to try the import on, and exit")
    p.add_argument("--name", required=True, help="dataset name: registers <name>_train/_val")
    p.add_argument("--images", required=True, type=Path, help="folder of the images")
    p.add_argument("--classes", required=True, nargs="+",
                   help="class names in id order, or a class-list file (one name per line)")
    p.add_argument("--labelme", nargs="*", type=Path, default=[],
                   help="LabelMe JSON files or folders")
    p.add_argument("--cvat", nargs="*", type=Path, default=[],
                   help="CVAT for images 1.1 XML files (or export zips)")
    p.add_argument("--gt", type=Path, default=None,
                   help="folder of dense label PNGs <id>.png (registers <name>_val)")
    p.add_argument("--background", default="background",
                   help="background class (name or id) for Lfd; 'none' if there is none")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: $DETECTRON2_DATASETS/<name>)")
    p.add_argument("--on-problem", choices=["error", "warn"], default="error",
                   help="error: list problems, exit 1, no dataset.json; warn: list them, "
                   "leave the shape / image out, go on")
    p.add_argument("--fast", action="store_true",
                   help="read only the image headers (default: decode every image, so a "
                   "truncated file is reported now, not when training reaches it)")
    p.add_argument("--line-width", type=float, default=3.0, help="scribble width in px")
    p.add_argument("--point-radius", type=float, default=1.0, help="radius of point dots")
    p.add_argument("--ignore-label", type=int, default=255, help="value of unlabeled pixels")
    return p.parse_args(argv)  # fmt: skip


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if len(argv) == 2 and argv[0] == "--example":  # writes the README's my_data/, nothing else
        from dfr_tools.custom_example import EXAMPLE_CLASSES, write_example

        ids = write_example(argv[1])
        print(f"wrote {argv[1]}/: images/ (6), masks/ (2), labelme/ ({len(ids[:2])} JSON), "
              f"cvat/annotations.xml ({len(ids[2:])} images); classes: {' '.join(EXAMPLE_CLASSES)}")
        return 0
    args = parse_args(argv)
    if not args.labelme and not args.cvat:
        raise SystemExit("give --labelme and/or --cvat annotations")
    classes = (read_class_list(args.classes[0])
               if len(args.classes) == 1 and os.path.isfile(args.classes[0])
               else list(args.classes))  # fmt: skip
    bg = args.background
    bg = None if str(bg).lower() == "none" else (int(bg) if str(bg).isdigit() else bg)
    try:
        bg_id = resolve_background(bg, classes)
    except ValueError as e:
        raise SystemExit(f"--background: {e}") from None
    out = args.out or default_root() / args.name
    tag_map = TagMap({c: i for i, c in enumerate(classes)}, name=f"--classes of {args.name}")
    problems = Problems()
    strict = args.on_problem == "error"

    def report(kind, msg):
        (problems.error if strict else problems.note)(kind, msg)

    images, shared = index_images(args.images)
    for k, paths in sorted(shared.items()):
        report("ambiguous image", f"{k}: several images {[str(p) for p in paths]}")
    anns: Dict[str, ImageAnnotation] = {}
    sources = [(f, parse_labelme) for f in find_files(args.labelme, ".json")]
    sources += [(f, parse_cvat) for f in find_files(args.cvat, ".xml")]
    for f, parse in sources:
        try:
            parsed = parse(f)
        except AnnotationFormatError as e:
            report("unreadable annotation", str(e))
            continue
        for a in parsed if isinstance(parsed, list) else [parsed]:
            if a.image_id in anns:
                report("duplicate annotation", f"image {a.image_id!r}: {anns[a.image_id].source}"
                       f" and {a.source} (the first is kept)")  # fmt: skip
                continue
            anns[a.image_id] = a

    val_ids = []
    if args.gt is not None:
        if not args.gt.is_dir():
            raise SystemExit(f"--gt folder not found: {args.gt}")
        val_ids = check_gt(args.gt, images, len(classes), args.ignore_label, report,
                           decode=not args.fast)

    palette = label_palette(voc_colors(len(classes)))
    rows, train_ids = {}, []
    for image_id in tqdm(sorted(set(anns) | set(images)), desc="scribbles", unit="img"):
        a = anns.get(image_id)
        if a is None:
            if image_id not in shared and image_id not in val_ids:
                report("no annotation", f"image {images[image_id]} has no annotation (and no "
                       "--gt label map)")  # fmt: skip
            continue
        img = images.get(image_id)
        if img is None:
            if image_id not in shared:
                report("missing image", f"{a.source}: image {image_id!r} is not in {args.images}")
            continue
        try:  # after EXIF orientation, as the annotation tools show it
            h, w = image_hw(img, decode=not args.fast)
        except ValueError as e:
            report("unreadable image", str(e))
            continue
        if a.size is not None and a.size != (h, w):
            report("size mismatch", f"{a.source}: annotated at {a.size[1]}x{a.size[0]}, image "
                   f"{img} is {w}x{h}")  # fmt: skip
            continue
        scribbles = scribbles_of(a, (h, w), tag_map, report)
        if not scribbles:
            report("no annotation", f"image {img}: no usable scribble in {a.source}")
            continue
        pr = args.point_radius if args.point_radius >= 0 else None
        lab = rasterize(scribbles, h, w, args.line_width, pr, clamp=True, fill=args.ignore_label)
        write_label_png(out / "scribbles" / f"{image_id}.png", lab, palette)
        rows[image_id] = image_stats(np.where(lab == args.ignore_label, 255, lab), len(classes),
                                     len(scribbles))  # fmt: skip
        train_ids.append(image_id)

    if not train_ids:
        problems.error("no annotation", "no image got a scribble label map")

    status = problems.report()
    if status:
        print(f"nothing registered: fix the problems above or re-run with --on-problem warn "
              f"(leaves them out); {len(train_ids)} label PNGs are in {out / 'scribbles'}")
        return status

    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("".join(c + "\n" for c in classes), encoding="utf-8")
    write_ids(out / "train.txt", train_ids)
    desc = {
        "name": args.name,
        "image_root": _rel(args.images, out),
        "scribble_root": "scribbles",
        "classes": "classes.txt",
        "split_file": "train.txt",
        "ignore_label": args.ignore_label,
        "background": classes[bg_id] if bg_id >= 0 else None,
    }
    if val_ids:  # (warn mode: a --gt folder without usable maps registers no val split)
        write_ids(out / "val.txt", val_ids)
        desc.update(gt_root=_rel(args.gt, out), val_split_file="val.txt")
    tmp = out / (DATASET_JSON + ".tmp")
    tmp.write_text(json.dumps(desc, indent=1) + "\n")
    os.replace(tmp, out / DATASET_JSON)
    write_report(rows, classes, out, args.name)

    # Register and load it exactly as training will, so that a problem shows up now.
    from detectron2.data import DatasetCatalog

    names = register_scribble_dataset_from_json(out / DATASET_JSON, replace=True)
    counts = ", ".join(f"{n} ({len(DatasetCatalog.get(n))} images)" for n in names)
    fr = np.mean([r["fraction"] for r in rows.values()])
    print(f"wrote {len(train_ids)} scribble label maps ({100 * fr:.2f} % of pixels labeled) "
          f"and {out / DATASET_JSON}: {counts}")
    print(f"stats: {out / 'scribble_stats.md'}")
    try:  # config entries are relative to $DETECTRON2_DATASETS
        entry = out.resolve().relative_to(default_root().resolve()).as_posix()
    except ValueError:
        entry = str(out.resolve())
    print(f"config: DATASETS.DFR.CUSTOM (\"{entry}\",)  DATASETS.TRAIN (\"{names[0]}\",)  "
          f"MODEL.SEM_SEG_HEAD.NUM_CLASSES {len(classes)}  MODEL.DFR.BACKGROUND_ID {bg_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
