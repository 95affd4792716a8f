"""DFR losses (Eq. 2-13 of "Dynamic Feature Regularized Loss for Weakly Supervised Semantic
Segmentation", arXiv:2108.01296): pure functions of tensors.

The pairwise losses run in one pass over the window, in one of two implementations: shifted
views of the torch tensors (`pairwise.py`, any device and dtype, the reference) or fused Triton
kernels (`triton_pairwise.py`, two launches per forward + backward). Either way their memory is
O(B·(C + d)·h·w) whatever the radius. Importing this package imports torch only.
"""
from .dfr import confident_labels, dfr_loss
from .diagnostics import (DIAGNOSTIC_KEYS, diagnostic_values, feature_branch_diagnostics,
                          window_feature_distance, window_feature_distance_sum)
from .feature import LOG_EPS, feature_distance_loss, feature_regularized_loss
from .fused import pairwise_losses, resolve_impl
from .params import IMPLS, PairwiseParams
from .pce import partial_cross_entropy

__all__ = [
    "partial_cross_entropy",
    "dfr_loss",
    "confident_labels",
    "feature_distance_loss",
    "feature_regularized_loss",
    "pairwise_losses",
    "resolve_impl",
    "PairwiseParams",
    "IMPLS",
    "diagnostic_values",
    "feature_branch_diagnostics",
    "window_feature_distance",
    "window_feature_distance_sum",
    "DIAGNOSTIC_KEYS",
    "LOG_EPS",
]
