"""Detectron2's SemSegEvaluator, reading the class labels of an output ("sem_seg_labels", the
memory-bounded labels of `SemSegTTA(output="labels")`) when it has them."""
import numpy as np
from detectron2.evaluation import SemSegEvaluator

from .tta import labels_of

__all__ = ["DFRSemSegEvaluator"]


class DFRSemSegEvaluator(SemSegEvaluator):
    """SemSegEvaluator whose `process` takes an output's "sem_seg_labels" (H, W), else the
    argmax of its "sem_seg" (C, H, W); the same confusion matrix, boundary IoU and JSON
    predictions as Detectron2's (its `process`, with the prediction read by `labels_of`)."""

    accepts_labels = True

    def process(self, inputs, outputs):
        for input, output in zip(inputs, outputs):
            pred = np.array(labels_of(output).to(self._cpu_device), dtype=int)
            gt = self.sem_seg_loading_fn(self.input_file_to_gt_file[input["file_name"]], dtype=int)
            gt[gt == self._ignore_label] = self._num_classes
            self._conf_matrix += np.bincount(
                (self._num_classes + 1) * pred.reshape(-1) + gt.reshape(-1),
                minlength=self._conf_matrix.size,
            ).reshape(self._conf_matrix.shape)
            if self._compute_boundary_iou:
                b_gt = self._mask_to_boundary(gt.astype(np.uint8))
                b_pred = self._mask_to_boundary(pred.astype(np.uint8))
                self._b_conf_matrix += np.bincount(
                    (self._num_classes + 1) * b_pred.reshape(-1) + b_gt.reshape(-1),
                    minlength=self._conf_matrix.size,
                ).reshape(self._conf_matrix.shape)
            self._predictions.extend(self.encode_json_sem_seg(pred, input["file_name"]))
