"""DetectionCheckpointer whose unreadable files fail with a message a user can act on."""
import os

from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["DFRCheckpointer", "CheckpointReadError"]


class CheckpointReadError(RuntimeError):
    """A checkpoint file exists but cannot be deserialised (truncated or corrupt)."""


class DFRCheckpointer(DetectionCheckpointer):
    """Detectron2's checkpointer; a truncated/corrupt file raises CheckpointReadError with the
    path, its size and what to do, instead of a bare unpickling/zip error."""

    def _torch_load(self, f):
        try:
            return super()._torch_load(f)
        except Exception as e:  # torch raises RuntimeError / EOFError / UnpicklingError here
            size = os.path.getsize(f) if os.path.isfile(f) else -1
            raise CheckpointReadError(
                f"Checkpoint '{f}' ({size} bytes) cannot be read: it is truncated or corrupt "
                f"({type(e).__name__}: {e}). If training was interrupted while saving, delete "
                "this file and point 'last_checkpoint' in the output directory to an earlier "
                "model_*.pth (or pass another MODEL.WEIGHTS)."
            ) from e
