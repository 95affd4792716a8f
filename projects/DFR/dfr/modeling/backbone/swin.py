"""Swin Transformer backbone: a thin Detectron2 adapter over timm (`features_only`).

Outputs `res2..res5` as NCHW maps at strides 4/8/16/32 (the DFR paper (arXiv:2108.01296), Fig. 2).
"""
import logging
import types
from typing import Dict, List, Sequence

import timm
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import BACKBONE_REGISTRY, Backbone, ShapeSpec
from timm.models.swin_transformer import window_partition, window_reverse
from torch import nn

from .weights import load_swin_pretrained

__all__ = ["D2SwinTransformer", "SWIN_SIZES", "swin_shape", "TIMM_TESTED", "TIMM_ATTN_SIGNATURE"]

logger = logging.getLogger(__name__)

# Why an override of a private method: timm offers no hook for the order of padding and
# shifting inside a Swin block, and its order (shift, then pad) differs from the official Swin /
# mmseg one on maps that are not window multiples (`_padded_shifted_window_attention`). The
# override is bound to timm's `SwinTransformerBlock._attn`, whose source is identical in every
# release of TIMM_TESTED (setup.py admits only those): tests/test_upstream_overrides.py fails,
# with the diff, when the installed timm's `_attn` differs from the copy in
# tests/fixtures/upstream/, and tests/modeling/test_backbone.py when the parameters of the timm helpers
# the override calls differ from those below.
TIMM_TESTED = ("1.0.15", "1.0.31")
TIMM_ATTN_SIGNATURE = {
    "SwinTransformerBlock._attn": ("self", "x"),
    "SwinTransformerBlock.get_attn_mask": ("self", "x"),
    "window_partition": ("x", "window_size"),
    "window_reverse": ("windows", "window_size", "H", "W"),
}

# size -> (timm variant used for its defaults, embed_dim, depths, num_heads)
SWIN_SIZES = {
    "T": ("swin_tiny_patch4_window7_224", 96, (2, 2, 6, 2), (3, 6, 12, 24)),
    "S": ("swin_small_patch4_window7_224", 96, (2, 2, 18, 2), (3, 6, 12, 24)),
    "B": ("swin_base_patch4_window12_384", 128, (2, 2, 18, 2), (4, 8, 16, 32)),
    "L": ("swin_large_patch4_window12_384", 192, (2, 2, 18, 2), (6, 12, 24, 48)),
}


def _padded_shifted_window_attention(self, x: torch.Tensor) -> torch.Tensor:
    """(S)W-MSA in the official Swin / mmseg order: pad the map to a window multiple, THEN
    shift, so that the shifted-window mask isolates the wrapped-around rows and columns.
    timm shifts first and pads after, which groups e.g. the bottom rows with wrapped top rows
    when H % window > shift (timm issue #2438). Bound to every timm `SwinTransformerBlock` as
    its private `_attn`, whose contract (NHWC in, NHWC out, after norm1, before the residual)
    was checked against the timm releases of `TIMM_TESTED` (`__init__` fails loudly if a timm
    release drops the method). The shifted-window mask is always built for the padded map
    (timm's `_attn` does so only with `dynamic_mask`, else it reuses the mask of its fixed
    input resolution), so any input size works. x: (B, H, W, C) -> (B, H, W, C)."""
    b, h, w, c = x.shape
    wh, ww = self.window_size
    x = F.pad(x, (0, 0, 0, (ww - w % ww) % ww, 0, (wh - h % wh) % wh))
    hp, wp = x.shape[1:3]
    shift = tuple(self.shift_size)
    if any(shift):
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    windows = window_partition(x, self.window_size).view(-1, self.window_area, c)
    mask = self.get_attn_mask(x) if any(shift) else None  # regions of the padded map
    windows = self.attn(windows, mask=mask).view(-1, wh, ww, c)
    x = window_reverse(windows, self.window_size, hp, wp)
    if any(shift):
        x = torch.roll(x, shifts=shift, dims=(1, 2))
    return x[:, :h, :w, :].contiguous()


