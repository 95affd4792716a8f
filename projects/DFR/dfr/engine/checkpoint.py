"""DetectionCheckpointer that reads files without running code from them, loads full mmseg
UperNet-Swin checkpoints, and fails on unreadable files with a message a user can act on."""
import errno
import logging
import os
import re
import shutil
import socket
from typing import Dict, List, Optional

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..modeling.backbone.weights import UnsafeCheckpointError, load_checkpoint_file
from .mmseg_keys import is_mmseg_checkpoint, mmseg_to_dfr_state_dict, rename_legacy_keys

__all__ = [
    "DFRCheckpointer",
    "CheckpointReadError",
    "CheckpointWriteError",
    "CheckpointMismatchError",
    "UnsafeCheckpointError",
]

logger = logging.getLogger(__name__)
SHOW = 5  # tensors named in a message


class CheckpointReadError(RuntimeError):
    """A checkpoint file exists but cannot be deserialised (truncated or corrupt)."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. the disk of OUTPUT_DIR is full); the message
    names the cause, the file and what was kept."""


def _os_error_in_chain(exc: BaseException) -> Optional[OSError]:
    """The first OSError among `exc`, its cause and context (torch's zip writer reports a
    failed write as "RuntimeError: [enforce fail at inline_container.cc] unexpected pos",
    with the OSError only in the chain)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class CheckpointMismatchError(ValueError):
    """A checkpoint's tensors have other shapes than the model's (e.g. another number of
    classes); the message names the keys, both shapes and the opt-in for fine-tuning."""


_CLASSIFIERS = ("sem_seg_head.predictor.weight", "aux_head.predictor.weight")
_STEP = re.compile(r"^model_(\d+|final)\.pth$")


class DFRCheckpointer(DetectionCheckpointer):
    """Detectron2's checkpointer, with:

    - no code execution: `.pth` through torch.load(weights_only=True), `.pkl` through a
      numpy-only unpickler; a file needing more raises UnsafeCheckpointError naming the file
      and MODEL.ALLOW_UNSAFE_CHECKPOINT (pass `allow_unsafe=cfg.MODEL.ALLOW_UNSAFE_CHECKPOINT`);
    - full mmseg UperNet-Swin checkpoints (`meta` + `state_dict`) as MODEL.WEIGHTS, mapped to
      our names (`mmseg_to_dfr_state_dict`); missing / unexpected keys logged as usual;
    - a truncated/corrupt file raising CheckpointReadError with the path, its size and what
      to do, instead of a bare unpickling/zip error;
    - tensors of other shapes than the model's (a checkpoint of another number of classes)
      raising CheckpointMismatchError, unless `allow_shape_mismatch`
      (MODEL.SKIP_MISMATCHED_WEIGHTS: those tensors keep their new initialisation, as
      Detectron2 does by default; for fine-tuning on other classes or another head);
    - `last_checkpoint` never naming a file that is not a complete checkpoint: a missing,
      empty or dangling tag falls back to the newest complete `model_*.pth` with a WARNING.

    Build it with `DFRCheckpointer.from_config(cfg, model)`: one place reads the config keys.
    """

    def __init__(self, model, save_dir="", *, allow_unsafe: bool = False,
                 allow_shape_mismatch: bool = False, **kwargs):  # fmt: skip
        super().__init__(model, save_dir, **kwargs)
        self.allow_unsafe = allow_unsafe
        self.allow_shape_mismatch = allow_shape_mismatch

    @classmethod
    def from_config(cls, cfg, model, save_dir: Optional[str] = None, **kwargs):
        """The checkpointer every entry point uses (training, --eval-only, demo, tools):
        MODEL.ALLOW_UNSAFE_CHECKPOINT and MODEL.SKIP_MISMATCHED_WEIGHTS from `cfg`."""
        return cls(model, cfg.OUTPUT_DIR if save_dir is None else save_dir,
                   allow_unsafe=cfg.MODEL.ALLOW_UNSAFE_CHECKPOINT,
                   allow_shape_mismatch=cfg.MODEL.SKIP_MISMATCHED_WEIGHTS, **kwargs)  # fmt: skip

    def _load_model(self, checkpoint):
        if not self.allow_shape_mismatch and not checkpoint.get("matching_heuristics", False):
            self._check_shapes(checkpoint["model"])
        return super()._load_model(checkpoint)

    def _check_shapes(self, sd):
        own = self.model.state_dict()
        strip = (lambda k: k[7:] if k.startswith("module.") else k) if all(
            k.startswith("module.") for k in sd) else (lambda k: k)  # fmt: skip
        bad = {}
        for k, v in sd.items():
            k = strip(k)
            if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape):
                bad[k] = (tuple(v.shape), tuple(own[k].shape))
        if not bad:
            return
        listing = ", ".join(f"{k} {a} vs model {b}" for k, (a, b) in list(bad.items())[:SHOW])
        more = f" (+{len(bad) - SHOW} more)" if len(bad) > SHOW else ""
        classes = [bad[k] for k in _CLASSIFIERS if k in bad]
        what = (f"was trained for {classes[0][0][0]} classes, this model predicts "
                f"{classes[0][1][0]} (MODEL.SEM_SEG_HEAD.NUM_CLASSES)"
                if classes else "does not fit this model")  # fmt: skip
        raise CheckpointMismatchError(
            f"Checkpoint '{getattr(self, '_loading', '?')}' {what}: {len(bad)} tensor(s) of "
            f"other shapes: {listing}{more}. Use the config it was trained with; to fine-tune "
            "it on another number of classes or head (those tensors start anew), set "
            "MODEL.SKIP_MISMATCHED_WEIGHTS True."
        )

    def load(self, path, *args, **kwargs):
        self._loading = path
        return super().load(path, *args, **kwargs)

    def _complete_checkpoints(self) -> List[str]:
        """Complete `model_*.pth` files of save_dir, oldest first (model_final last)."""
        if not self.save_dir or not os.path.isdir(self.save_dir):
            return []
        found = [(m.group(1), f) for f in os.listdir(self.save_dir) if (m := _STEP.match(f))]
        order = lambda t: float("inf") if t[0] == "final" else int(t[0])  # noqa: E731
        return [os.path.join(self.save_dir, f) for _, f in sorted(found, key=order)]

    def _last_checkpoint(self):
        """(the checkpoint to resume from or "", why the tag was not used or None)."""
        tag = os.path.join(self.save_dir, "last_checkpoint")
        name = None
        if os.path.isfile(tag):
            with open(tag) as f:
                name = f.read().strip()
            path = os.path.join(self.save_dir, name)
            if name and _STEP.match(os.path.basename(name)) and os.path.isfile(path):
                return path, None
        complete = self._complete_checkpoints()
        if not complete:
            return "", None
        why = ("is missing" if name is None else "is empty" if not name
               else f"names {name!r}, not a complete checkpoint")  # fmt: skip
        return complete[-1], f"{tag} {why}: using the newest complete checkpoint, {complete[-1]}"

    def get_checkpoint_file(self) -> str:
        path, why = self._last_checkpoint()
        if why:
            logger.warning(why)
        return path

    def has_checkpoint(self) -> bool:
        return bool(self._last_checkpoint()[0])  # quiet: get_checkpoint_file warns, once

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if ".partial-" in last_filename_basename:
            return  # `save` tags the complete file once it is renamed
        super().tag_last_checkpoint(last_filename_basename)

    def _load_file(self, filename):
        if filename.endswith((".pkl", ".pyth")):
            data = self._read(filename)
            if filename.endswith(".pyth"):  # pycls, as Detectron2
                sd = data["model_state"]
                sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
                return {"model": sd, "__author__": "pycls", "matching_heuristics": True}
            if "model" in data and "__author__" in data:  # Detectron2 model zoo, as Detectron2
                return data
            data = data.get("blobs", data)  # Caffe2 / Detectron1 model zoo, as Detectron2
            data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
            return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}
        loaded = super()._load_file(filename)  # -> _torch_load; wraps {"model": ...}
        if is_mmseg_checkpoint(loaded.get("model")):
            model_sd, unused = mmseg_to_dfr_state_dict(self.model, loaded["model"]["state_dict"])
            self.logger.info(
                f"Read '{filename}' as an mmseg checkpoint: {len(model_sd) - len(unused)} "
                f"tensors mapped to this model, {len(unused)} without counterpart."
            )
            loaded = {"model": model_sd, "__author__": "mmseg"}
        elif isinstance(loaded.get("model"), dict) and "__author__" not in loaded:
            loaded["model"], renamed = rename_legacy_keys(self.model, loaded["model"])
            if renamed:
                self.logger.info(f"Renamed {renamed} keys of an older DFR checkpoint layout")
        return loaded

    def save(self, name: str, **kwargs):
        """fvcore's save, made atomic: write `<name>.partial-<host>-<pid>.pth` (a name no other
        process writes), then rename it to `<name>.pth` and tag it, so a kill during the write
        never leaves a truncated `<name>.pth` nor a `last_checkpoint` pointing at one. A
        failed write (a full disk) removes the partial file and raises CheckpointWriteError
        naming the cause, the file and the checkpoint `last_checkpoint` still names."""
        if not self.save_dir or not self.save_to_disk:
            return
        last = self.get_checkpoint_file() if self.has_checkpoint() else None
        partial = f"{name}.partial-{socket.gethostname()}-{os.getpid()}"
        try:
            super().save(partial, **kwargs)
        except BaseException as e:
            if os.path.exists(os.path.join(self.save_dir, f"{partial}.pth")):
                os.remove(os.path.join(self.save_dir, f"{partial}.pth"))
            if last:  # point back at the last complete file
                self.tag_last_checkpoint(os.path.basename(last))
            cause = _os_error_in_chain(e) if isinstance(e, Exception) else None
            if cause is not None:
                raise self._write_error(name, cause, last) from e
            raise
        os.replace(os.path.join(self.save_dir, f"{partial}.pth"),
                   os.path.join(self.save_dir, f"{name}.pth"))  # fmt: skip
        self.tag_last_checkpoint(f"{name}.pth")

    def _write_error(self, name: str, cause: OSError, last: Optional[str]):
        path = os.path.join(self.save_dir, f"{name}.pth")
        try:
            free = f"{shutil.disk_usage(self.save_dir).free / 2**20:.0f} MiB free"
        except OSError:
            free = "free space unknown"
        if cause.errno in (errno.ENOSPC, errno.EDQUOT):
            what = (f"no space left on the device of OUTPUT_DIR {self.save_dir} ({free}"
                    f"{', disk quota exceeded' if cause.errno == errno.EDQUOT else ''})")  # fmt: skip
        else:
            what = f"{type(cause).__name__}: {cause} (OUTPUT_DIR {self.save_dir}, {free})"
        kept = (f"last_checkpoint still names {os.path.basename(last)}, a complete checkpoint: "
                f"free some space and continue with --resume" if last else
                "no earlier checkpoint in this folder")  # fmt: skip
        return CheckpointWriteError(
            cause.errno, f"Could not write checkpoint {path}: {what}. The partial file was "
            f"removed; {kept}."
        )

    def _torch_load(self, f):
        return self._read(f)

    def _read(self, f):
        try:
            return load_checkpoint_file(f, allow_unsafe=self.allow_unsafe)
        except UnsafeCheckpointError:
            raise
        except Exception as e:  # torch raises RuntimeError / EOFError / UnpicklingError here
            size = os.path.getsize(f) if os.path.isfile(f) else -1
            raise CheckpointReadError(
                f"Checkpoint '{f}' ({size} bytes) cannot be read: it is truncated or corrupt "
                f"({type(e).__name__}: {e}). If training was interrupted while saving, delete "
                "this file and point 'last_checkpoint' in the output directory to an earlier "
                "model_*.pth (or pass another MODEL.WEIGHTS)."
            ) from e
