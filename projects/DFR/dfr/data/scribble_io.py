"""Scribble annotations in every public form -> label maps (one converter for the project).

Forms read (a folder, a ``.zip`` of the files, or a single file):

- ``xml``: ScribbleSup XML (VOC release ``scribble_annotation/pascal_2012/*.xml``, the
  PASCAL-Context release, GatedCRF's ``voc_scribbles.zip``): ``<polygon><tag>..</tag>
  <point><X>..</X><Y>..</Y></point>..</polygon>``, 0-based pixel coordinates.
- ``txt``: one scribble per line, ``class_id,x1,y1,x2,y2,...`` (0-based ids and coordinates).
- ``png``: ready label maps (rloss ``pascal_2012_scribble``), 8-bit ``L`` or ``P`` (index = id).

The standard conversion (``rasterize`` defaults; tests/fixtures/README.md, rloss
``convertscribbles.m``):

- label size = the JPEG's size (never the XML ``<size>``); canvas 255 (unlabeled);
- each polygon, in file order, is drawn as the polyline through its consecutive points with
  line width 3: a pixel is labeled when its centre lies within ``line_width / 2`` of a
  segment (``line_width == 1``: Bresenham lines instead). Later polygons overwrite earlier;
- points outside the image are clamped to it (``clamp=True``), however far outside;
- a polygon whose points all coincide (single or repeated point) is drawn as a dot: pixels
  within ``point_radius`` (default 1.0 -> the centre and its 4 neighbours, 5 px). The rloss
  converter draws nothing there: ``point_radius=None`` reproduces that;
- a polygon without any point is skipped and counted (``ScribbleSet.num_empty``);
- tags map to ids by a ``TagMap`` (VOC short names; Context names -> 59/60-class ids). An
  unknown tag raises ``UnknownTagError`` naming the file and the tag, unless the map was
  built to ignore it (then the polygon is skipped and counted in ``ScribbleSet.ignored``).

Drawing after augmentation (GatedCRF convention, 1-px lines on the augmented image):
``transform_scribbles`` maps the polylines through a detectron2 ``Transform`` and
``draw_transformed`` rasterises them on the transformed canvas with clipping, not clamping.
"""

from __future__ import annotations

import io
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from .classes import (
    CONTEXT59_CLASSES,
    CONTEXT60_CLASSES,
    CONTEXT_TAG_SYNONYMS,
    IGNORE_LABEL,
    VOC_CLASSES,
    VOC_SCRIBBLE_TAGS,
    context60_to_59,
)

__all__ = [
    "ScribbleError",
    "ScribbleFormatError",
    "UnknownTagError",
    "Scribble",
    "ScribbleSet",
    "TagMap",
    "voc_tag_map",
    "context_tag_map",
    "read_context_labels_txt",
    "parse_scribble_xml",
    "parse_scribble_txt",
    "read_label_png",
    "rasterize",
    "transform_scribbles",
    "draw_transformed",
    "ScribbleSource",
    "open_scribble_source",
    "image_id_from_name",
    "labeled_fraction",
    "context60_to_59",
]

PathLike = Union[str, os.PathLike]


class ScribbleError(ValueError):
    """Base class: every message names the offending file."""


class ScribbleFormatError(ScribbleError):
    """Malformed XML / text line / PNG."""


class UnknownTagError(ScribbleError):
    """A ScribbleSup tag that the tag map does not know."""


@dataclass
class Scribble:
    """One polyline: ``points`` (N, 2) float64 as (x, y), 0-based pixel coordinates."""

    class_id: int
    points: np.ndarray
    tag: Optional[str] = None


@dataclass
class ScribbleSet:
    """The scribbles of one image, in file order."""

    scribbles: List[Scribble]
    source: str = ""
    size: Optional[Tuple[int, int]] = None  # (height, width) declared in the file, if any
    num_empty: int = 0  # polygons without points (skipped)
    ignored: List[str] = field(default_factory=list)  # tags skipped by the tag map

    def __len__(self) -> int:
        return len(self.scribbles)

    def __iter__(self):
        return iter(self.scribbles)


def _norm(tag: str) -> str:
    return " ".join(str(tag).strip().lower().replace("_", " ").split())


