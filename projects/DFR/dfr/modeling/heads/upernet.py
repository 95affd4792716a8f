"""UperNet fusion: PPM + FPN (DFR paper, arXiv:2108.01296, Fig. 2 and Sect. 4.2). Layout as
mmseg's `uper_head.py`, split in two: the fusion returns the shared map (all levels at stride
4, concatenated: 4 x 512 = 2048 channels) that the semantic and feature heads consume.
"""
from typing import Dict, List, Sequence

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from torch import nn

from ...utils import resize
from .seg_heads import conv_bn_relu

__all__ = ["UperNetFusion"]


class UperNetFusion(nn.Module):
    """PPM on the last feature + FPN laterals/top-down; the FPN outputs of `fusion_levels` are
    upsampled to the first input's stride and concatenated.

    features: {name: (B, C_i, H/s_i, W/s_i)} -> (B, channels * len(fusion_levels), H/s_0, W/s_0)
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        in_features: Sequence[str],
        channels: int = 512,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        fusion_levels: Sequence[str] = None,
        norm: str = "BN",
    ):
        """
        Args:
            input_shape: backbone output shapes by name.
            in_features: backbone levels, finest first (res2..res5); the PPM runs on the last.
            channels: width of every lateral / FPN / PPM conv (512; fused map = channels x
                number of fusion levels).
            pool_scales: PPM bin sizes.
            fusion_levels: levels concatenated into the fused map (Table 6); default all.
            norm: Detectron2 norm name of every conv.
        """
        super().__init__()
        self.in_features = list(in_features)
        self.fusion_levels = list(fusion_levels or in_features)
        for name in self.fusion_levels:
            assert name in self.in_features, f"fusion level {name} not in {self.in_features}"
        in_ch = [input_shape[f].channels for f in self.in_features]
        self.out_stride = input_shape[self.in_features[0]].stride
        self.channels = channels
        # PPM (Zhao et al.) on the last level
        self.ppm = nn.ModuleList(
            [
                nn.Sequential(nn.AdaptiveAvgPool2d(s), conv_bn_relu(in_ch[-1], channels, 1, norm))
                for s in pool_scales
            ]
        )
        self.ppm_bottleneck = conv_bn_relu(in_ch[-1] + len(pool_scales) * channels, channels, 3,
                                           norm)
        # FPN (Lin et al.): 1x1 laterals and 3x3 output convs, keyed by level. Only what the
        # fused map uses is built, so that every parameter gets a gradient (DDP without
        # find_unused_parameters, Table 6 rows): a lateral feeds its own level and, through
        # the top-down path, every finer one, so laterals start at the finest fused level;
        # output convs exist for fused levels only. The finest input still sets the size.
        start = min(self.in_features.index(f) for f in self.fusion_levels)
        self.used_features = self.in_features[start:]
        self.lateral_convs = nn.ModuleDict(
            {f: conv_bn_relu(input_shape[f].channels, channels, 1, norm)
             for f in self.used_features[:-1]}  # fmt: skip
        )
        self.fpn_convs = nn.ModuleDict(
            {f: conv_bn_relu(channels, channels, 3, norm)
             for f in self.used_features[:-1] if f in self.fusion_levels}  # fmt: skip
        )

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        u = cfg.MODEL.UPERNET
        return {
            "input_shape": input_shape,
            "in_features": list(u.IN_FEATURES),
            "channels": u.CHANNELS,
            "pool_scales": list(u.POOL_SCALES),
            "fusion_levels": list(u.FUSION_LEVELS),
            "norm": cfg.MODEL.SEM_SEG_HEAD.NORM,
        }

    def output_shape(self) -> ShapeSpec:
        return ShapeSpec(channels=self.channels * len(self.fusion_levels), stride=self.out_stride)

    def _psp(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x] + [resize(m(x), x.shape[-2:]) for m in self.ppm]
        return self.ppm_bottleneck(torch.cat(outs, dim=1))

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        names = self.used_features
        laterals: List[torch.Tensor] = [self.lateral_convs[f](features[f]) for f in names[:-1]]
        laterals.append(self._psp(features[names[-1]]))
        for i in range(len(laterals) - 1, 0, -1):  # top-down
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[-2:])
        size = features[self.in_features[0]].shape[-2:]
        fused = []
        for name in self.fusion_levels:
            i = names.index(name)
            y = laterals[i] if i == len(laterals) - 1 else self.fpn_convs[name](laterals[i])
            fused.append(resize(y, size))
        return torch.cat(fused, dim=1)
