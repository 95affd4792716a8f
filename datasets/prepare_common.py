"""Helpers shared by datasets/prepare_*.py: problem log, idempotent writes, links, counts."""

from __future__ import annotations

import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np
from PIL import Image

try:
    from tqdm import tqdm
except ImportError:  # tqdm is a dependency of detectron2/fvcore; this is only a fallback

    def tqdm(it, **kw):
        return it


def default_root() -> Path:
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets"))


class Problems:
    """Collects problems (file unusable -> exit 1) and notes (informative) by category."""

    def __init__(self):
        self.errors: Dict[str, List[str]] = defaultdict(list)
        self.notes: Dict[str, List[str]] = defaultdict(list)

    def error(self, kind: str, msg: str):
        self.errors[kind].append(msg)

    def note(self, kind: str, msg: str):
        self.notes[kind].append(msg)

    def report(self, out=None, show: int = 10) -> int:
        """Print the summary; return the exit code (1 if any error)."""
        out = out or sys.stdout
        for title, table in (("NOTE", self.notes), ("PROBLEM", self.errors)):
            for kind, msgs in sorted(table.items()):
                print(f"{title} [{kind}] x{len(msgs)}", file=out)
                for m in msgs[:show]:
                    print(f"    {m}", file=out)
                if len(msgs) > show:
                    print(f"    ... and {len(msgs) - show} more", file=out)
        n = sum(len(v) for v in self.errors.values())
        print(f"{'FAILED' if n else 'OK'}: {n} problem(s)", file=out)
        return 1 if n else 0


def read_ids(path: Path) -> List[str]:
    """A split list: one id per line (first whitespace-separated token; VOC's Main lists
    carry a second column only in per-class files, which we do not read)."""
    ids = []
    for line in Path(path).read_text().splitlines():
        tok = line.split()
        if tok:
            ids.append(os.path.splitext(os.path.basename(tok[0]))[0])
    return ids


def write_ids(path: Path, ids: Iterable[str]):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{i}\n" for i in ids)
    if path.is_file() and path.read_text() == text:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_png(path: Path, label: np.ndarray):
    """Write an 8-bit single-channel PNG atomically (a re-run never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8), mode="L").save(tmp)
    os.replace(tmp, path)


def existing_label_ok(path: Path, size_hw, valid_ids: Optional[np.ndarray] = None) -> bool:
    """True when ``path`` is a readable label PNG of size ``size_hw`` (values checked if given)."""
    if not path.is_file():
        return False
    try:
        arr = np.asarray(Image.open(path))
    except Exception:
        return False
    if arr.ndim != 2 or arr.shape != tuple(size_hw):
        return False
    return valid_ids is None or bool(np.isin(arr, valid_ids).all())


def link_file(src: Path, dst: Path, mode: str = "symlink"):
    """Put ``src`` at ``dst`` (symlink / hardlink / copy); no-op when already there."""
    if dst.exists() or dst.is_symlink():
        if dst.resolve() == src.resolve() or (
            mode == "copy" and dst.stat().st_size == src.stat().st_size
        ):
            return
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        os.symlink(os.path.abspath(src), dst)
    elif mode == "hardlink":
        os.link(src, dst)
    elif mode == "copy":
        shutil.copy2(src, dst)
    else:
        raise ValueError(f"unknown link mode {mode!r}")


def image_size(path: Path, deep: bool = False):
    """(height, width) of an image, reading only the header unless ``deep`` (full decode)."""
    with Image.open(path) as im:
        if deep:
            im.load()
        w, h = im.size
    return h, w


def parse_counts(text: str) -> Dict[str, int]:
    """``"train_aug=10582,val=1449"`` -> dict."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, _, v = part.partition("=")
        if not v:
            raise ValueError(f"--expected-counts: expected name=number, got {part!r}")
        out[k.strip()] = int(v)
    return out


def check_counts(splits: Dict[str, List[str]], expected: Dict[str, int], problems: Problems):
    for name, n in expected.items():
        if name not in splits:
            continue
        if len(splits[name]) != n:
            problems.error(
                "count",
                f"split {name} has {len(splits[name])} images, expected {n} "
                "(wrong/partial archive? pass --expected-counts or --no-verify-counts "
                "for a subset)",
            )
