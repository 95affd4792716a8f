"""DFR losses (Eq. 2-13 of "Dynamic Feature Regularized Loss for Weakly Supervised Semantic
Segmentation", arXiv:2108.01296): pure functions of tensors.

The pairwise losses loop over window offsets with shifted views (see `pairwise.py`), so their
memory is O(B·(C + d)·h·w) whatever the radius; gradients are accumulated in the same pass.
"""
from .dfr import confident_labels, dfr_loss
from .diagnostics import (DIAGNOSTIC_KEYS, feature_branch_diagnostics,
                          window_feature_distance, window_feature_distance_sum)
from .feature import LOG_EPS, feature_distance_loss, feature_regularized_loss
from .fused import pairwise_losses
from .pce import partial_cross_entropy

__all__ = [
    "partial_cross_entropy",
    "dfr_loss",
    "confident_labels",
    "feature_distance_loss",
    "feature_regularized_loss",
    "pairwise_losses",
    "feature_branch_diagnostics",
    "window_feature_distance",
    "window_feature_distance_sum",
    "DIAGNOSTIC_KEYS",
    "LOG_EPS",
]
