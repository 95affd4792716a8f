"""Where datasets live: `$DETECTRON2_DATASETS` (Detectron2's convention), default `./datasets`."""
import os

__all__ = ["get_datasets_root"]


def get_datasets_root() -> str:
    """`$DETECTRON2_DATASETS`, default `./datasets`, read at call time."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
