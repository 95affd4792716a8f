"""Partial cross-entropy on scribbles (Eq. 2)."""
import torch.nn.functional as F

from ._checks import check_labels, check_map

__all__ = ["partial_cross_entropy"]


def partial_cross_entropy(logits, labels, ignore_index=255):
    """Eq. 2: mean of −log P_t(i) over the labeled pixels of the whole batch.

    logits (B, C, H, W) raw scores, labels (B, H, W) integer class ids, `ignore_index` = unlabeled.
    Returns a scalar; 0 (with a zero gradient) when no pixel is labeled.
    """
    check_map("logits", logits)
    check_labels("labels", labels, logits.shape[0], logits.shape[2:])
    labels = labels.long()
    n = (labels != ignore_index).sum()
    loss = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
    return loss / n.clamp(min=1).to(loss.dtype)  # no host read: 0 with a gradient if n = 0
