"""Load Swin weights from a local file: official Microsoft Swin, mmseg/mmdet, timm, or a
Detectron2 checkpoint of `D2SwinTransformer`. Never downloads.

Files are read without running code: `torch.load(weights_only=True)`, `.pkl` through an
unpickler that only builds numpy arrays and plain containers, `.safetensors` as is. A file that
needs more (pickled classes, functions) raises `UnsafeCheckpointError` naming the file and the
opt-in for trusted files, `MODEL.ALLOW_UNSAFE_CHECKPOINT True` (`allow_unsafe=True` here).

The official and timm layouts are converted by timm's own
`timm.models.swin_transformer.checkpoint_filter_fn` (downsample re-indexing, patch-embed
resampling). mmseg keys are first mapped back to the official layout (inverse of mmseg's
`swin2mmseg.py` converter). Relative-position tables of another window size are resized
bicubically as the official Swin and mmseg loaders do (before timm's filter, which then
leaves them alone).
"""
import logging
import os
import pickle
import re
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F
from timm.models.swin_transformer import checkpoint_filter_fn

__all__ = [
    "UnsafeCheckpointError",
    "UNSAFE_OPT_IN",
    "load_checkpoint_file",
    "read_checkpoint",
    "resize_rel_pos_table",
    "swin_state_dict_from_dict",
    "swin_state_dict_from_file",
    "load_swin_pretrained",
]

logger = logging.getLogger(__name__)

UNSAFE_OPT_IN = "MODEL.ALLOW_UNSAFE_CHECKPOINT True"

_HINT = (
    "Set MODEL.SWIN.PRETRAINED to a local official Swin (.pth), mmseg (.pth) or timm "
    "(.pth/.safetensors) checkpoint, or to '' for random init (e.g. when MODEL.WEIGHTS holds "
    "a full DFR checkpoint)."
)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs arbitrary unpickling (classes, functions) and the user has not opted
    in with MODEL.ALLOW_UNSAFE_CHECKPOINT."""


def _unsafe_error(path: str, detail: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"Checkpoint '{path}' was NOT loaded: it holds more than tensors, numpy arrays and "
        f"plain containers ({detail}), and unpickling it could run arbitrary code. If you "
        f"trust this file, opt in with the config key `{UNSAFE_OPT_IN}` (e.g. on the "
        "command line); better, re-save only its weights once from a trusted environment "
        "(torch.save(state_dict, 'weights.pth')) and load that file."
    )


def _weights_only_detail(e: Exception):
    """The refused global named in torch's weights_only error, or None when `e` is not a
    weights_only refusal (e.g. a truncated file)."""
    msg = str(e)
    if not isinstance(e, pickle.UnpicklingError) or "weights only" not in msg.lower():
        return None
    for line in msg.splitlines():
        if re.search(r"unsupported (global|operand)|allowed global|GLOBAL ", line, re.I):
            return line.split(". Please")[0].replace("WeightsUnpickler error: ", "").strip()
    return None


# What a Detectron2 / Caffe2 model-zoo .pkl needs: dicts of numpy arrays.
_PKL_ALLOWED = {
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # bytes written by Python 2 / protocol 2
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that builds only numpy arrays, dtypes and plain containers."""

    def find_class(self, module, name):
        if (module, name) in _PKL_ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not an allowed global")