class TagMap:
    """Tag name -> class id. ``ids`` maps normalised names (lower case, single spaces) to ids;
    names in ``ignore`` are skipped silently (but counted); anything else raises."""

    def __init__(self, ids: Dict[str, int], ignore: Iterable[str] = (), name: str = "tags"):
        self.ids = {_norm(k): int(v) for k, v in ids.items()}
        self.ignore = {_norm(k) for k in ignore} - set(self.ids)
        self.name = name

    def __call__(self, tag: str, source: str = "?") -> Optional[int]:
        key = _norm(tag)
        if key in self.ids:
            return self.ids[key]
        if key in self.ignore:
            return None
        raise UnknownTagError(
            f"{source}: unknown scribble tag {tag!r} for the {self.name} tag map "
            f"(known: {', '.join(sorted(self.ids))})"
        )


def voc_tag_map() -> TagMap:
    """ScribbleSup VOC short names (background 0 ... monitor 20); VOC long names accepted."""
    ids = {t: i for i, t in enumerate(VOC_SCRIBBLE_TAGS)}
    ids.update({n: i for i, n in enumerate(VOC_CLASSES)})
    ids.update({"tv/monitor": 20, "dining table": 11, "potted plant": 16})
    return TagMap(ids, name="VOC")


def read_context_labels_txt(path: PathLike) -> Dict[int, str]:
    """The official PASCAL-Context ``labels.txt`` (``"<id>: <name>"`` per line) -> {id: name}."""
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        m = re.match(r"\s*(\d+)\s*:\s*(.+?)\s*$", line)
        if m is None:
            raise ScribbleFormatError(f"{path}:{n}: expected '<id>: <name>', got {line!r}")
        out[int(m.group(1))] = m.group(2)
    return out


def _context59_index(name: str) -> Optional[int]:
    key = _norm(name)
    key = _norm(CONTEXT_TAG_SYNONYMS.get(key, key))
    names = [_norm(c) for c in CONTEXT59_CLASSES]
    return names.index(key) if key in names else None


def context_tag_map(
    num_classes: int = 60, all_names: Optional[Iterable[str]] = None, unknown: str = "error"
) -> TagMap:
    """Context tags -> 60-class ids (0 = background, 1..59) or 59-class ids (0..58).

    The 59 class names, their synonyms (``CONTEXT_TAG_SYNONYMS``, e.g. VOC's short ``plane``)
    and ``background`` are known. ``all_names`` (e.g. the 459 names of ``labels.txt``) adds the
    Context classes outside the 59: they are background (0) for 60 classes and skipped for 59
    (background is not a class there). ``unknown="ignore"`` skips any other tag instead of
    raising. The prepare script draws 60-class maps and derives 59 with ``context60_to_59``.
    """
    if num_classes not in (59, 60):
        raise ValueError(f"num_classes must be 59 or 60, got {num_classes}")
    off = 1 if num_classes == 60 else 0
    ids = {c: i + off for i, c in enumerate(CONTEXT59_CLASSES)}
    for syn, name in CONTEXT_TAG_SYNONYMS.items():
        ids[syn] = CONTEXT59_CLASSES.index(name) + off
    others = {n for n in (all_names or ()) if _context59_index(n) is None}
    ignore = set()
    if num_classes == 60:
        ids["background"] = 0
        ids.update({n: 0 for n in others})
    else:
        ignore = {"background"} | others
    tm = TagMap(ids, ignore=ignore, name=f"Context-{num_classes}")
    if unknown == "ignore":
        return _IgnoringTagMap(tm)
    if unknown != "error":
        raise ValueError(f"unknown must be 'error' or 'ignore', got {unknown!r}")
    return tm


class _IgnoringTagMap(TagMap):
    def __init__(self, base: TagMap):
        super().__init__(base.ids, base.ignore, base.name + " (unknown tags ignored)")

    def __call__(self, tag: str, source: str = "?") -> Optional[int]:
        return self.ids.get(_norm(tag))


# ---------------------------------------------------------------------------- parsing
def _read_bytes(src: Union[PathLike, bytes]) -> Tuple[bytes, str]:
    if isinstance(src, (bytes, bytearray)):
        return bytes(src), "<bytes>"
    return Path(src).read_bytes(), str(src)


