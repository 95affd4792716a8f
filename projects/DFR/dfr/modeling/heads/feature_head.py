"""Feature-consistency head (DFR paper, arXiv:2108.01296, Sect. 3.3 and 4.2)."""
import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from torch import nn

__all__ = ["FeatureConsistencyHead"]


class FeatureConsistencyHead(nn.Module):
    """1x1 conv + ReLU: fused map (B, C_in, h, w) -> features F (B, d, h, w), d = 128.
    Used only in training (Eq. 6 kernel, Eq. 8-13 losses). One implementation, built
    directly by the segmentor (no registry). `detach_input` (opt-in, not the
    paper): read the fused map without gradient, so Lfd / Lfr train this head only and never
    the fused map shared with the semantic head."""

    @configurable
    def __init__(self, *, in_channels: int, feat_dim: int = 128, detach_input: bool = False):
        """
        Args:
            in_channels: channels of the fused map.
            feat_dim: d, channels of F (MODEL.DFR.FEAT_DIM).
            detach_input: opt-in MODEL.DFR.FEAT_DETACH_FUSED (see the class docstring).
        """
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