def load_checkpoint_file(path: str, allow_unsafe: bool = False):
    """Deserialise a .pth/.pt/.bin/.pyth (torch.load, weights_only=True), .pkl (numpy arrays
    and containers only) or .safetensors file without running code from it.

    A file that needs more raises UnsafeCheckpointError naming `path` and the opt-in; with
    `allow_unsafe` (MODEL.ALLOW_UNSAFE_CHECKPOINT) it is then unpickled in full, with a
    warning. Other read errors (missing, truncated, corrupt) propagate unchanged."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    if path.endswith(".pkl"):
        with open(path, "rb") as f:
            try:
                return _ArrayUnpickler(f, encoding="latin1").load()
            except pickle.UnpicklingError as e:
                if "not an allowed global" not in str(e):
                    raise
                if not allow_unsafe:
                    raise _unsafe_error(path, str(e)) from None
                detail = str(e)
            f.seek(0)
            logger.warning(f"Unpickling '{path}' in full ({detail}): {UNSAFE_OPT_IN} is set.")
            return pickle.load(f, encoding="latin1")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _weights_only_detail(e)
        if detail is None:
            raise
        if not allow_unsafe:
            raise _unsafe_error(path, detail) from None
    logger.warning(f"Loading '{path}' with weights_only=False ({detail}): {UNSAFE_OPT_IN} is set.")
    return torch.load(path, map_location="cpu", weights_only=False)


def read_checkpoint(path: str, allow_unsafe: bool = False) -> Dict[str, torch.Tensor]:
    """Read a .pth/.pt/.bin, .pkl or .safetensors file into a flat {key: tensor} dict,
    unwrapping "model" / "state_dict" / "module" containers (see `load_checkpoint_file`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Swin checkpoint not found: {path!r}. {_HINT}")
    obj = load_checkpoint_file(path, allow_unsafe)
    for key in ("model", "state_dict", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path!r} does not hold a state dict ({type(obj).__name__}). {_HINT}")
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            v = torch.from_numpy(v)
        if isinstance(v, torch.Tensor):
            out[k[7:] if k.startswith("module.") else k] = v
    return out


def resize_rel_pos_table(table: torch.Tensor, num_rows: int) -> torch.Tensor:
    """(L1, nH) relative-position bias table -> (L2, nH), L = (2 * window - 1)^2, resized
    bicubically on its (S, S) grid as the official Swin and mmseg loaders do:
    interpolate(table.T.view(1, nH, S1, S1), (S2, S2), "bicubic"), align_corners False."""
    l1, nh = table.shape
    s1, s2 = int(round(l1**0.5)), int(round(num_rows**0.5))
    assert s1 * s1 == l1 and s2 * s2 == num_rows, (tuple(table.shape), num_rows)
    t = table.float().permute(1, 0).reshape(1, nh, s1, s1)
    t = F.interpolate(t, size=(s2, s2), mode="bicubic", align_corners=False)
    return t.reshape(nh, num_rows).permute(1, 0).contiguous().to(table.dtype)


def mmseg_key_to_official(k: str) -> str:
    """mmseg Swin parameter name -> official Swin name (stages -> layers, w_msa / ffn /
    projection names); PatchMerging stays at the end of stage i, as in both."""
    if k.startswith("stages."):
        k = "layers." + k[len("stages.") :]
        k = k.replace("attn.w_msa.", "attn.").replace("ffn.layers.0.0.", "mlp.fc1.")
        return k.replace("ffn.layers.1.", "mlp.fc2.")
    return k.replace("patch_embed.projection.", "patch_embed.proj.")


def _mmseg_to_official(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Inverse of mmseg's swin2mmseg: stages->layers, w_msa/ffn names, unfold channel order."""

    def reduction(x):  # (O, 4C) unfold order -> official [x0, x1, x2, x3] order
        o, i = x.shape
        return x.reshape(o, i // 4, 4).transpose(1, 2)[:, [0, 2, 1, 3], :].reshape(o, i)

    def norm(x):
        i = x.shape[0]
        return x.reshape(i // 4, 4).transpose(0, 1)[[0, 2, 1, 3], :].reshape(i)

    out = {}
    for k, v in sd.items():
        k = mmseg_key_to_official(k)
        if ".downsample.reduction." in k:
            v = reduction(v)
        elif ".downsample.norm." in k:
            v = norm(v)
        out[k] = v
    return out


class _FilterTarget:
    """What `checkpoint_filter_fn` needs of a model, mapped onto timm's features_only module
    names (layers.i -> layers_i)."""

    def __init__(self, swin):
        self.swin = swin
        self.patch_embed = swin.patch_embed

    def get_submodule(self, name):
        return self.swin.get_submodule(re.sub(r"^layers\.(\d+)", r"layers_\1", name))


def _resize_rel_pos_tables(sd: Dict[str, torch.Tensor], target: _FilterTarget):
    """Resize, in place, every relative-position table whose window differs from the model's
    (same number of heads) with `resize_rel_pos_table`. Returns the resized keys."""
    suffix = ".relative_position_bias_table"
    resized = []
    for k, v in sd.items():
        if not k.endswith(suffix) or v.dim() != 2:
            continue
        try:
            want = target.get_submodule(k[: -len(suffix)]).relative_position_bias_table.shape
        except AttributeError:
            continue
        if v.shape[1] == want[1] and v.shape[0] != want[0]:
            sd[k] = resize_rel_pos_table(v, want[0])
            resized.append(k)
    return resized


def swin_state_dict_from_dict(backbone, sd: Dict[str, torch.Tensor]):
    """{key: tensor} in any supported layout -> ({backbone key: tensor}, format) for
    `backbone` (a D2SwinTransformer)."""
    if any(k.startswith("backbone.") for k in sd):  # mmseg/mmdet/Detectron2 full models
        sd = {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}
    out_norms = {}
    if any(k.startswith("swin.") for k in sd):
        fmt = "detectron2"
        out_norms = {k: v for k, v in sd.items() if k.startswith("out_norms.")}
        sd = {re.sub(r"^layers_(\d+)", r"layers.\1", k[5:]): v for k, v in sd.items()
              if k.startswith("swin.")}
    elif any(k.startswith("stages.") or k.startswith("patch_embed.projection") for k in sd):
        fmt = "mmseg"
        for k, v in sd.items():  # mmseg's per-output norms norm0..norm3
            m = re.match(r"^norm(\d+)\.(weight|bias)$", k)
            if m:
                out_norms[f"out_norms.{m.group(1)}.{m.group(2)}"] = v
        sd = _mmseg_to_official({k: v for k, v in sd.items() if not re.match(r"^norm\d+\.", k)})
    else:
        fmt = None
    # Layout: official Swin keeps PatchMerging at the END of stage i (layers.0.downsample);
    # timm at the START of stage i+1 (layers.1.downsample). timm's filter decides by the
    # presence of "head.fc.weight", which headless checkpoints lack, so say it explicitly.
    official = any(k.startswith("layers.0.downsample.") for k in sd)
    if fmt is None:
        swin_like = any(k.startswith(("layers.", "patch_embed.")) for k in sd)
        fmt = ("official" if official else "timm") if swin_like else "unrecognised"
    sd = dict(sd)
    target = _FilterTarget(backbone.swin)
    resized = _resize_rel_pos_tables(sd, target)
    if resized:
        logger.info(f"Resized {len(resized)} relative-position tables bicubically to the "
                    "model's window size.")
    marker = None
    if not official and "head.fc.weight" not in sd:
        marker = sd["head.fc.weight"] = torch.zeros(1)
    elif official and "head.fc.weight" in sd:
        sd["head.weight"] = sd.pop("head.fc.weight")
    filtered = checkpoint_filter_fn(sd, target)
    if marker is not None:
        filtered.pop("head.fc.weight", None)
    out = {"swin." + re.sub(r"^layers\.(\d+)", r"layers_\1", k): v for k, v in filtered.items()}
    out.update(out_norms)
    return out, fmt


def swin_state_dict_from_file(backbone, path: str, allow_unsafe: bool = False):
    """Return ({backbone key: tensor}, format) for `backbone` (a D2SwinTransformer) from `path`."""
    return swin_state_dict_from_dict(backbone, read_checkpoint(path, allow_unsafe))


def load_swin_pretrained(backbone, path: str, allow_unsafe: bool = False):
    """Load `path` into `backbone`; log missing/unexpected keys; return a report dict.

    Raises FileNotFoundError for a missing file, ValueError when no key matches,
    UnsafeCheckpointError when the file needs unpickling and `allow_unsafe` is False.
    """
    sd, fmt = swin_state_dict_from_file(backbone, path, allow_unsafe)
    own = backbone.state_dict()
    matched, mismatched, unexpected = {}, [], []
    for k, v in sd.items():
        if k not in own:
            unexpected.append(k)
        elif own[k].shape != v.shape:
            mismatched.append(f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}")
        else:
            matched[k] = v
    if not matched:
        raise ValueError(
            f"No key of {path!r} (read as {fmt} format, {len(sd)} keys) matches the Swin backbone "
            f"({len(own)} keys; {len(mismatched)} with the wrong shape). Wrong file or wrong "
            f"MODEL.SWIN.SIZE? {_HINT}"
        )
    backbone.load_state_dict(matched, strict=False)
    missing = [k for k in own if k not in matched]
    logger.info(f"Loaded {len(matched)}/{len(own)} Swin tensors from {path} ({fmt} format).")
    if missing:
        logger.warning(f"Swin keys missing from the checkpoint (left at init): {missing}")
    if unexpected:
        logger.info(f"Checkpoint keys not used by the backbone: {unexpected}")
    if mismatched:
        logger.warning(f"Checkpoint keys with a wrong shape (skipped): {mismatched}")
    return {
        "format": fmt,
        "matched": sorted(matched),
        "missing": missing,
        "unexpected": unexpected,
        "mismatched": mismatched,
    }
