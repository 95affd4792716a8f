"""The training loss of "Dynamic Feature Regularized Loss for Weakly Supervised Semantic
Segmentation" (Sect. 3, Eq. 1) as one module, in the manner of Mask2Former's `SetCriterion`:

    L = Lpce + λ1·Ldfr + λ2·(Lfd + Lfr)   [+ aux_weight·Lpce(aux head)]

`DFRCriterion` owns every loss setting (switches of Table 4, kernel terms of Table 5, the
supervision of the feature head of Table 7, λ, σ, γ, r, strides) and calls the pure functions of
`dfr.modeling.losses`. It holds no parameters or buffers, so the segmentor's state_dict keys do
not depend on it.
"""
from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.utils.events import get_event_storage
from torch import nn

from ..utils import resize, resize_nearest
from . import losses as L

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
    sigma_feat: float  # σ3 of this step (SIGMA_FEAT, or the batch-relative opt-in)


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
        ignore_value: int = 255,
        aux_weight: float = 0.4,
        use_pce: bool = True,
        use_dfr: bool = True,
        use_fd: bool = True,
        use_fr: bool = True,
        lambda_dfr: float = 1e-2,
        lambda_feat: float = 1e-3,
        radius: int = 5,
        sigma_xy: float = 6.0,
        sigma_rgb: float = 0.5,
        sigma_feat: float = 50.0,
        gamma: float = 0.98,
        position_stride: float = 1.0,
        loss_stride: int = 4,
        kernel_xy: bool = True,
        kernel_rgb: bool = True,
        kernel_feat: bool = True,
        feat_supervision: str = "M",
        fr_pairs: str = "RA",
        background_id: int = 0,
        diag_period: int = 0,
        sigma_feat_relative: float = 0.0,
    ):
        """
        Args:
            ignore_value: label of unlabeled pixels (255).
            aux_weight: weight of the aux head's pCE (0.4, the Swin UperNet recipe).
            use_pce, use_dfr, use_fd, use_fr: the loss switches of Table 4 (Eq. 2, 4, 11, 12).
            lambda_dfr, lambda_feat: λ1 (Ldfr) and λ2 (Lfd + Lfr) of Eq. 1.
            radius: r, the (2r+1)² window of Eq. 3 / 8.
            sigma_xy, sigma_rgb, sigma_feat: σ1, σ2, σ3 of K (Eq. 6); Kf (Eq. 13) uses σ1, σ2.
            gamma: confidence threshold γ of M (Eq. 7).
            position_stride: S = stride·(x, y) in loss-map pixels.
            loss_stride: stride of the map the pairwise losses run on (4 = the heads' map).
            kernel_xy, kernel_rgb, kernel_feat: kernel terms of Table 5.
            feat_supervision: labels of Lfd / Lfr (Table 7): "M", "scribble" or "both".
            fr_pairs: Lfr pair set, "RA" (Eq. 12) or "R" (every window pair).
            background_id: class id of background for A⁺bg / A⁺fg (Eq. 11); -1: none.
            diag_period: put the feature-branch diagnostics every N iterations (0: off).
            sigma_feat_relative: opt-in (not the paper): > 0 sets σ3 of each step to this x the
                mean window feature distance of the batch (of every process under DDP), instead
                of the fixed sigma_feat.
        """
        super().__init__()
        if feat_supervision not in ("M", "scribble", "both"):
            raise ValueError(f"feat_supervision must be 'M', 'scribble' or 'both', got "
                             f"{feat_supervision!r}")
        if fr_pairs not in ("RA", "R"):
            raise ValueError(f"fr_pairs must be 'RA' or 'R', got {fr_pairs!r}")
        self.ignore_value = ignore_value
        self.aux_weight = aux_weight
        self.use_pce, self.use_dfr, self.use_fd, self.use_fr = use_pce, use_dfr, use_fd, use_fr
        self.lambda_dfr, self.lambda_feat = lambda_dfr, lambda_feat
        self.radius = radius
        self.sigma_xy, self.sigma_rgb, self.sigma_feat = sigma_xy, sigma_rgb, sigma_feat
        self.gamma = gamma
        self.position_stride = position_stride
        self.loss_stride = loss_stride
        self.kernel_xy, self.kernel_rgb, self.kernel_feat = kernel_xy, kernel_rgb, kernel_feat
        self.feat_supervision = feat_supervision
        self.fr_pairs = fr_pairs
        self.background_id = background_id
        self.diag_period = diag_period
        self.sigma_feat_relative = sigma_feat_relative

    @classmethod
    def from_config(cls, cfg):
        d = cfg.MODEL.DFR
        return {
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "aux_weight": cfg.MODEL.AUX_HEAD.LOSS_WEIGHT,
            "use_pce": d.USE_PCE,
            "use_dfr": d.USE_DFR,
            "use_fd": d.USE_FD,
            "use_fr": d.USE_FR,
            "lambda_dfr": d.LAMBDA_DFR,
            "lambda_feat": d.LAMBDA_FEAT,
            "radius": d.RADIUS,
            "sigma_xy": d.SIGMA_XY,
            "sigma_rgb": d.SIGMA_RGB,
            "sigma_feat": d.SIGMA_FEAT,
            "gamma": d.GAMMA,
            "position_stride": d.POSITION_STRIDE,
            "loss_stride": d.LOSS_STRIDE,
            "kernel_xy": d.KERNEL_XY,
            "kernel_rgb": d.KERNEL_RGB,
            "kernel_feat": d.KERNEL_FEAT,
            "feat_supervision": d.FEAT_SUPERVISION,
            "fr_pairs": d.FR_PAIRS,
            "background_id": d.BACKGROUND_ID,
            "diag_period": d.DIAG_PERIOD,
            "sigma_feat_relative": d.SIGMA_FEAT_RELATIVE,
        }

    # ---- what the losses need from the model ----
    @property
    def pairwise_terms(self):
        """The switched-on pairwise terms, a subset of ("dfr", "fd", "fr")."""
        return tuple(t for t, on in (("dfr", self.use_dfr), ("fd", self.use_fd),
                                     ("fr", self.use_fr)) if on)

    @property
    def uses_feat_kernel(self) -> bool:
        """Ldfr's kernel has its feature term (Eq. 6)."""
        return bool(self.use_dfr and self.kernel_feat)

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
        if self.use_pce:  # Eq. 2, logits upsampled to the label size (mmseg convention)
            logits = resize(outputs["logits"].float(), labels.shape[-2:])
            losses["loss_pce"] = L.partial_cross_entropy(logits, labels, ign)
        if outputs.get("aux_logits") is not None:
            aux = resize(outputs["aux_logits"].float(), labels.shape[-2:])
            losses["loss_aux"] = self.aux_weight * L.partial_cross_entropy(aux, labels, ign)
        terms = self.pairwise_terms
        if not terms:
            return losses
        maps = self.loss_maps(outputs, image, labels, valid)
        # Eq. 4-13 in one pass over the window offsets (F enters the Ldfr kernel without
        # gradient; Lfd / Lfr train the feature head only).
        pairwise = L.pairwise_losses(
            maps.probs, maps.image, maps.feats, maps.target, maps.valid, radius=self.radius,
            sigma_xy=self.sigma_xy, sigma_rgb=self.sigma_rgb, sigma_feat=maps.sigma_feat,
            stride=self.position_stride, use_xy=self.kernel_xy, use_rgb=self.kernel_rgb,
            use_feat=self.uses_feat_kernel, background=self.background_id,
            fr_pairs=self.fr_pairs, ignore_index=ign, terms=terms,
        )
        self._put_diagnostics(maps)
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
        m = L.confident_labels(probs.detach(), self.gamma, self.ignore_value)
        target = self.feature_targets(probs, scribbles, valid_s, m) \
            if self.trains_features else None
        sigma_feat = self.sigma_feat
        if self.uses_feat_kernel and self.sigma_feat_relative > 0:
            sigma_feat = self.relative_sigma_feat(feats, valid_s)
        return LossMaps(probs, img_s, feats, scribbles, valid_s, m, target, sigma_feat)

    def feature_targets(self, probs: torch.Tensor, scribbles: torch.Tensor, valid: torch.Tensor,
                        m: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Labels supervising the feature head (Table 7), (B, h, w) long with ignore_value =
        none: "M" = confident predictions (Eq. 7; `m` when already computed, else from probs);
        "scribble" = the scribbles; "both" = scribble label where a scribble exists, else M."""
        ign = self.ignore_value
        if self.feat_supervision == "scribble":
            target = scribbles.clone()
        else:
            if m is None:
                m = L.confident_labels(probs.detach(), self.gamma, ign)
            target = m.to(torch.long)
            if self.feat_supervision == "both":
                target = torch.where(scribbles != ign, scribbles, target)
            else:
                target = target.clone()
        target[~valid] = ign
        return target

    def relative_sigma_feat(self, feats: torch.Tensor, valid: torch.Tensor) -> float:
        """Opt-in σ3 = sigma_feat_relative x the mean ‖F(i) − F(j)‖₂ over the window pairs of
        the batch; under DistributedDataParallel the sums are all-reduced, so every process
        uses the mean over the pairs of the whole global batch. A local value: the module's
        sigma_feat is never changed, and is used when the batch has no window pair."""
        num, den = L.window_feature_distance_sum(feats, valid, self.radius)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sums = torch.stack([num, den])
            dist.all_reduce(sums)
            num, den = sums[0], sums[1]
        mean = float(num / den) if float(den) > 0 else 0.0
        return self.sigma_feat_relative * mean if mean > 0 else self.sigma_feat

    # ---- diagnostics (dfr.modeling.losses.diagnostics) ----
    def diagnostics(self, maps: LossMaps) -> Dict[str, float]:
        """The feature-branch diagnostics of one step, from that step's LossMaps (its M,
        feature targets and σ3)."""
        feats = maps.feats.detach() if maps.feats is not None else None
        return L.feature_branch_diagnostics(
            maps.probs.detach(), maps.image, feats, maps.scribbles, maps.target, maps.valid,
            radius=self.radius, sigma_xy=self.sigma_xy, sigma_rgb=self.sigma_rgb,
            sigma_feat=maps.sigma_feat, stride=self.position_stride, use_xy=self.kernel_xy,
            use_rgb=self.kernel_rgb, gamma=self.gamma, background=self.background_id,
            ignore_index=self.ignore_value, m_labels=maps.m)

    def _put_diagnostics(self, maps: LossMaps):
        """Every `diag_period` iterations of a training run (inside an EventStorage), put the
        diagnostics as scalars `diag/<key>` (and `diag/sigma_feat` with the relative σ3)."""
        if not (self.training and self.diag_period > 0):
            return
        try:
            storage = get_event_storage()
        except AssertionError:  # no EventStorage: called outside a trainer
            return
        if storage.iter % self.diag_period != 0:
            return
        vals = self.diagnostics(maps)
        if self.uses_feat_kernel and self.sigma_feat_relative > 0:
            vals["sigma_feat"] = maps.sigma_feat
        for k, v in vals.items():
            storage.put_scalar(f"diag/{k}", v, smoothing_hint=False)
