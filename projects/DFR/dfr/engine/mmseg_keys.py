"""Key names of full-model weights: an mmseg UperNet-Swin EncoderDecoder (mmseg Swin,
UPerHead, FCNHead) -> DFR's modules, and older DFR names -> today's. Used by the checkpointer
(dfr/engine/checkpoint.py) and tools/check_mmseg_parity.py."""
import re
from typing import Dict, List, Optional

import torch

from ..modeling.backbone.weights import mmseg_key_to_official, swin_state_dict_from_dict

__all__ = ["is_mmseg_checkpoint", "mmseg_param_name_map", "mmseg_to_dfr_state_dict",
           "rename_legacy_keys"]


# mmseg UPerHead / FCNHead module -> ours (dfr/modeling/heads). "{level}" = the fusion's
# input level of mmseg's index i (in_index order, e.g. "res2"); "{i}" = i itself. The first
# candidate present in the model's state dict wins, so a ModuleList or a ModuleDict by level
# name both match, and levels the model does not build are reported as unused.
_HEAD_MODULES = [
    (r"decode_head\.psp_modules\.(\d+)\.1\.", ["fusion.ppm.{i}.1."]),
    (r"decode_head\.bottleneck\.", ["fusion.ppm_bottleneck."]),
    (r"decode_head\.lateral_convs\.(\d+)\.", ["fusion.lateral_convs.{level}.",
                                               "fusion.lateral_convs.{i}."]),
    (r"decode_head\.fpn_convs\.(\d+)\.", ["fusion.fpn_convs.{level}.", "fusion.fpn_convs.{i}."]),
    (r"decode_head\.fpn_bottleneck\.", ["sem_seg_head.conv."]),
    (r"decode_head\.conv_seg\.", ["sem_seg_head.predictor."]),
    (r"auxiliary_head\.convs\.0\.", ["aux_head.conv."]),
    (r"auxiliary_head\.conv_seg\.", ["aux_head.predictor."]),
]
# mmcv ConvModule (conv, bn) -> Detectron2 Conv2d with norm (weight, norm.*)
_CONV_MODULE_PARAMS = [(r"^conv\.", ""), (r"^bn\.", "norm.")]


def is_mmseg_checkpoint(obj) -> bool:
    """An mmseg / mmengine checkpoint: {"state_dict": {...}, "meta": ..., ...} whose keys are
    those of an EncoderDecoder (backbone.*, decode_head.*, auxiliary_head.*) or of an mmseg
    Swin alone (stages.*, patch_embed.projection.*)."""
    sd = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        return False
    prefixes = ("backbone.", "decode_head.", "auxiliary_head.", "stages.", "patch_embed.projection")
    return any(isinstance(k, str) and k.startswith(prefixes) for k in sd)


def _head_key(key: str, own: Dict[str, torch.Tensor], levels: List[str]) -> Optional[str]:
    """Our key for mmseg head key `key`, or None when the model has no such tensor."""
    for pattern, targets in _HEAD_MODULES:
        m = re.match(pattern, key)
        if not m:
            continue
        rest = key[m.end():]
        if not pattern.endswith(r"conv_seg\."):
            for p, r in _CONV_MODULE_PARAMS:
                rest = re.sub(p, r, rest)
        i = int(m.group(1)) if m.groups() else 0
        level = levels[i] if i < len(levels) else f"res{i + 2}"
        for t in targets:
            name = t.format(i=i, level=level) + rest
            if name in own:
                return name
        return None
    return None


def _mmseg_backbone_name(key: str) -> str:
    """mmseg Swin parameter name (without "backbone.") -> ours (without "backbone."): the
    converter's name rules (`mmseg_key_to_official`), then timm's layout (layers.i ->
    swin.layers_i; PatchMerging of stage i -> the start of stage i+1), norm{i} -> out_norms."""
    m = re.match(r"^norm(\d+)\.(.*)$", key)
    if m:
        return f"out_norms.{m.group(1)}.{m.group(2)}"
    key = mmseg_key_to_official(key)
    m = re.match(r"^layers\.(\d+)\.(.*)$", key)
    if m:
        i, rest = int(m.group(1)), m.group(2)
        return f"swin.layers_{i + 1 if rest.startswith('downsample.') else i}.{rest}"
    return "swin." + key


