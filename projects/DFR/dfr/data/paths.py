"""Where datasets live: `$DETECTRON2_DATASETS` (Detectron2's convention), default `./datasets`."""
import glob
import os
import shutil
import tempfile
from typing import Optional

__all__ = ["get_datasets_root", "require_path", "fresh_tempdir"]


def get_datasets_root() -> str:
    """`$DETECTRON2_DATASETS`, default `./datasets`, read at call time."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def require_path(path: Optional[str], what: str, prepare: str, under_root: bool = False):
    """FileNotFoundError naming `what`, the path and the command that creates it, unless
    `path` exists. `under_root`: the path was resolved under $DETECTRON2_DATASETS (say so)."""
    if path is not None and os.path.exists(path):
        return
    root = f"\n  DETECTRON2_DATASETS={get_datasets_root()!r}." if under_root else ""
    raise FileNotFoundError(f"{what} not found: {path}{root}\n  Create it with: {prepare}")


def fresh_tempdir(final: str) -> str:
    """A temporary folder next to `final` to generate it in (then `os.rename` it into place),
    with the permissions of a normal folder (mkdtemp makes it private: other users of a shared
    $DETECTRON2_DATASETS could not read the data). Temporary folders for `final` left by a
    killed generator are removed first; call it while holding the generator's lock."""
    parent, name = os.path.split(os.path.abspath(final))
    os.makedirs(parent, exist_ok=True)
    for stale in glob.glob(os.path.join(parent, f".{glob.escape(name)}.tmp-*")):
        if os.path.isdir(stale):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    return tmp
