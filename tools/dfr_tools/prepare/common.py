"""Helpers of the data-preparation scripts (datasets/prepare_*.py): problem log, idempotent
writes, links, counts, image checks (full decode in a thread pool) and the options manifest of
an output folder."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from tqdm import tqdm  # noqa: F401  (the scripts import it from here)

from dfr.data.images import image_hw, thread_map


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
    """A split list: one id per line, the whole line (names may hold spaces; surrounding
    whitespace and blank lines are ignored)."""
    ids = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            ids.append(os.path.splitext(os.path.basename(line.strip()))[0])
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


def _placed(src: Path, dst: Path, mode: str) -> bool:
    """``dst`` already is ``src`` put there the ``mode`` way (a symlink where a copy is asked
    for is not: re-running with another --link replaces it)."""
    if mode == "symlink":
        return dst.is_symlink() and dst.resolve() == src.resolve()
    if dst.is_symlink() or not dst.exists():
        return False
    same = os.path.samefile(src, dst)
    return same if mode == "hardlink" else not same and dst.stat().st_size == src.stat().st_size


def link_file(src: Path, dst: Path, mode: str = "symlink"):
    """Put ``src`` at ``dst`` (symlink / hardlink / copy); no-op when already there that way."""
    if dst.exists() or dst.is_symlink():
        if _placed(src, dst, mode):
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


def image_sizes(
    paths: Sequence[Tuple[str, Path]], deep: bool = True, desc: str = "images", workers: int = 0
) -> Dict[str, object]:
    """``{key: (h, w)}`` (``dfr.data.images.image_hw``: after the EXIF orientation) for
    ``(key, path)`` pairs, or ``{key: ValueError}`` for unreadable files. ``deep`` (default)
    decodes every pixel, so a truncated or corrupt file is found here and not when the training
    sampler reaches it; ``deep=False`` reads the headers only. Runs in a thread pool with a
    progress bar; ``workers`` <= 0: min(8, CPU count)."""
    from PIL import ImageFile

    if ImageFile.LOAD_TRUNCATED_IMAGES:  # set by some library: would hide truncated JPEGs
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True: cannot check images")

    def one(item):
        try:
            return item[0], image_hw(item[1], decode=deep)
        except ValueError as e:  # names the file and PIL's reason
            return item[0], e

    return dict(thread_map(one, paths, workers=workers, desc=desc))


def place_images(srcs: Sequence[Tuple[str, Path]], dst_dir: Path, fast: bool, link: str,
                 problems: "Problems", desc: str) -> Dict[str, Tuple[int, int]]:  # fmt: skip
    """Check every (id, source JPEG) (decoded in full unless `fast`), report unreadable ones
    to `problems`, put the readable ones at `dst_dir/<id>.jpg` (`link` mode) and return their
    {id: (h, w)}."""
    got = image_sizes(srcs, deep=not fast, desc=f"{desc} ({'headers' if fast else 'decode'})")
    sizes = {}
    for iid, src in srcs:
        if isinstance(got[iid], Exception):
            problems.error("unreadable image", f"{src}: {got[iid]}")
            continue
        sizes[iid] = got[iid]
        dst = dst_dir / f"{iid}.jpg"
        if src.resolve() != dst.resolve():
            link_file(src, dst, link)
    return sizes


MANIFEST = "prepare_manifest.json"


def _shown(v):
    return "(not given)" if v is None else str(v)


def check_manifest(
    out: Path, script: str, options: Dict[str, object], compared: Sequence[str], force: bool,
    output_dirs: Sequence[Path],
) -> Optional[str]:
    """Why this run must not go on over ``out`` (a message), or None.

    ``<out>/prepare_manifest.json`` records the options of the run that wrote ``out``. Without
    ``--force`` existing valid files are kept, so a run with different ``compared`` options
    would leave files made with the old options behind: that stops here, naming each option.
    Outputs without a manifest (older script, or by hand) stop too: their options are
    unknown. A ``--force`` rewrite that did not finish must be finished with ``--force``."""
    if force:
        return None
    path = out / MANIFEST
    if not path.is_file():
        found = [d for d in output_dirs if d.is_dir() and any(d.iterdir())]
        if found:
            return (
                f"{out} already holds outputs ({', '.join(d.name for d in found)}) but no "
                f"{MANIFEST}: the options they were made with are unknown and they would be "
                "kept as they are. Re-run with --force to rewrite them, or choose another --out."
            )
        return None
    try:
        old = json.loads(path.read_text())
        old_opts = old["options"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{path} is unreadable ({e}): re-run with --force to rewrite {out}"
    if old.get("script") not in (None, script):
        return f"{out} was written by {old.get('script')}, not {script}: choose another --out"
    diffs = [
        f"{k} {_shown(old_opts.get(k))} (now {_shown(options.get(k))})"
        for k in compared
        if old_opts.get(k) != options.get(k)
    ]
    if diffs:
        return (
            f"{out} was prepared with {'; '.join(diffs)}. Its existing files would be kept as "
            "they are, i.e. made with the old options. Re-run with --force to rewrite them "
            "with the new options, or choose another --out."
        )
    if not old.get("complete", True) and old.get("force"):
        return (
            f"the last run over {out} (with --force) did not finish: part of its files may "
            "still come from the options before it. Re-run with --force."
        )
    return None


def write_manifest(
    out: Path, script: str, options: Dict[str, object], compared: Sequence[str], force: bool,
    complete: bool,
):
    """Record the options of this run in ``<out>/prepare_manifest.json`` (atomically). At the
    start of a run (``complete=False``) the file is marked only for a first run or a --force
    rewrite; a file whose content would not change is left alone (idempotent re-runs)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    if not complete and not force and path.is_file():
        return  # same options (check_manifest passed): nothing can go stale if interrupted
    # "force": an unfinished --force rewrite (check_manifest asks for --force again)
    data = {"script": script, "options": dict(options), "compared": list(compared),
            "force": bool(force and not complete), "complete": bool(complete)}  # fmt: skip
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            old.pop("time", None)
            if old == data:
                return
        except ValueError:
            pass
    data["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def add_output_options(parser, *, raster: bool = True, counts: Optional[str] = None):
    """The options the prepare scripts share: how scribbles are drawn (``raster``), how JPEGs
    are placed, the expected split sizes (``counts``: an example for the help), decoding and
    --force."""
    if raster:
        parser.add_argument("--line-width", type=float, default=3.0,
                            help="scribble line width in px")  # fmt: skip
        parser.add_argument("--point-radius", type=float, default=1.0,
                            help="radius of the dot drawn for single-point scribbles "
                            "(<0: draw nothing)")  # fmt: skip
    parser.add_argument("--link", choices=["symlink", "hardlink", "copy"], default="symlink",
                        help="how JPEGs are put into <out>/JPEGImages")  # fmt: skip
    if counts is not None:
        parser.add_argument("--expected-counts", default=None,
                            help=f"override the expected split sizes, e.g. {counts}")  # fmt: skip
        parser.add_argument("--no-verify-counts", action="store_true",
                            help="do not compare the split sizes with the expected ones")  # fmt: skip
    parser.add_argument("--fast", action="store_true",
                        help="read only the JPEG headers (default: decode every JPEG, so a "
                        "truncated file is reported here and not when training reaches it)")  # fmt: skip
    parser.add_argument("--force", action="store_true",
                        help="rewrite existing outputs (needed to change the options of a "
                        "prepared folder)")  # fmt: skip


class PrepareManifest:
    """The manifest protocol of one prepare run over ``out``: ``stopped()`` before anything is
    written (prints why and returns exit status 2, or None to go on; ``check_manifest``),
    ``started()`` before the first write, ``finished()`` after the last one."""

    def __init__(self, out: Path, script: str, options: Dict[str, object],
                 compared: Sequence[str], force: bool, outputs: Sequence[Path]):  # fmt: skip
        self.out, self.script, self.options = out, script, options
        self.compared, self.force, self.outputs = compared, force, outputs

    def stopped(self) -> Optional[int]:
        why = check_manifest(self.out, self.script, self.options, self.compared, self.force,
                             self.outputs)  # fmt: skip
        if why:
            print(f"STOPPED, nothing written: {why}", file=sys.stderr)
            return 2
        return None

    def _write(self, complete: bool):
        write_manifest(self.out, self.script, self.options, self.compared, self.force, complete)

    def started(self):
        self._write(complete=False)

    def finished(self):
        self._write(complete=True)


def run_options(args, path_keys: Iterable[str]) -> Dict[str, object]:
    """argparse namespace -> ``{"--flag-name": value}``, paths made absolute (symlinks resolved)
    so that the same tree named two ways compares equal."""
    opts = {}
    for k, v in sorted(vars(args).items()):
        if k == "force":  # how to run, not what to write
            continue
        if k in path_keys and v is not None:
            v = str(Path(v).resolve())
        elif isinstance(v, Path):
            v = str(v)
        opts["--" + k.replace("_", "-")] = v
    return opts
