"""Load Swin weights from a local file: official Microsoft Swin, mmseg/mmdet, timm, or a
Detectron2 checkpoint of `D2SwinTransformer`. Never downloads.

The official and timm layouts are converted by timm's own
`timm.models.swin_transformer.checkpoint_filter_fn` (downsample re-indexing, relative-position
tables resized when window sizes differ, patch-embed resampling). mmseg keys are first mapped
back to the official layout (inverse of mmseg's `swin2mmseg.py` converter).
"""
import logging
import os
import pickle
import re
from typing import Dict

import numpy as np
import torch
from timm.models.swin_transformer import checkpoint_filter_fn

__all__ = ["read_checkpoint", "swin_state_dict_from_file", "load_swin_pretrained"]

logger = logging.getLogger(__name__)

_HINT = (
    "Set MODEL.SWIN.PRETRAINED to a local official Swin (.pth), mmseg (.pth) or timm "
    "(.pth/.safetensors) checkpoint, or to '' for random init (e.g. when MODEL.WEIGHTS holds "
    "a full DFR checkpoint)."
)


def read_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """Read a .pth/.pt/.bin, .pkl or .safetensors file into a flat {key: tensor} dict,
    unwrapping "model" / "state_dict" / "module" containers."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Swin checkpoint not found: {path!r}. {_HINT}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        obj = load_file(path, device="cpu")
    elif path.endswith(".pkl"):
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="latin1")
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # trusted local file written with non-tensor objects (e.g. Namespace)
            obj = torch.load(path, map_location="cpu", weights_only=False)
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
        if k.startswith("stages."):
            k = "layers." + k[len("stages.") :]
            k = k.replace("attn.w_msa.", "attn.").replace("ffn.layers.0.0.", "mlp.fc1.")
            k = k.replace("ffn.layers.1.", "mlp.fc2.")
            if ".downsample.reduction." in k:
                v = reduction(v)
            elif ".downsample.norm." in k:
                v = norm(v)
        elif k.startswith("patch_embed.projection."):
            k = k.replace("patch_embed.projection.", "patch_embed.proj.")
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


def swin_state_dict_from_file(backbone, path: str):
    """Return ({backbone key: tensor}, format) for `backbone` (a D2SwinTransformer) from `path`."""
    sd = read_checkpoint(path)
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
    marker = None
    if not official and "head.fc.weight" not in sd:
        marker = sd["head.fc.weight"] = torch.zeros(1)
    elif official and "head.fc.weight" in sd:
        sd["head.weight"] = sd.pop("head.fc.weight")
    filtered = checkpoint_filter_fn(dict(sd), _FilterTarget(backbone.swin))
    if marker is not None:
        filtered.pop("head.fc.weight", None)
    out = {"swin." + re.sub(r"^layers\.(\d+)", r"layers_\1", k): v for k, v in filtered.items()}
    out.update(out_norms)
    return out, fmt


def load_swin_pretrained(backbone, path: str):
    """Load `path` into `backbone`; log missing/unexpected keys; return a report dict.

    Raises FileNotFoundError for a missing file, ValueError when no key matches.
    """
    sd, fmt = swin_state_dict_from_file(backbone, path)
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