def parse_scribble_xml(
    src: Union[PathLike, bytes], tag_map: Optional[TagMap] = None, source: Optional[str] = None
) -> ScribbleSet:
    """A ScribbleSup XML file (path or bytes) -> ``ScribbleSet`` (file order kept)."""
    data, name = _read_bytes(src)
    name = source or name
    tag_map = tag_map or voc_tag_map()
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ScribbleFormatError(f"{name}: malformed XML ({e})") from None
    size = None
    w, h = root.findtext("size/width"), root.findtext("size/height")
    if w is not None and h is not None:
        try:
            size = (int(float(h)), int(float(w)))
        except ValueError:
            size = None  # only informative: the JPEG gives the label size
    out = ScribbleSet([], source=name, size=size)
    for k, poly in enumerate(root.iter("polygon")):
        tag = poly.findtext("tag")
        if tag is None or not tag.strip():
            raise ScribbleFormatError(f"{name}: polygon #{k} has no <tag>")
        pts = []
        for p in poly.findall("point"):
            x, y = p.findtext("X"), p.findtext("Y")
            try:
                pts.append((float(x), float(y)))
            except (TypeError, ValueError):
                raise ScribbleFormatError(
                    f"{name}: polygon #{k} ({tag}) has a point with X={x!r} Y={y!r}"
                ) from None
        if not pts:
            out.num_empty += 1
            continue
        cid = tag_map(tag, name)
        if cid is None:
            out.ignored.append(tag)
            continue
        out.scribbles.append(Scribble(cid, np.asarray(pts, dtype=np.float64), tag.strip()))
    return out


def parse_scribble_txt(
    src: Union[PathLike, bytes], num_classes: Optional[int] = 21, source: Optional[str] = None
) -> ScribbleSet:
    """``class_id,x1,y1,x2,y2,...`` per line (0-based) -> ``ScribbleSet``; blank lines skipped,
    a line with a class id but no point counts as empty."""
    data, name = _read_bytes(src)
    name = source or name
    out = ScribbleSet([], source=name)
    for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
        vals = [v for v in re.split(r"[,\s]+", line.strip()) if v]
        if not vals:
            continue
        try:
            nums = [float(v) for v in vals]
        except ValueError:
            raise ScribbleFormatError(f"{name}:{n}: non-numeric value in {line[:60]!r}") from None
        cid = int(nums[0])
        if cid != nums[0] or cid < 0 or (num_classes is not None and cid >= num_classes):
            allowed = "a non-negative integer" if num_classes is None else f"in 0..{num_classes - 1}"
            raise ScribbleFormatError(f"{name}:{n}: class id {vals[0]} is not {allowed}")
        if len(nums) % 2 != 1:
            raise ScribbleFormatError(f"{name}:{n}: odd number of coordinates ({len(nums) - 1})")
        if len(nums) == 1:
            out.num_empty += 1
            continue
        out.scribbles.append(Scribble(cid, np.asarray(nums[1:], np.float64).reshape(-1, 2)))
    return out


def read_label_png(src: Union[PathLike, bytes], source: Optional[str] = None) -> np.ndarray:
    """A single-channel label PNG (``L``/``P``/``I``) -> uint8 (H, W); RGB is refused."""
    data, name = _read_bytes(src)
    name = source or name
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as e:  # PIL raises several types for broken files
        raise ScribbleFormatError(f"{name}: unreadable PNG ({e})") from None
    if img.mode not in ("L", "P", "I", "I;16"):
        raise ScribbleFormatError(f"{name}: label PNG must be single-channel, got mode {img.mode}")
    arr = np.asarray(img)
    if arr.max(initial=0) > 255:
        raise ScribbleFormatError(f"{name}: label values above 255")
    return arr.astype(np.uint8)


# ---------------------------------------------------------------------------- drawing
def _draw_segment(canvas, p, q, value, radius):
    """Pixels whose centre is within ``radius`` of segment pq (clipped to the canvas)."""
    h, w = canvas.shape
    x0 = int(np.floor(min(p[0], q[0]) - radius))
    x1 = int(np.ceil(max(p[0], q[0]) + radius))
    y0 = int(np.floor(min(p[1], q[1]) - radius))
    y1 = int(np.ceil(max(p[1], q[1]) + radius))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
    if x0 > x1 or y0 > y1:
        return
    ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
    d = q - p
    L2 = float(d @ d)
    if L2 == 0.0:
        t = np.zeros(xs.shape)
    else:
        t = np.clip(((xs - p[0]) * d[0] + (ys - p[1]) * d[1]) / L2, 0.0, 1.0)
    dist2 = (xs - p[0] - t * d[0]) ** 2 + (ys - p[1] - t * d[1]) ** 2
    m = dist2 <= radius * radius + 1e-9
    canvas[ys[m], xs[m]] = value


