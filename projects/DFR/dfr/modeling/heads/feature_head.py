"""Feature-consistency head (reference/dfr_paper.txt Sect. 3.3, 4.2) and the auxiliary FCN head
(Swin UperNet recipe)."""
from typing import Dict

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from torch import nn

from .upernet import conv_bn_relu

__all__ = ["FeatureConsistencyHead", "FCNAuxHead"]


@SEM_SEG_HEADS_REGISTRY.register()
class FeatureConsistencyHead(nn.Module):
    """1x1 conv + ReLU: fused map (B, C_in, h, w) -> features F (B, d, h, w), d = 128.
    Used only in training (Eq. 6 kernel, Eq. 8-13 losses). `detach_input` (opt-in, not the
    paper): read the fused map without gradient, so Lfd / Lfr train this head only and never
    the fused map shared with the semantic head."""

    @configurable
    def __init__(self, *, in_channels: int, feat_dim: int = 128, detach_input: bool = False):
        super().__init__()
        self.detach_input = detach_input
        self.proj = nn.Conv2d(in_channels, feat_dim, kernel_size=1)
        nn.init.kaiming_normal_(self.proj.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.proj.bias)

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        return {"in_channels": input_shape.channels, "feat_dim": cfg.MODEL.DFR.FEAT_DIM,
                "detach_input": cfg.MODEL.DFR.FEAT_DETACH_FUSED}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.proj(x.detach() if self.detach_input else x))


@SEM_SEG_HEADS_REGISTRY.register()
class FCNAuxHead(nn.Module):
    """Auxiliary FCN head (mmseg FCNHead, num_convs=1): 3x3 conv (norm + ReLU) -> dropout ->
    1x1 classifier on one backbone level (res4). (B, C, h, w) -> logits (B, K, h, w)."""

    @configurable
    def __init__(
        self,
        *,
        in_feature: str,
        in_channels: int,
        num_classes: int,
        channels: int = 256,
        dropout: float = 0.1,
        norm: str = "BN",
    ):
        super().__init__()
        self.in_feature = in_feature
        self.conv = conv_bn_relu(in_channels, channels, 3, norm)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.predictor = nn.Conv2d(channels, num_classes, kernel_size=1)
        nn.init.normal_(self.predictor.weight, std=0.01)
        nn.init.zeros_(self.predictor.bias)

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
        return self.predictor(self.dropout(self.conv(features[self.in_feature])))