def mmseg_param_name_map(model: torch.nn.Module, names) -> Dict[str, Optional[str]]:
    """{mmseg EncoderDecoder parameter / buffer name: the name of the same tensor in `model`,
    or None} -- the names `mmseg_to_dfr_state_dict` loads into (e.g. to compare optimizer
    groups parameter by parameter)."""
    own = model.state_dict()
    levels = list(getattr(getattr(model, "fusion", None), "in_features", []))
    out = {}
    for k in names:
        if k.startswith("backbone."):
            name = "backbone." + _mmseg_backbone_name(k[len("backbone."):])
            out[k] = name if name in own else None
        else:
            out[k] = _head_key(k, own, levels)
    return out


def mmseg_to_dfr_state_dict(model: torch.nn.Module, sd: Dict[str, torch.Tensor]):
    """An mmseg UperNet-Swin state dict (EncoderDecoder keys: backbone.* in mmseg's Swin
    naming, decode_head.* = UPerHead, auxiliary_head.* = FCNHead) -> (state dict in `model`'s
    names, list of mmseg keys that have no counterpart in `model`).

    The backbone goes through the Swin converter (`swin_state_dict_from_dict`: mmseg -> timm
    names, merging order, bicubic resize of relative-position tables); the heads through
    `_HEAD_MODULES`, reading the target names from `model.state_dict()`. Unused keys are kept
    under their mmseg names so that the checkpointer logs them as unexpected."""
    own = model.state_dict()
    sd = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}
    if not any(k.startswith(("backbone.", "decode_head.", "auxiliary_head.")) for k in sd):
        sd = {"backbone." + k: v for k, v in sd.items()}  # an mmseg Swin on its own
    out, unused = {}, []
    backbone_sd = {k: v for k, v in sd.items() if k.startswith("backbone.")}
    if backbone_sd:
        backbone = getattr(model, "backbone", None)
        if backbone is not None and hasattr(backbone, "swin"):
            converted, _ = swin_state_dict_from_dict(backbone, backbone_sd)
            out.update({"backbone." + k: v for k, v in converted.items()})
        else:
            out.update(backbone_sd)
    fusion = getattr(model, "fusion", None)
    levels = list(getattr(fusion, "in_features", []))
    for k, v in sd.items():
        if k.startswith("backbone."):
            continue
        name = _head_key(k, own, levels)
        if name is None:
            unused.append(k)
            out[k] = v
        else:
            out[name] = v
    unused += [k for k in out if k.startswith("backbone.") and k not in own]
    return out, unused


# Names of this project's modules before the mmseg-parity restructuring (heads by index, the
# scene head's conv called "bottleneck") -> now; applied to checkpoints this project saved.
_LEGACY_KEYS = [
    (r"^sem_seg_head\.bottleneck\.", lambda m, levels: "sem_seg_head.conv."),
    (r"^fusion\.(lateral_convs|fpn_convs)\.(\d+)\.",
     lambda m, levels: f"fusion.{m.group(1)}.{levels[int(m.group(2))]}."),
]


def rename_legacy_keys(model: torch.nn.Module, sd: Dict[str, torch.Tensor]):
    """Rename keys of older DFR checkpoints (see `_LEGACY_KEYS`) that this model does not
    have to the names it has; returns (state dict, number of renamed keys)."""
    own = model.state_dict()
    levels = list(getattr(getattr(model, "fusion", None), "in_features", []))
    out, renamed = {}, 0
    for k, v in sd.items():
        if k not in own:
            for pattern, target in _LEGACY_KEYS:
                m = re.match(pattern, k)
                if m and (pattern.startswith("^sem") or int(m.group(2)) < len(levels)):
                    new = target(m, levels) + k[m.end():]
                    if new in own:
                        k, renamed = new, renamed + 1
                    break
        out[k] = v
    return out, renamed
