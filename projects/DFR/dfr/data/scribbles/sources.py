"""Where scribbles come from: a folder, a ``.zip`` or a single file of one form (xml, txt or
ready png label maps), by image id."""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..classes import IGNORE_LABEL
from ..labels import read_label, values_outside
from .errors import ScribbleError
from .formats import PathLike, ScribbleSet, parse_scribble_txt, parse_scribble_xml
from .rasterize import rasterize
from .tags import TagMap

__all__ = ["ScribbleSource", "image_id_from_name", "open_scribble_source"]


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
            lab = read_label(self.read_bytes(image_id), source=name)
            if lab.shape != (height, width):
                raise ScribbleError(
                    f"{name}: label size {lab.shape} != image size {(height, width)}"
                )
            if num_classes is not None:
                bad = values_outside(lab, num_classes, IGNORE_LABEL)
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
