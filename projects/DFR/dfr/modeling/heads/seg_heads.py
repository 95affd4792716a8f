"""Per-pixel classification heads: the UperNet scene head on the fused map and the auxiliary
FCN head on one backbone level (Swin UperNet recipe, as mmseg's `UPerHead.fpn_bottleneck +
cls_seg` and `FCNHead(num_convs=1)`). Both are a 3x3 conv (norm + ReLU) -> dropout -> 1x1
classifier: `ConvSegHead`.

The semantic head is chosen by MODEL.SEM_SEG_HEAD.NAME from `DFR_SEM_SEG_HEADS_REGISTRY` and
built by `build_semantic_head`. It is not one of Detectron2's SEM_SEG_HEADS_REGISTRY heads:
those take `(features, targets)` and return `(results, losses)` with their own loss, whereas
here the head maps the fused map to logits and the criterion computes Lpce and Ldfr from the
same logits (Eq. 1). The auxiliary head has one implementation and is built directly."""
from typing import Dict

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.utils.registry import Registry
from torch import nn

__all__ = [
    "ConvSegHead",
    "DFR_SEM_SEG_HEADS_REGISTRY",
    "FCNAuxHead",
    "UperNetHead",
    "build_semantic_head",
    "conv_bn_relu",
]

DFR_SEM_SEG_HEADS_REGISTRY = Registry("DFR_SEM_SEG_HEADS")
DFR_SEM_SEG_HEADS_REGISTRY.__doc__ = """
Semantic heads of the DFR segmentor, named by MODEL.SEM_SEG_HEAD.NAME: `cls(cfg, input_shape)`
with `input_shape` the fused map's ShapeSpec; `forward(fused) -> logits (B, K, h, w)`.
"""


def build_semantic_head(cfg, input_shape: ShapeSpec) -> nn.Module:
    """The semantic head named by MODEL.SEM_SEG_HEAD.NAME, on a fused map of `input_shape`."""
    return DFR_SEM_SEG_HEADS_REGISTRY.get(cfg.MODEL.SEM_SEG_HEAD.NAME)(cfg, input_shape)


def conv_bn_relu(in_ch: int, out_ch: int, k: int, norm: str) -> Conv2d:
    """mmcv ConvModule equivalent: conv (no bias when normed) -> norm -> ReLU, MSRA init."""
    conv = Conv2d(
        in_ch, out_ch, kernel_size=k, padding=k // 2, bias=not norm,
        norm=get_norm(norm, out_ch), activation=F.relu,
    )  # fmt: skip
    weight_init.c2_msra_fill(conv)
    return conv


class ConvSegHead(nn.Module):
    """3x3 conv (norm + ReLU) -> dropout -> 1x1 classifier (normal init, std 0.01, as mmseg).
    (B, C_in, h, w) -> logits (B, num_classes, h, w)."""

    def __init__(self, in_channels: int, num_classes: int, channels: int, dropout: float,
                 norm: str):  # fmt: skip
        """
        Args:
            in_channels: channels of the input map.
            num_classes: K, channels of the logits.
            channels: width of the 3x3 conv.
            dropout: Dropout2d probability before the classifier (0: none).
            norm: Detectron2 norm name of the 3x3 conv ("BN", "SyncBN", "naiveSyncBN", "").
        """
        super().__init__()
        self.conv = conv_bn_relu(in_channels, channels, 3, norm)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.predictor = nn.Conv2d(channels, num_classes, kernel_size=1)
        nn.init.normal_(self.predictor.weight, std=0.01)
        nn.init.zeros_(self.predictor.bias)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.dropout(self.conv(x)))


@DFR_SEM_SEG_HEADS_REGISTRY.register()
class UperNetHead(ConvSegHead):
    """UperNet scene head on the fused map (mmseg `fpn_bottleneck` + `conv_seg`)."""

    @configurable
    def __init__(self, *, in_channels: int, num_classes: int, channels: int = 512,
                 dropout: float = 0.1, norm: str = "BN"):  # fmt: skip
        """Args: as `ConvSegHead`; `in_channels` is the fused map's (2048 for Swin-B)."""
        super().__init__(in_channels, num_classes, channels, dropout, norm)

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        return {
            "in_channels": input_shape.channels,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "channels": cfg.MODEL.UPERNET.CHANNELS,
            "dropout": cfg.MODEL.SEM_SEG_HEAD.DROPOUT,
            "norm": cfg.MODEL.SEM_SEG_HEAD.NORM,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(x)


class FCNAuxHead(ConvSegHead):
    """Auxiliary FCN head on one backbone level (res4, weight 0.4 in the Swin UperNet recipe).
    features dict -> logits (B, K, h, w) at that level's stride."""

    @configurable
    def __init__(self, *, in_feature: str, in_channels: int, num_classes: int,
                 channels: int = 256, dropout: float = 0.1, norm: str = "BN"):  # fmt: skip
        """
        Args:
            in_feature: backbone output it reads ("res4").
            others: as `ConvSegHead`.
        """
        super().__init__(in_channels, num_classes, channels, dropout, norm)
        self.in_feature = in_feature

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        name = cfg.MODEL.AUX_HEAD.IN_FEATURE
        return {
            "in_feature": name,
            "in_channels": input_shape[name].channels,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "channels": cfg.MODEL.AUX_HEAD.CHANNELS,
            "dropout": cfg.MODEL.SEM_SEG_HEAD.DROPOUT,
            "norm": cfg.MODEL.SEM_SEG_HEAD.NORM,
        }

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classify(features[self.in_feature])