def _draw_polyline(canvas, pts, value, radius, window: int = 24):
    """``_draw_segment`` for every segment of one polyline (one value, so order is irrelevant):
    short segments are done together in (S, K, K) windows, long ones one by one."""
    h, w = canvas.shape
    p, q = pts[:-1], pts[1:]
    lo = np.floor(np.minimum(p, q) - radius).astype(np.int64)
    ext = np.ceil(np.maximum(p, q) + radius).astype(np.int64) - lo + 1
    short = (ext <= window).all(1)
    for i in np.flatnonzero(~short):
        _draw_segment(canvas, p[i], q[i], value, radius)
    if not short.any():
        return
    p, q, lo = p[short], q[short], lo[short]
    k = int(ext[short].max())
    xs = (lo[:, 0, None] + np.arange(k))[:, None, :]  # (S, 1, K)
    ys = (lo[:, 1, None] + np.arange(k))[:, :, None]  # (S, K, 1)
    d = q - p
    L2 = (d * d).sum(1)
    px, py, dx, dy = (v[:, None, None] for v in (p[:, 0], p[:, 1], d[:, 0], d[:, 1]))
    t = ((xs - px) * dx + (ys - py) * dy) / np.maximum(L2, 1e-12)[:, None, None]
    t = np.clip(t, 0.0, 1.0)
    dist2 = (xs - px - t * dx) ** 2 + (ys - py - t * dy) ** 2
    m = (dist2 <= radius * radius + 1e-9) & (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    X, Y = np.broadcast_to(xs, m.shape)[m], np.broadcast_to(ys, m.shape)[m]
    canvas[Y, X] = value


def _bresenham(canvas, p, q, value):
    from skimage.draw import line

    h, w = canvas.shape
    r, c = line(int(round(p[1])), int(round(p[0])), int(round(q[1])), int(round(q[0])))
    k = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    canvas[r[k], c[k]] = value


def rasterize(
    scribbles: Union[ScribbleSet, Sequence[Scribble]],
    height: int,
    width: int,
    line_width: float = 3,
    point_radius: Optional[float] = 1.0,
    clamp: bool = True,
    fill: int = IGNORE_LABEL,
    canvas: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Draw polylines in order onto a (height, width) uint8 canvas filled with ``fill``.

    ``line_width`` > 1: pixels whose centre is within ``line_width/2`` of a segment;
    ``line_width`` == 1: Bresenham lines. ``clamp``: clamp points to the image first (the
    standard conversion); ``clamp=False`` clips instead (needed after a crop). Degenerate
    polylines (all points equal) become dots of ``point_radius`` (None: nothing drawn).
    """
    if canvas is None:
        canvas = np.full((int(height), int(width)), fill, dtype=np.uint8)
    if line_width <= 0:
        raise ValueError(f"line_width must be positive, got {line_width}")
    for s in scribbles:
        pts = np.asarray(s.points, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            continue
        if clamp:
            pts = np.stack([np.clip(pts[:, 0], 0, width - 1), np.clip(pts[:, 1], 0, height - 1)], 1)
        if np.all(pts == pts[:1]):
            if point_radius is not None:
                _draw_segment(canvas, pts[0], pts[0], s.class_id, float(point_radius))
            continue
        keep = np.ones(len(pts), bool)
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)  # repeated points add nothing
        pts = pts[keep]
        if line_width == 1:
            for p, q in zip(pts[:-1], pts[1:]):
                _bresenham(canvas, p, q, s.class_id)
        else:
            _draw_polyline(canvas, pts, s.class_id, line_width / 2.0)
    return canvas


def transform_scribbles(scribbles: Sequence[Scribble], transform) -> List[Scribble]:
    """Map polylines through a detectron2 ``Transform``/``TransformList``.

    Pixel indices are converted to continuous coordinates (centre of pixel i is i + 0.5,
    detectron2's convention) before ``apply_coords`` and back after, so a horizontal flip
    sends column i to W-1-i exactly.
    """
    out = []
    for s in scribbles:
        pts = np.asarray(s.points, dtype=np.float64).reshape(-1, 2)
        new = transform.apply_coords(pts + 0.5) - 0.5
        out.append(Scribble(s.class_id, np.asarray(new, np.float64), s.tag))
    return out


def draw_transformed(
    scribbles: Sequence[Scribble],
    transform,
    height: int,
    width: int,
    line_width: float = 1,
    point_radius: Optional[float] = 1.0,
) -> np.ndarray:
    """Draw scribbles after augmentation: transform the polylines, then rasterise them on the
    transformed image's (height, width) with clipping (GatedCRF-style 1-px lines by default)."""
    moved = transform_scribbles(scribbles, transform)
    return rasterize(moved, height, width, line_width, point_radius, clamp=False)


def labeled_fraction(label: np.ndarray, ignore: int = IGNORE_LABEL) -> float:
    return float((np.asarray(label) != ignore).mean())


# ---------------------------------------------------------------------------- sources
_VOC_ID = re.compile(r"(\d{4}_\d{6})")
_EXT = {"xml": (".xml",), "txt": (".txt",), "png": (".png",)}


def image_id_from_name(name: str) -> str:
    """``test_2008_003147.xml`` / ``2007_009897_scribble.txt`` -> the VOC id ``yyyy_nnnnnn``;
    other names -> the stem without a ``_scribble`` suffix."""
    base = os.path.basename(name)
    m = _VOC_ID.search(base)
    if m:
        return m.group(1)
    stem = os.path.splitext(base)[0]
    return stem[: -len("_scribble")] if stem.endswith("_scribble") else stem


class ScribbleSource:
    """A folder, zip or single file of scribble annotations of one form (``kind``).

    ``ids()`` lists image ids; ``load(image_id, height, width, ...)`` returns the label map.
    Duplicate image ids (two files for one image) raise ``ScribbleError``.
    """

    def __init__(self, path: PathLike, kind: Optional[str] = None):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"scribble source not found: {self.path}")
        self._zip = None
        if self.path.is_file() and zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
            names = [
                n
                for n in self._zip.namelist()
                if not n.endswith("/")
                and "__MACOSX" not in n
                and not os.path.basename(n).startswith(".")
            ]
        elif self.path.is_dir():
            names = sorted(str(p) for p in self.path.rglob("*") if p.is_file())
            names = [n for n in names if not os.path.basename(n).startswith(".")]
        else:
            names = [str(self.path)]
        self.kind = kind or self._guess_kind(names)
        exts = _EXT[self.kind]
        self._files: Dict[str, str] = {}
        for n in sorted(names):
            if not n.lower().endswith(exts):
                continue
            iid = image_id_from_name(n)
            if iid in self._files:
                raise ScribbleError(
                    f"{self.path}: two annotation files for image {iid}: {self._files[iid]}, {n}"
                )
            self._files[iid] = n

    def _guess_kind(self, names):
        counts = {k: sum(n.lower().endswith(e) for n in names) for k, e in _EXT.items()}
        kind = max(counts, key=counts.get)
        if counts[kind] == 0:
            raise ScribbleError(f"{self.path}: no .xml, .txt or .png scribble files found")
        return kind

    def ids(self) -> List[str]:
        return sorted(self._files)

    def name_of(self, image_id: str) -> str:
        n = self._files[image_id]
        return f"{self.path}:{n}" if self._zip is not None else n

    def read_bytes(self, image_id: str) -> bytes:
        n = self._files[image_id]
        return self._zip.read(n) if self._zip is not None else Path(n).read_bytes()

    def parse(self, image_id: str, tag_map: Optional[TagMap] = None, num_classes=21) -> ScribbleSet:
        """Polylines of an xml/txt source (not available for ready PNGs)."""
        data, name = self.read_bytes(image_id), self.name_of(image_id)
        if self.kind == "xml":
            return parse_scribble_xml(data, tag_map, source=name)
        if self.kind == "txt":
            return parse_scribble_txt(data, num_classes, source=name)
        raise ScribbleError(f"{name}: a PNG label map has no polylines")

    def load(
        self,
        image_id: str,
        height: int,
        width: int,
        tag_map: Optional[TagMap] = None,
        num_classes: Optional[int] = 21,
        line_width: float = 3,
        point_radius: Optional[float] = 1.0,
    ) -> Tuple[np.ndarray, Optional[ScribbleSet]]:
        """Label map (height, width) of ``image_id`` and its ``ScribbleSet`` (None for PNGs).
        A ready PNG whose size differs from (height, width) raises ``ScribbleError``."""
        name = self.name_of(image_id)
        if self.kind == "png":
            lab = read_label_png(self.read_bytes(image_id), source=name)
            if lab.shape != (height, width):
                raise ScribbleError(
                    f"{name}: label size {lab.shape} != image size {(height, width)}"
                )
            if num_classes is not None:
                bad = np.setdiff1d(np.unique(lab), list(range(num_classes)) + [IGNORE_LABEL])
                if bad.size:
                    raise ScribbleError(
                        f"{name}: label values {bad.tolist()} outside 0..{num_classes - 1}, 255"
                    )
            return lab, None
        ss = self.parse(image_id, tag_map, num_classes)
        return rasterize(ss, height, width, line_width, point_radius), ss

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._files


def open_scribble_source(path: PathLike, kind: Optional[str] = None) -> ScribbleSource:
    return ScribbleSource(path, kind)
