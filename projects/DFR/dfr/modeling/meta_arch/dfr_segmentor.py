"""The DFR segmentor (the DFR paper (arXiv:2108.01296), Fig. 1, Eq. 1):
    L = Lpce + λ1·Ldfr (semantic head) + λ2·(Lfd + Lfr) (feature head)  [+ 0.4·Laux].
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import (
    META_ARCH_REGISTRY,
    SEM_SEG_HEADS_REGISTRY,
    Backbone,
    build_backbone,
)
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList
from detectron2.utils.events import get_event_storage
from torch import nn

from .. import losses as L
from ...utils import resize, resize_nearest
from ..heads import FCNAuxHead, FeatureConsistencyHead, UperNetFusion

__all__ = ["DFRSegmentor"]


def _pad_batch(images: List[torch.Tensor], min_size=None) -> ImageList:
    """Batch (3, H_i, W_i) normalised images, zero-padded bottom/right to the largest size
    and at least `min_size` (h, w)."""
    batch = ImageList.from_tensors(images, 0, pad_value=0.0)
    if min_size:
        ph = max(0, min_size[0] - batch.tensor.shape[-2])
        pw = max(0, min_size[1] - batch.tensor.shape[-1])
        if ph or pw:
            batch = ImageList(F.pad(batch.tensor, (0, pw, 0, ph)), batch.image_sizes)
    return batch


@META_ARCH_REGISTRY.register()
class DFRSegmentor(nn.Module):
    """Swin + UperNet fusion + semantic head + feature-consistency head, trained with Eq. 1.

    Input: list of mapper dicts {"image": uint8 (3, H, W) RGB, "sem_seg": long (H, W) with
    255 = unlabeled (training), optional "valid": bool (H, W), "height", "width"}.
    Training returns already-weighted losses {loss_pce, loss_aux, loss_dfr, loss_fd, loss_fr}
    (each only when switched on); inference returns [{"sem_seg": (C, height, width) probs}].
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        fusion: UperNetFusion,
        sem_seg_head: nn.Module,
        feat_head: Optional[FeatureConsistencyHead],
        aux_head: Optional[FCNAuxHead],
        pixel_mean,
        pixel_std,
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
        train_pad_size: Optional[Sequence[int]] = None,
    ):
        """
        Args:
            backbone: Swin (res2..res5 at strides 4..32).
            fusion: UperNet PPM + FPN, returns the shared fused map (stride 4).
            sem_seg_head: fused map -> logits (Sect. 3.1).
            feat_head: fused map -> features F (Sect. 3.3); None when no switched-on term
                needs it (Table 5 rows without F).
            aux_head: auxiliary FCN head on res4 (Swin UperNet recipe) or None.
            pixel_mean, pixel_std: ImageNet RGB statistics; the image is normalised in the
                model, and the RGB kernel term uses the normalised image.
            ignore_value: label of unlabeled pixels (255).
            aux_weight: weight of the aux head's pCE (0.4).
            use_pce, use_dfr, use_fd, use_fr: the loss switches of Table 4 (Eq. 2, 6, 11, 13).
            lambda_dfr, lambda_feat: λ1 (Ldfr) and λ2 (Lfd + Lfr) of Eq. 1.
            radius: r, the (2r+1)² window of Eq. 3 / 8.
            sigma_xy, sigma_rgb, sigma_feat: σ1, σ2, σ3 of the kernel (Eq. 5).
            gamma: confidence threshold γ of M (Eq. 7).
            position_stride: S = stride·(x, y) in loss-map pixels.
            loss_stride: stride of the map the pairwise losses run on (4 = the heads' map).
            kernel_xy, kernel_rgb, kernel_feat: kernel terms of Table 5.
            feat_supervision: labels of Lfd / Lfr (Table 7): "M", "scribble" or "both".
            fr_pairs: Lfr pair set, "RA" (Eq. 12) or "R" (every window pair).
            background_id: class id of background for A⁺bg / A⁺fg (Eq. 9); -1: none.
            diag_period: log the feature-branch diagnostics every N iterations (0: off).
            sigma_feat_relative: opt-in (not the paper): > 0 sets σ3 = this x the batch's
                mean window feature distance, instead of the fixed sigma_feat.
            train_pad_size: (h, w) every training batch is padded to after normalising
                (mmseg's Pad(size=crop_size)); None: the largest image of the batch.
        """
        super().__init__()
        self.backbone = backbone
        self.fusion = fusion
        self.sem_seg_head = sem_seg_head
        self.feat_head = feat_head
        self.aux_head = aux_head
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
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
        assert feat_supervision in ("M", "scribble", "both"), feat_supervision
        assert fr_pairs in ("RA", "R"), fr_pairs
        self.feat_supervision = feat_supervision
        self.fr_pairs = fr_pairs
        self.background_id = background_id
        self.diag_period = diag_period  # feature-branch diagnostics every N iterations (0: off)
        self.sigma_feat_relative = sigma_feat_relative  # > 0: σ3 relative to ‖ΔF‖ (opt-in)
        self.train_pad_size = tuple(train_pad_size) if train_pad_size else None
        if self.needs_feat_head(use_dfr, kernel_feat, use_fd, use_fr):
            assert feat_head is not None, "the switched-on losses need the feature head"
        if feat_head is not None and not (use_fd or use_fr):
            # Table 4 row 2: F feeds the Ldfr kernel (detached) but no loss trains the head;
            # freezing it says so and keeps DistributedDataParallel free of unused parameters.
            feat_head.requires_grad_(False)

    @staticmethod
    def needs_feat_head(use_dfr, kernel_feat, use_fd, use_fr) -> bool:
        """Table 5: without the feature kernel term (and Lfd/Lfr) the head is removed."""
        return bool((use_dfr and kernel_feat) or use_fd or use_fr)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        fusion = UperNetFusion(cfg, backbone.output_shape())
        sem_seg_head = SEM_SEG_HEADS_REGISTRY.get(cfg.MODEL.SEM_SEG_HEAD.NAME)(
            cfg, fusion.output_shape()
        )
        d = cfg.MODEL.DFR
        need = cls.needs_feat_head(d.USE_DFR, d.KERNEL_FEAT, d.USE_FD, d.USE_FR)
        feat_head = FeatureConsistencyHead(cfg, fusion.output_shape()) if need else None
        aux_head = FCNAuxHead(cfg, backbone.output_shape()) if cfg.MODEL.AUX_HEAD.ENABLED else None
        used = set(fusion.used_features) | ({aux_head.in_feature} if aux_head else set())
        if hasattr(backbone, "drop_output_norms"):
            backbone.drop_output_norms([f for f in fusion.in_features if f not in used])
        return {
            "backbone": backbone,
            "fusion": fusion,
            "sem_seg_head": sem_seg_head,
            "feat_head": feat_head,
            "aux_head": aux_head,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
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
            # mmseg pads every training crop to the crop size after normalisation.
            "train_pad_size": cfg.INPUT.CROP.SIZE if cfg.INPUT.CROP.ENABLED else None,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8/float RGB in [0, 255] -> (x - mean) / std (ImageNet)."""
        return (images.to(self.device).float() - self.pixel_mean) / self.pixel_std

    def forward_features(self, images: torch.Tensor, with_feats: bool = False) -> Dict:
        """images: normalised (B, 3, H, W), any size.
        Returns {"features": backbone dict, "fused": (B, C_f, H/4, W/4),
        "logits": (B, K, H/4, W/4), ["feats": (B, d, H/4, W/4)], ["aux_logits": (B, K, H/16,
        W/16)] (aux only in training)}; "H/4" is ceil(H / 4)."""
        features = self.backbone(images)
        fused = self.fusion(features)
        out = {"features": features, "fused": fused, "logits": self.sem_seg_head(fused)}
        if with_feats and self.feat_head is not None:
            out["feats"] = self.feat_head(fused)
        if self.training and self.aux_head is not None:
            out["aux_logits"] = self.aux_head(features)
        return out

    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        """mmseg's `encode_decode`: uint8/float RGB (B, 3, H, W) -> logits (B, K, H, W),
        upsampled (bilinear) to the input size. No padding: the backbone pads inside."""
        logits = self.forward_features(self.normalize(images))["logits"]
        return resize(logits, images.shape[-2:])

    def forward(self, batched_inputs: List[Dict]):
        images = [self.normalize(x["image"]) for x in batched_inputs]
        if not self.training:
            return self.inference(batched_inputs, _pad_batch(images))
        # mmseg's Pad(size=crop_size) after Normalize: pad value 0 (= the mean colour), label
        # 255, and `valid` False on the padding so that no loss sees it.
        images = _pad_batch(images, self.train_pad_size)
        out = self.forward_features(images.tensor, with_feats=True)
        b, _, hp, wp = images.tensor.shape
        valid = torch.zeros((b, hp, wp), dtype=torch.bool, device=self.device)
        labels = torch.full((b, hp, wp), self.ignore_value, dtype=torch.long, device=self.device)
        for i, (x, (h, w)) in enumerate(zip(batched_inputs, images.image_sizes)):
            v = x.get("valid")
            valid[i, :h, :w] = True if v is None else v.to(self.device, torch.bool)[:h, :w]
            if "sem_seg" in x:
                labels[i, :h, :w] = x["sem_seg"].to(self.device, torch.long)[:h, :w]
        labels[~valid] = self.ignore_value
        return self.losses(out, images.tensor, labels, valid)

    def losses(self, out: Dict, image: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor):
        """Eq. 1. image: normalised padded batch (B, 3, H, W); labels (B, H, W) with 255 =
        unlabeled; valid (B, H, W) bool. Returns the weighted loss dict."""
        losses = {}
        logits = out["logits"]
        if self.use_pce:  # Eq. 2, logits upsampled to the label size (mmseg convention)
            losses["loss_pce"] = L.partial_cross_entropy(
                resize(logits, labels.shape[-2:]), labels, self.ignore_value
            )
        if "aux_logits" in out:
            losses["loss_aux"] = self.aux_weight * L.partial_cross_entropy(
                resize(out["aux_logits"], labels.shape[-2:]), labels, self.ignore_value
            )
        if not (self.use_dfr or self.use_fd or self.use_fr):
            return losses
        # Pairwise losses on the map at `loss_stride` (default: the heads' stride-4 map).
        size = (-(-image.shape[-2] // self.loss_stride), -(-image.shape[-1] // self.loss_stride))
        img_s = F.adaptive_avg_pool2d(image, size)  # "area" resize, any ratio
        valid_s = resize_nearest(valid, size)
        probs = resize(logits, size).softmax(dim=1)
        feats = out.get("feats")
        if feats is not None:
            feats = resize(feats, size)
        target = None
        if self.use_fd or self.use_fr:  # labels of Eq. 8-13, from the detached prediction
            target = self.feature_targets(probs.detach(), resize_nearest(labels, size), valid_s)
        # Eq. 4-13 in one pass over the window offsets (F enters the Ldfr kernel without
        # gradient; Lfd / Lfr train the feature head only).
        terms = [t for t, on in (("dfr", self.use_dfr), ("fd", self.use_fd), ("fr", self.use_fr))
                 if on]
        use_feat = self.use_dfr and self.kernel_feat
        if use_feat and self.sigma_feat_relative > 0:  # opt-in: σ3 follows the feature scale
            dist = float(L.window_feature_distance(feats, valid_s, self.radius))
            if dist > 0:  # (not NaN: a batch without a window pair keeps the last σ3)
                self.sigma_feat = self.sigma_feat_relative * dist
        pairwise = L.pairwise_losses(
            probs, img_s, feats, target, valid_s, radius=self.radius, sigma_xy=self.sigma_xy,
            sigma_rgb=self.sigma_rgb, sigma_feat=self.sigma_feat, stride=self.position_stride,
            use_xy=self.kernel_xy, use_rgb=self.kernel_rgb, use_feat=use_feat,
            background=self.background_id, fr_pairs=self.fr_pairs,
            ignore_index=self.ignore_value, terms=terms,
        )
        self._log_diagnostics(probs, img_s, feats, labels, target, valid_s)
        weights = {"dfr": self.lambda_dfr, "fd": self.lambda_feat, "fr": self.lambda_feat}
        for t in terms:
            losses[f"loss_{t}"] = weights[t] * pairwise[t]
        return losses

    def _log_diagnostics(self, probs, img_s, feats, labels, target, valid_s):
        """Every `diag_period` iterations of a training run (inside an EventStorage), put the
        feature-branch diagnostics (losses/diagnostics.py) as scalars `diag/<key>`."""
        if not (self.training and self.diag_period > 0):
            return
        try:
            storage = get_event_storage()
        except AssertionError:  # no EventStorage: called outside a trainer
            return
        if storage.iter % self.diag_period != 0:
            return
        vals = L.feature_branch_diagnostics(
            probs.detach(), img_s, feats.detach() if feats is not None else None,
            resize_nearest(labels, valid_s.shape[-2:]), target, valid_s, radius=self.radius,
            sigma_xy=self.sigma_xy, sigma_rgb=self.sigma_rgb, sigma_feat=self.sigma_feat,
            stride=self.position_stride, use_xy=self.kernel_xy, use_rgb=self.kernel_rgb,
            gamma=self.gamma, background=self.background_id, ignore_index=self.ignore_value)
        for k, v in vals.items():
            storage.put_scalar(f"diag/{k}", v, smoothing_hint=False)

    def feature_targets(self, probs: torch.Tensor, scribbles: torch.Tensor, valid: torch.Tensor):
        """Labels supervising the feature head (Table 7), (B, h, w) long with 255 = none:
        "M" = confident predictions (Eq. 7); "scribble" = the scribbles; "both" = scribble
        label where a scribble exists, else M."""
        ign = self.ignore_value
        if self.feat_supervision == "scribble":
            target = scribbles.clone()
        else:
            target = L.confident_labels(probs, self.gamma, ign).to(torch.long)
            if self.feat_supervision == "both":
                target = torch.where(scribbles != ign, scribbles, target)
        target[~valid] = ign
        return target

    def inference(self, batched_inputs: List[Dict], images: ImageList):
        """Whole-image inference (mmseg `whole_inference` + `postprocess_result`): logits
        upsampled to the network input, cropped to each image and resized to its original
        (height, width); returns softmax probabilities, Detectron2's sem-seg convention."""
        logits = self.forward_features(images.tensor)["logits"]
        logits = resize(logits, images.tensor.shape[-2:])
        results = []
        for x, y, image_size in zip(batched_inputs, logits, images.image_sizes):
            h = x.get("height", image_size[0])
            w = x.get("width", image_size[1])
            r = sem_seg_postprocess(y, image_size, h, w)
            results.append({"sem_seg": r.softmax(dim=0)})
        return results