def swin_shape(size: str, embed_dim: int, depths: tuple, num_heads: tuple):
    """MODEL.SWIN.{SIZE, EMBED_DIM, DEPTHS, NUM_HEADS} -> (timm variant, embed_dim, depths,
    num_heads). "custom" takes the three keys (all required); T / S / B / L take the size's
    values, and a key set to something else is an error naming it (never silently ignored)."""
    given = {"EMBED_DIM": embed_dim or None, "DEPTHS": tuple(depths) or None,
             "NUM_HEADS": tuple(num_heads) or None}  # fmt: skip
    if size.lower() == "custom":
        missing = [f"MODEL.SWIN.{k}" for k, v in given.items() if v is None]
        if missing:
            raise ValueError(f"MODEL.SWIN.SIZE 'custom' needs {', '.join(missing)}")
        return ("swin_tiny_patch4_window7_224", embed_dim, tuple(depths), tuple(num_heads))
    if size.upper() not in SWIN_SIZES:
        raise ValueError(f"MODEL.SWIN.SIZE={size!r}: use T, S, B, L or custom")
    variant, *preset = SWIN_SIZES[size.upper()]
    clash = [f"MODEL.SWIN.{k}={list(v) if isinstance(v, tuple) else v} (Swin-{size.upper()}: "
             f"{list(p) if isinstance(p, tuple) else p})"
             for (k, v), p in zip(given.items(), preset) if v is not None and v != p]  # fmt: skip
    if clash:
        raise ValueError(f"{'; '.join(clash)}: contradicts MODEL.SWIN.SIZE {size!r}; set "
                         "MODEL.SWIN.SIZE to 'custom' to build this shape")  # fmt: skip
    return (variant, *preset)


