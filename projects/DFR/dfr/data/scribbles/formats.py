"""Scribble annotation formats -> polylines: ScribbleSup XML and ``class_id,x1,y1,...`` text
(see the package docstring for the forms and the conversion rules)."""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from .errors import ScribbleFormatError
from .tags import TagMap, voc_tag_map

__all__ = [
    "PathLike",
    "Scribble",
    "ScribbleSet",
    "parse_scribble_txt",
    "parse_scribble_xml",
    "read_bytes",
]

PathLike = Union[str, os.PathLike]


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


def read_bytes(src: Union[PathLike, bytes]) -> Tuple[bytes, str]:
    if isinstance(src, (bytes, bytearray)):
        return bytes(src), "<bytes>"
    return Path(src).read_bytes(), str(src)


def parse_scribble_xml(
    src: Union[PathLike, bytes], tag_map: Optional[TagMap] = None, source: Optional[str] = None
) -> ScribbleSet:
    """A ScribbleSup XML file (path or bytes) -> ``ScribbleSet`` (file order kept)."""
    data, name = read_bytes(src)
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
    data, name = read_bytes(src)
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
