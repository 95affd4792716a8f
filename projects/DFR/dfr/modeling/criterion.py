"""The training loss of "Dynamic Feature Regularized Loss for Weakly Supervised Semantic
Segmentation" (Sect. 3, Eq. 1) as one module, in the manner of Mask2Former's `SetCriterion`:

    L = Lpce + λ1·Ldfr + λ2·(Lfd + Lfr)   [+ aux_weight·Lpce(aux head)]

`DFRCriterion` owns every loss setting (switches of Table 4, kernel terms of Table 5, the
supervision of the feature head of Table 7, λ, σ, γ, r, strides) and calls the pure functions of
`dfr.modeling.losses`. It holds no parameters or buffers, so the segmentor's state_dict keys do
not depend on it.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.utils.events import get_event_storage
from torch import nn

from ..utils import resize, resize_nearest
from .losses import (IMPLS, PairwiseParams, confident_labels, diagnostic_values,
                     pairwise_losses, partial_cross_entropy, window_feature_distance_sum)

__all__ = ["DFRCriterion", "LossMaps"]


@dataclass
class LossMaps:
    """What the pairwise losses (Eq. 4-13) and the diagnostics read, at the loss map (h, w):
    computed once per training step."""

    probs: torch.Tensor  # (B, C, h, w) softmax of the semantic logits, float32
    image: torch.Tensor  # (B, 3, h, w) normalised image, area-pooled
    feats: Optional[torch.Tensor]  # (B, d, h, w) features F, or None (no feature head)
    scribbles: torch.Tensor  # (B, h, w) scribble labels (nearest), ignore_value = none
    valid: torch.Tensor  # (B, h, w) bool
    m: torch.Tensor  # (B, h, w) M of Eq. 7, ignore_value where not confident
    target: Optional[torch.Tensor]  # (B, h, w) labels of Lfd / Lfr (Table 7), or None
    sigma_feat: Union[float, torch.Tensor]  # σ3 of this step (SIGMA_FEAT, or the
    # batch-relative opt-in as a 0-d device tensor)


class DFRCriterion(nn.Module):
    """Eq. 1 from the heads' outputs.

    Called as `criterion(outputs, image, labels, valid)` with outputs {"logits": (B, K, h, w),
    ["feats": (B, d, h, w)], ["aux_logits": (B, K, h', w')]} (other keys are ignored), image the
    normalised padded batch (B, 3, H, W), labels (B, H, W) long with ignore_value = unlabeled,
    valid (B, H, W) bool. Returns the weighted losses {loss_pce, loss_aux, loss_dfr, loss_fd,
    loss_fr}, each only when switched on (loss_aux when the outputs carry aux logits). Every
    `diag_period` training iterations (inside an EventStorage) it also puts the feature-branch
    diagnostics as scalars `diag/<key>`.

    The probabilities and every loss are computed in float32 with autocast off, whatever the
    precision of the heads.
    """

    @configurable
    def __init__(
        self,
        *,
        pairwise: PairwiseParams = PairwiseParams(),
        losses: Sequence[str] = ("pce", "dfr", "fd", "fr"),
        lambda_dfr: float = 1e-2,
        lambda_feat: float = 1e-3,
        aux_weight: float = 0.4,
        gamma: float = 0.98,
        loss_stride: int = 4,
        feat_supervision: str = "M",
        diag_period: int = 0,
        sigma_feat_relative: float = 0.0,
        impl: str = "torch",
    ):
        """
        Args:
            pairwise: the settings of Ldfr, Lfd, Lfr (`PairwiseParams`: r, σ1-σ3, position
                stride, the kernel terms of Table 5, background id, Lfr pairs, ignore label).
            losses: the switched-on terms of Table 4, a subset of ("pce", "dfr", "fd", "fr").
            lambda_dfr, lambda_feat: λ1 (Ldfr) and λ2 (Lfd + Lfr) of Eq. 1.
            aux_weight: weight of the aux head's pCE (0.4, the Swin UperNet recipe).
            gamma: confidence threshold γ of M (Eq. 7).
            loss_stride: stride of the map the pairwise losses run on (4 = the heads' map).
            feat_supervision: labels of Lfd / Lfr (Table 7): "M", "scribble" or "both".
            diag_period: put the feature-branch diagnostics every N iterations (0: off); they
                are accumulated by the loss pass of that iteration.
            sigma_feat_relative: opt-in (not the paper): > 0 sets σ3 of each step to this x the
                mean window feature distance of the batch (of every process under DDP).
            impl: the pairwise implementation, "auto", "triton" or "torch" (`resolve_impl`).
        """
        super().__init__()
        if feat_supervision not in ("M", "scribble", "both"):
            raise ValueError(f"feat_supervision must be 'M', 'scribble' or 'both', got "
                             f"{feat_supervision!r}")
        unknown = set(losses) - {"pce", "dfr", "fd", "fr"}
        if unknown:
            raise ValueError(f"losses must be a subset of ('pce', 'dfr', 'fd', 'fr'), got "
                             f"{tuple(losses)}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        self.pairwise = pairwise
        self.losses = tuple(t for t in ("pce", "dfr", "fd", "fr") if t in losses)
        self.lambda_dfr, self.lambda_feat = lambda_dfr, lambda_feat
        self.aux_weight = aux_weight
        self.gamma = gamma
        self.loss_stride = loss_stride
        self.feat_supervision = feat_supervision
        self.diag_period = diag_period
        self.sigma_feat_relative = sigma_feat_relative
        self.impl = impl

    @classmethod
    def from_config(cls, cfg):
        d = cfg.MODEL.DFR
        pairwise = PairwiseParams(
            radius=d.RADIUS, sigma_xy=d.SIGMA_XY, sigma_rgb=d.SIGMA_RGB,
            sigma_feat=d.SIGMA_FEAT, stride=d.POSITION_STRIDE, use_xy=d.KERNEL_XY,
            use_rgb=d.KERNEL_RGB, use_feat=d.KERNEL_FEAT, background=d.BACKGROUND_ID,
            fr_pairs=d.FR_PAIRS, ignore_index=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE)
        switches = {"pce": d.USE_PCE, "dfr": d.USE_DFR, "fd": d.USE_FD, "fr": d.USE_FR}
        return {
            "pairwise": pairwise,
            "losses": tuple(k for k, on in switches.items() if on),
            "lambda_dfr": d.LAMBDA_DFR,
            "lambda_feat": d.LAMBDA_FEAT,
            "aux_weight": cfg.MODEL.AUX_HEAD.LOSS_WEIGHT,
            "gamma": d.GAMMA,
            "loss_stride": d.LOSS_STRIDE,
            "feat_supervision": d.FEAT_SUPERVISION,
            "diag_period": d.DIAG_PERIOD,
            "sigma_feat_relative": d.SIGMA_FEAT_RELATIVE,
            "impl": d.PAIRWISE_IMPL,
        }

    @property
    def ignore_value(self) -> int:
        return self.pairwise.ignore_index

    @property
    def use_dfr(self) -> bool:
        return "dfr" in self.losses

    @property
    def use_fd(self) -> bool:
        return "fd" in self.losses

    @property
    def use_fr(self) -> bool:
        return "fr" in self.losses

    # ---- what the losses need from the model ----
    @property
    def pairwise_terms(self):
        """The switched-on pairwise terms, a subset of ("dfr", "fd", "fr")."""
        return tuple(t for t in self.losses if t != "pce")

    @property
    def uses_feat_kernel(self) -> bool:
        """Ldfr's kernel has its feature term (Eq. 6)."""
        return bool(self.use_dfr and self.pairwise.use_feat)

    @property
    def needs_features(self) -> bool:
        """Table 5: without the feature kernel term (and Lfd / Lfr) the feature head is
        removed."""
        return bool(self.uses_feat_kernel or self.use_fd or self.use_fr)

    @property
    def trains_features(self) -> bool:
        """Some loss trains the feature head (Lfd or Lfr); Ldfr reads F without gradient."""
        return bool(self.use_fd or self.use_fr)

    # ---- Eq. 1 ----
    def forward(self, outputs: Dict, image: torch.Tensor, labels: torch.Tensor,
                valid: torch.Tensor) -> Dict[str, torch.Tensor]:
        with torch.autocast(device_type=image.device.type, enabled=False):
            return self._losses(outputs, image, labels, valid)

    def _losses(self, outputs, image, labels, valid):
        losses = {}
        ign = self.ignore_value
        if "pce" in self.losses:  # Eq. 2, logits upsampled to the label size (mmseg convention)
            logits = resize(outputs["logits"].float(), labels.shape[-2:])
            losses["loss_pce"] = partial_cross_entropy(logits, labels, ign)
        if outputs.get("aux_logits") is not None:
            aux = resize(outputs["aux_logits"].float(), labels.shape[-2:])
            losses["loss_aux"] = self.aux_weight * partial_cross_entropy(aux, labels, ign)
        terms = self.pairwise_terms
        if not terms:
            return losses
        maps = self.loss_maps(outputs, image, labels, valid)
        diag = self._diagnostics_due()
        # Eq. 4-13 (and, every diag_period iterations, the diagnostic sums) in one pass over
        # the window (F enters the Ldfr kernel without gradient; Lfd / Lfr train the feature
        # head only).
        feat_labels = maps.target if maps.target is not None else (maps.m if diag else None)
        pairwise = pairwise_losses(
            maps.probs, maps.image, maps.feats, feat_labels, maps.valid, self.pairwise,
            terms=terms, impl=self.impl, sigma_feat=maps.sigma_feat,
            scribbles=maps.scribbles if diag else None, diagnostics=diag, validate=False)
        if diag:
            self._put_diagnostics(maps, pairwise["diag"])
        weights = {"dfr": self.lambda_dfr, "fd": self.lambda_feat, "fr": self.lambda_feat}
        for t in terms:
            losses[f"loss_{t}"] = weights[t] * pairwise[t]
        return losses

    def loss_maps(self, outputs: Dict, image: torch.Tensor, labels: torch.Tensor,
                  valid: torch.Tensor) -> LossMaps:
        """The inputs of the pairwise losses on the map at `loss_stride` (default: the heads'
        stride-4 map): image area-pooled, probabilities / features bilinear, scribbles / valid
        nearest; M (Eq. 7), the labels of the feature head (Table 7) and this step's σ3."""
        size = (-(-image.shape[-2] // self.loss_stride), -(-image.shape[-1] // self.loss_stride))
        img_s = F.adaptive_avg_pool2d(image.float(), size)  # "area" resize, any ratio
        valid_s = resize_nearest(valid, size)
        probs = resize(outputs["logits"].float(), size).softmax(dim=1)
        feats = outputs.get("feats")
        if feats is not None:
            feats = resize(feats.float(), size)
        scribbles = resize_nearest(labels, size)
        m = confident_labels(probs.detach(), self.gamma, self.ignore_value)
        target = self.feature_targets(m, scribbles, valid_s) \
            if self.trains_features else None
        sigma_feat = self.pairwise.sigma_feat
        if self.uses_feat_kernel and self.sigma_feat_relative > 0:
            sigma_feat = self.relative_sigma_feat(feats, valid_s)
        return LossMaps(probs, img_s, feats, scribbles, valid_s, m, target, sigma_feat)

    def feature_targets(self, m: torch.Tensor, scribbles: torch.Tensor,
                        valid: torch.Tensor) -> torch.Tensor:
        """Labels supervising the feature head (Table 7), (B, h, w) long with ignore_value =
        none, from this step's M (Eq. 7, computed once in `loss_maps`): "M" = the confident
        predictions; "scribble" = the scribbles; "both" = the scribble label where a scribble
        exists, else M."""
        ign = self.ignore_value
        if self.feat_supervision == "scribble":
            target = scribbles.clone()
        elif self.feat_supervision == "both":
            target = torch.where(scribbles != ign, scribbles, m.to(torch.long))
        else:
            target = m.to(torch.long).clone()
        target[~valid] = ign
        return target

    def relative_sigma_feat(self, feats: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Opt-in σ3 = sigma_feat_relative x the mean ‖F(i) − F(j)‖₂ over the window pairs of
        the batch, a 0-d tensor (never read on the host); under DistributedDataParallel the
        sums are all-reduced, so every process uses the mean over the pairs of the whole global
        batch. The fixed sigma_feat is used when the batch has no window pair."""
        num, den = window_feature_distance_sum(feats, valid, self.pairwise.radius, self.impl)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sums = torch.stack([num, den])
            dist.all_reduce(sums)
            num, den = sums[0], sums[1]
        mean = num / den.clamp(min=1)
        return torch.where((den > 0) & (mean > 0), self.sigma_feat_relative * mean,
                           torch.full_like(mean, self.pairwise.sigma_feat))

    # ---- diagnostics (dfr.modeling.losses.diagnostics) ----
    def _diagnostics_due(self) -> bool:
        """A training iteration of a run (inside an EventStorage) at a multiple of diag_period."""
        if not (self.training and self.diag_period > 0) or torch.compiler.is_compiling():
            return False
        try:
            storage = get_event_storage()
        except AssertionError:  # no EventStorage: called outside a trainer
            return False
        return storage.iter % self.diag_period == 0

    def diagnostics(self, maps: LossMaps, sums: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """The feature-branch diagnostics of one step from its loss pass's sums and its
        LossMaps (its M and σ3); reads the device once."""
        return diagnostic_values(sums, maps.m, maps.valid, maps.feats, self.ignore_value)

    def _put_diagnostics(self, maps: LossMaps, sums: Dict[str, torch.Tensor]):
        """Put the diagnostics as scalars `diag/<key>` (and `diag/sigma_feat` with the relative
        σ3)."""
        storage = get_event_storage()
        vals = self.diagnostics(maps, sums)
        if self.uses_feat_kernel and self.sigma_feat_relative > 0:
            vals["sigma_feat"] = float(maps.sigma_feat)
        for k, v in vals.items():
            storage.put_scalar(f"diag/{k}", v, smoothing_hint=False)
