"""Optimizer and LR schedule of the Swin UperNet recipe, built from Detectron2's solver parts.

- AdamW (or SGD) over `get_default_optimizer_params` groups: no weight decay on norm layers,
  biases and Swin's position tables (`relative_position_bias_table`, `absolute_pos_embed`).
- Gradient clipping through `maybe_add_gradient_clipping` (SOLVER.CLIP_GRADIENTS.*).
- "WarmupPolyLR": fvcore's PolynomialDecayParamScheduler inside Detectron2's
  WarmupParamScheduler + LRMultiplier (this Detectron2 has no WarmupPolyLR of its own);
  mmseg's `poly` policy: lr = base · (1 − t/T)^power, after a linear warmup. Any other
  SOLVER.LR_SCHEDULER_NAME is Detectron2's.
"""
import logging

import torch
from detectron2.solver import LRMultiplier, WarmupParamScheduler
from detectron2.solver import build_lr_scheduler as d2_build_lr_scheduler
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping
from fvcore.common.param_scheduler import ParamScheduler, PolynomialDecayParamScheduler

__all__ = ["build_optimizer", "build_lr_scheduler", "NO_DECAY_EMBED_NAMES", "PolyParamScheduler"]

# Swin's position tables (timm and official names); they get SOLVER.WEIGHT_DECAY_EMBED.
NO_DECAY_EMBED_NAMES = ("relative_position_bias_table", "absolute_pos_embed", "pos_embed")


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW / SGD with per-parameter groups (norms, biases, position tables without decay)."""
    embed = {"weight_decay": cfg.SOLVER.WEIGHT_DECAY_EMBED}
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        # Detectron2's WEIGHT_DECAY_BIAS default (None) means "as the weights"; the Swin
        # recipe puts no decay on biases, so None falls back to the norm value.
        weight_decay_bias=(
            cfg.SOLVER.WEIGHT_DECAY_BIAS
            if cfg.SOLVER.WEIGHT_DECAY_BIAS is not None
            else cfg.SOLVER.WEIGHT_DECAY_NORM
        ),
        overrides={name: dict(embed) for name in NO_DECAY_EMBED_NAMES},
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


def build_lr_scheduler(cfg, optimizer: torch.optim.Optimizer):
    """WarmupPolyLR from fvcore + Detectron2 parts; other names go to Detectron2."""
    if cfg.SOLVER.LR_SCHEDULER_NAME != "WarmupPolyLR":
        return d2_build_lr_scheduler(cfg, optimizer)
    max_iter = cfg.SOLVER.MAX_ITER
    sched = WarmupParamScheduler(
        PolyParamScheduler(cfg.SOLVER.POLY_LR_POWER, cfg.SOLVER.POLY_LR_CONSTANT_ENDING),
        cfg.SOLVER.WARMUP_FACTOR,
        min(cfg.SOLVER.WARMUP_ITERS / max_iter, 1.0),
        cfg.SOLVER.WARMUP_METHOD,
        cfg.SOLVER.RESCALE_INTERVAL,
    )
    logging.getLogger(__name__).info(
        f"WarmupPolyLR: base_lr={cfg.SOLVER.BASE_LR}, power={cfg.SOLVER.POLY_LR_POWER}, "
        f"warmup {cfg.SOLVER.WARMUP_ITERS} it from x{cfg.SOLVER.WARMUP_FACTOR}"
    )
    return LRMultiplier(optimizer, multiplier=sched, max_iter=max_iter)
