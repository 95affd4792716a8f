"""ScribbleSup tag names -> class ids (VOC short names, PASCAL-Context names -> 59/60 ids)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterable, Optional

from ..classes import CONTEXT59_CLASSES, CONTEXT_TAG_SYNONYMS, VOC_CLASSES, VOC_SCRIBBLE_TAGS
from .errors import ScribbleFormatError, UnknownTagError

__all__ = [
    "TagMap",
    "context59_index",
    "context_tag_map",
    "read_context_labels_txt",
    "voc_tag_map",
]


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


def read_context_labels_txt(path) -> Dict[int, str]:
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


def context59_index(name: str) -> Optional[int]:
    """Index of a Context class name (or synonym) among the 59 classes, None outside them."""
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
    others = {n for n in (all_names or ()) if context59_index(n) is None}
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
