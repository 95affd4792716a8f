"""Where datasets live: `$DETECTRON2_DATASETS` (Detectron2's convention), default `./datasets`."""
import os

from typing import Optional

__all__ = ["get_datasets_root", "require_path"]


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
