"""Optimizer and LR schedule of the Swin UperNet recipe, built from Detectron2's solver parts.

- AdamW (or SGD) over mmseg's Swin `paramwise_cfg` groups (custom_keys "norm",
  "relative_position_bias_table", "absolute_pos_embed" -> decay_mult 0): no weight decay on the
  backbone's LayerNorms and position tables; everything else, biases and the heads'
  BatchNorm included, decays with SOLVER.WEIGHT_DECAY (mmseg's heads name BN "bn", so its
  "norm" key never reaches them).
- Gradient clipping through `maybe_add_gradient_clipping` (SOLVER.CLIP_GRADIENTS.*).
- "WarmupPolyLR": fvcore's PolynomialDecayParamScheduler times mmcv's warmup factor
  (`WarmupMultiplierScheduler`), stepped by Detectron2's LRMultiplier.
  It is the official Swin / mmseg 0.x (mmcv) `poly` policy of the paper's era:
  lr(t) = base · (1 − t/T)^power · (r + (1 − r)·t/W) during the W warmup iterations, poly
  from t = 0. (mmseg 1.x's config instead runs LinearLR for W iterations and starts PolyLR at
  t = W, i.e. (1 − (t − W)/(T − W))^power.) Any other SOLVER.LR_SCHEDULER_NAME is Detectron2's.
"""
import logging

import torch
from detectron2.solver import LRMultiplier
from detectron2.solver import build_lr_scheduler as d2_build_lr_scheduler
from detectron2.solver.build import reduce_param_groups
from detectron2.solver.build import maybe_add_gradient_clipping
from fvcore.common.param_scheduler import ParamScheduler, PolynomialDecayParamScheduler

__all__ = [
    "build_optimizer",
    "build_lr_scheduler",
    "swin_param_groups",
    "NO_DECAY_EMBED_NAMES",
    "PolyParamScheduler",
    "WarmupMultiplierScheduler",
]

# Swin's position tables (timm and official names); they get SOLVER.WEIGHT_DECAY_EMBED.
NO_DECAY_EMBED_NAMES = ("relative_position_bias_table", "absolute_pos_embed", "pos_embed")
# mmseg's "norm" custom key matches the Swin backbone's LayerNorms (norm1/2, patch-embed and
# patch-merging norms, the output norms) and nothing in the UperNet / FCN heads.
NO_DECAY_NORM_TYPES = (torch.nn.LayerNorm, torch.nn.GroupNorm)


def swin_param_groups(
    model: torch.nn.Module,
    base_lr: float,
    weight_decay: float,
    weight_decay_norm: float = 0.0,
    weight_decay_embed: float = 0.0,
    weight_decay_bias=None,
    bias_lr_factor: float = 1.0,
):
    """Optimizer groups of mmseg's Swin `paramwise_cfg`: LayerNorm/GroupNorm parameters get
    `weight_decay_norm`, position tables `weight_decay_embed`, biases `weight_decay_bias`
    (None: as their module), the rest `weight_decay`. Frozen parameters are left out."""
    groups, seen = [], set()
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or p in seen:
                continue
            seen.add(p)
            wd, lr = weight_decay, base_lr
            if isinstance(module, NO_DECAY_NORM_TYPES):
                wd = weight_decay_norm
            elif name in NO_DECAY_EMBED_NAMES:
                wd = weight_decay_embed
            elif name == "bias":
                lr = base_lr * bias_lr_factor
                if weight_decay_bias is not None:
                    wd = weight_decay_bias
            groups.append({"params": [p], "lr": lr, "weight_decay": wd})
    return reduce_param_groups(groups)


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW / SGD over `swin_param_groups` (mmseg's Swin paramwise_cfg)."""
    params = swin_param_groups(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        weight_decay_embed=cfg.SOLVER.WEIGHT_DECAY_EMBED,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
    )
    name = cfg.SOLVER.OPTIMIZER.upper()
    if name == "ADAMW":
        optimizer = torch.optim.AdamW(
            params,
            lr=cfg.SOLVER.BASE_LR,
            betas=tuple(cfg.SOLVER.BETAS),
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        )
    elif name == "SGD":
        optimizer = torch.optim.SGD(
            params,
            lr=cfg.SOLVER.BASE_LR,
            momentum=cfg.SOLVER.MOMENTUM,
            nesterov=cfg.SOLVER.NESTEROV,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        )
    else:
        raise ValueError(f"SOLVER.OPTIMIZER must be 'ADAMW' or 'SGD', got {cfg.SOLVER.OPTIMIZER!r}")
    return maybe_add_gradient_clipping(cfg, optimizer)


class PolyParamScheduler(ParamScheduler):
    """(1 − t)^power, floored at `constant_ending` (Mask2Former's WarmupPolyLR option)."""

    def __init__(self, power: float = 1.0, constant_ending: float = 0.0):
        self._poly = PolynomialDecayParamScheduler(base_value=1.0, power=power)
        self._floor = constant_ending

    def __call__(self, where: float) -> float:
        return max(self._poly(where), self._floor)


class WarmupMultiplierScheduler(ParamScheduler):
    """mmcv's warmup: the main schedule's value at t times a warmup factor that reaches 1 at
    `warmup_length` — linear r + (1 − r)·t/W, "exp" r^(1 − t/W), "constant" r. Detectron2's
    WarmupParamScheduler instead interpolates from r·main(0) to main(W): 1.9 % lower at
    iteration 750 of the 40k poly recipe's 1500 warmup iterations."""

    def __init__(self, scheduler: ParamScheduler, warmup_factor: float, warmup_length: float,
                 warmup_method: str = "linear"):  # fmt: skip
        if warmup_method not in ("linear", "exp", "constant"):
            raise ValueError(f"SOLVER.WARMUP_METHOD must be linear, exp or constant, "
                             f"got {warmup_method!r}")  # fmt: skip
        self._main, self._r, self._w, self._method = (
            scheduler, warmup_factor, warmup_length, warmup_method
        )

    def __call__(self, where: float) -> float:
        value = self._main(where)
        if where >= self._w:
            return value
        t = where / self._w
        if self._method == "linear":
            return value * (self._r + (1.0 - self._r) * t)
        if self._method == "exp":
            return value * self._r ** (1.0 - t)
        return value * self._r


def build_lr_scheduler(cfg, optimizer: torch.optim.Optimizer):
    """WarmupPolyLR from fvcore + Detectron2 parts; other names go to Detectron2."""
    if cfg.SOLVER.LR_SCHEDULER_NAME != "WarmupPolyLR":
        return d2_build_lr_scheduler(cfg, optimizer)
    max_iter = cfg.SOLVER.MAX_ITER
    sched = WarmupMultiplierScheduler(
        PolyParamScheduler(cfg.SOLVER.POLY_LR_POWER, cfg.SOLVER.POLY_LR_CONSTANT_ENDING),
        cfg.SOLVER.WARMUP_FACTOR,
        min(cfg.SOLVER.WARMUP_ITERS / max_iter, 1.0),
        cfg.SOLVER.WARMUP_METHOD,
    )
    logging.getLogger(__name__).info(
        f"WarmupPolyLR: base_lr={cfg.SOLVER.BASE_LR}, power={cfg.SOLVER.POLY_LR_POWER}, "
        f"warmup {cfg.SOLVER.WARMUP_ITERS} it from x{cfg.SOLVER.WARMUP_FACTOR}"
    )
    return LRMultiplier(optimizer, multiplier=sched, max_iter=max_iter)
