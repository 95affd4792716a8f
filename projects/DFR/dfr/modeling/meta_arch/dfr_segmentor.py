"""The DFR segmentor ("Dynamic Feature Regularized Loss for Weakly Supervised Semantic
Segmentation", Fig. 1): backbone + UperNet fusion + semantic / feature / aux heads; the losses
of Eq. 1 are the criterion's (`dfr.modeling.criterion.DFRCriterion`)."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList
from torch import nn

from ...utils import resize
from ..criterion import DFRCriterion
from ..losses import resolve_impl
from ..heads import FCNAuxHead, FeatureConsistencyHead, UperNetFusion, build_semantic_head

__all__ = ["DFRSegmentor", "COMPILE_MODES"]

#: modes of torch.compile accepted by SOLVER.COMPILE
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


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
    """Swin + UperNet fusion + semantic head + feature-consistency head, trained with Eq. 1
    (computed by a `DFRCriterion`).

    Input: list of mapper dicts {"image": uint8 (3, H, W) RGB, "sem_seg": long (H, W) with
    255 = unlabeled (training), optional "valid": bool (H, W), "height", "width"}.
    Training returns the criterion's weighted losses {loss_pce, loss_aux, loss_dfr, loss_fd,
    loss_fr} (each only when switched on); inference returns [{"sem_seg": (C, height, width)
    probs}].
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
        criterion: DFRCriterion,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        train_pad_size: Optional[Sequence[int]] = None,
    ):
        """
        Args:
            backbone: Swin (res2..res5 at strides 4..32).
            fusion: UperNet PPM + FPN, returns the shared fused map (stride 4).
            sem_seg_head: fused map -> logits (Sect. 3.1).
            feat_head: fused map -> features F (Sect. 3.3); None when the criterion needs no
                features (Table 5 rows without F).
            aux_head: auxiliary FCN head on res4 (Swin UperNet recipe) or None.
            criterion: the losses of Eq. 1 (switches, λ, σ, γ, r, strides, supervision).
            pixel_mean, pixel_std: ImageNet RGB statistics; the image is normalised in the
                model, and the RGB kernel term uses the normalised image.
            train_pad_size: (h, w) every training batch is padded to after normalising
                (mmseg's Pad(size=crop_size)); None: the largest image of the batch.
        """
        super().__init__()
        self.backbone = backbone
        self.fusion = fusion
        self.sem_seg_head = sem_seg_head
        self.feat_head = feat_head
        self.aux_head = aux_head
        self.criterion = criterion
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.train_pad_size = tuple(train_pad_size) if train_pad_size else None
        if criterion.needs_features:
            assert feat_head is not None, "the switched-on losses need the feature head"
        if feat_head is not None and not criterion.trains_features:
            # Table 4 row 2: F feeds the Ldfr kernel (detached) but no loss trains the head;
            # freezing it says so and keeps DistributedDataParallel free of unused parameters.
            feat_head.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        fusion = UperNetFusion(cfg, backbone.output_shape())
        sem_seg_head = build_semantic_head(cfg, fusion.output_shape())
        criterion = DFRCriterion(cfg)
        feat_head = FeatureConsistencyHead(cfg, fusion.output_shape()) \
            if criterion.needs_features else None
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
            "criterion": criterion,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
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
        b, _, hp, wp = images.tensor.shape
        valid = torch.zeros((b, hp, wp), dtype=torch.bool, device=self.device)
        ign = self.criterion.ignore_value
        labels = torch.full((b, hp, wp), ign, dtype=torch.long, device=self.device)
        for i, (x, (h, w)) in enumerate(zip(batched_inputs, images.image_sizes)):
            v = x.get("valid")
            valid[i, :h, :w] = True if v is None else v.to(self.device, torch.bool)[:h, :w]
            if "sem_seg" in x:
                labels[i, :h, :w] = x["sem_seg"].to(self.device, torch.long)[:h, :w]
        labels[~valid] = ign
        return self._train_losses(images.tensor, labels, valid)

    def _train_losses(self, images: torch.Tensor, labels: torch.Tensor,
                      valid: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The training step's tensors: network and Eq. 1 from the padded normalised batch
        (B, 3, H, W), labels (B, H, W) and valid (B, H, W); compiled by `compile_training`."""
        out = self.forward_features(images, with_feats=True)
        return self.criterion(out, images, labels, valid)

    def compile_training(self, mode: str = "default"):
        """torch.compile the training step's tensor part (backbone, heads, criterion) with
        `mode` (SOLVER.COMPILE). The modules are not wrapped: state_dict keys, checkpoints and
        inference are unchanged."""
        if mode not in COMPILE_MODES:
            raise ValueError(f"SOLVER.COMPILE must be '' (off) or one of {COMPILE_MODES}, got "
                             f"{mode!r}")
        # the pairwise implementation is chosen now, on the model's device, not while tracing
        self.criterion.impl = resolve_impl(self.criterion.impl, self.device)
        self._train_losses = torch.compile(self._train_losses, mode=mode)
        return self

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