@BACKBONE_REGISTRY.register()
class D2SwinTransformer(Backbone):
    """Swin from timm; any input size, computing the official Swin / mmseg function
    (no whole-image padding; level i has size ceil(H / stride_i) x ceil(W / stride_i)).

    Windows are always partitioned and shifted (`always_partition=True`) whatever the map size,
    and each block pads its map to a window multiple before shifting, as the official Swin
    segmentation backbone does (`_padded_shifted_window_attention`; parameters are timm's).
    """

    @configurable
    def __init__(
        self,
        *,
        embed_dim: int,
        depths: Sequence[int],
        num_heads: Sequence[int],
        window_size: int = 7,
        patch_size: int = 4,
        img_size: int = 224,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        use_checkpoint: bool = False,
        frozen_stages: int = -1,
        out_norm: bool = True,
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        pretrained: str = "",
        variant: str = "swin_tiny_patch4_window7_224",
        allow_unsafe_checkpoint: bool = False,
    ):
        """
        Args:
            embed_dim, depths, num_heads: the Swin size (T/S/B/L or custom).
            window_size: attention window (12 for the paper's Swin-B at 384).
            patch_size: patch-embedding stride (4); the input is padded to a multiple of it.
            img_size: size the timm model is created for (only sets its defaults; any input
                size works).
            mlp_ratio, drop_path_rate: as timm / the official Swin.
            use_checkpoint: recompute each block's activations in the backward pass
                (timm's per-stage `grad_checkpointing`): less memory, same gradients.
            frozen_stages: mmseg's `frozen_stages` (-1: none; k >= 0: patch embedding, then
                k stages with the following patch merging and their output norms).
            out_norm: a LayerNorm on each output level (the Swin segmentation backbone).
            out_features: levels returned, of res2..res5.
            pretrained: local checkpoint (official, mmseg, timm or Detectron2); "" = random.
            variant: timm model whose defaults are used.
            allow_unsafe_checkpoint: let `pretrained` unpickle arbitrary objects (trusted
                files only; MODEL.ALLOW_UNSAFE_CHECKPOINT).
        """
        super().__init__()
        self.swin = timm.create_model(
            variant,
            pretrained=False,
            features_only=True,
            img_size=img_size,
            strict_img_size=False,
            always_partition=True,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            drop_path_rate=drop_path_rate,
        )
        for stage in self._stage_modules_of(self.swin):
            for blk in stage.blocks:
                if not callable(getattr(blk, "_attn", None)):
                    raise RuntimeError(
                        f"timm {timm.__version__}: SwinTransformerBlock has no _attn method; "
                        f"DFR's Swin adapter was checked against timm {', '.join(TIMM_TESTED)}"
                    )
                blk._attn = types.MethodType(_padded_shifted_window_attention, blk)
        for stage in self._stage_modules_of(self.swin):
            stage.grad_checkpointing = use_checkpoint
        channels = self.swin.feature_info.channels()
        strides = self.swin.feature_info.reduction()
        names = [f"res{i + 2}" for i in range(len(channels))]
        for name in out_features:
            assert name in names, f"unknown Swin output {name!r}; choose from {names}"
        self._out_features = list(out_features)
        self._out_feature_channels = dict(zip(names, channels))
        self._out_feature_strides = dict(zip(names, strides))
        self._all_names = names
        self._patch_size = patch_size
        self.out_norms = (
            nn.ModuleList([nn.LayerNorm(c) for c in channels]) if out_norm else None
        )
        self.frozen_stages = frozen_stages
        if pretrained:
            load_swin_pretrained(self, pretrained, allow_unsafe=allow_unsafe_checkpoint)
        self._freeze_stages()

    @classmethod
    def from_config(cls, cfg, input_shape=None):
        s = cfg.MODEL.SWIN
        variant, embed_dim, depths, heads = swin_shape(
            s.SIZE, s.EMBED_DIM, tuple(s.DEPTHS), tuple(s.NUM_HEADS)
        )
        return {
            "embed_dim": embed_dim,
            "depths": list(depths),
            "num_heads": list(heads),
            "window_size": s.WINDOW_SIZE,
            "patch_size": s.PATCH_SIZE,
            "img_size": s.PRETRAIN_IMG_SIZE,
            "mlp_ratio": s.MLP_RATIO,
            "drop_path_rate": s.DROP_PATH_RATE,
            "use_checkpoint": s.USE_CHECKPOINT,
            "frozen_stages": s.FROZEN_STAGES,
            "out_norm": s.OUT_NORM,
            "out_features": list(s.OUT_FEATURES),
            "pretrained": s.PRETRAINED,
            "variant": variant,
            "allow_unsafe_checkpoint": cfg.MODEL.ALLOW_UNSAFE_CHECKPOINT,
        }

    @property
    def size_divisibility(self) -> int:
        """0: any input size works; the backbone pads inside (see `forward`)."""
        return 0

    @staticmethod
    def _stage_modules_of(swin) -> List[nn.Module]:
        return [m for n, m in swin.named_children() if n.startswith("layers_")]

    def _stage_modules(self) -> List[nn.Module]:
        return self._stage_modules_of(self.swin)

    def _freeze_stages(self):
        """mmseg's `frozen_stages` = k: k >= 0 freezes the patch embedding (and an absolute
        position embedding); each stage i < k is frozen with its output norm and its patch
        merging, which mmseg puts at the END of stage i and timm at the START of stage i + 1
        (`layers_{i+1}.downsample`). Frozen modules stay in eval mode."""
        if self.frozen_stages < 0:
            return
        stages = self._stage_modules()
        frozen = [self.swin.patch_embed]
        for i in range(min(self.frozen_stages, len(stages))):
            frozen.append(stages[i])
            if i + 1 < len(stages):
                frozen.append(stages[i + 1].downsample)
            if self.out_norms is not None:
                frozen.append(self.out_norms[i])
        ape = getattr(self.swin, "absolute_pos_embed", None)
        if isinstance(ape, nn.Parameter):
            ape.requires_grad = False
        for m in frozen:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def drop_output_norms(self, names: Sequence[str]):
        """Replace the output LayerNorm of `names` by Identity: outputs a model reads only for
        their size (the fused map of Table 6 rows without res2) carry no parameter that
        would go without gradient under DistributedDataParallel."""
        if self.out_norms is None:
            return
        for name in names:
            self.out_norms[self._all_names.index(name)] = nn.Identity()

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """x: (B, 3, H, W) normalised image, any size -> {"res2": (B, C2, ceil(H/4), ceil(W/4)),
        ...}. Padding happens only where Swin needs it, as in the official Swin / mmseg
        backbone: the input to a multiple of the patch size (bottom/right, zeros), each block's
        map to a window multiple, odd maps before patch merging (timm's PatchMerging)."""
        h, w = x.shape[-2:]
        p = self._patch_size
        ph, pw = (p - h % p) % p, (p - w % p) % p
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        outs = {}
        for i, (name, y) in enumerate(zip(self._all_names, self.swin(x))):
            if name not in self._out_features:
                continue
            if self.out_norms is not None:
                y = self.out_norms[i](y)  # NHWC: LayerNorm over channels
            outs[name] = y.permute(0, 3, 1, 2).contiguous()
        return outs

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }
