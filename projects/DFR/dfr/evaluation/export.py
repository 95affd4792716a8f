"""PASCAL VOC test-server export: one palette-indexed PNG per test image in the official
layout `results/VOC2012/Segmentation/comp6_test_cls/<image id>.png`, then zipped.

comp6 = "trained with data outside VOC 2012" (SBD train_aug, ScribbleSup scribbles).
Pixel values are class ids 0..20 (the VOC palette), the format of VOC's own annotations.
"""
import logging
import os
import zipfile
from collections import OrderedDict

import numpy as np
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from PIL import Image

from ..data.classes import voc_palette

__all__ = ["VOCSubmissionExporter", "save_indexed_png"]


def save_indexed_png(label: np.ndarray, path: str, palette: np.ndarray = None) -> None:
    """Write an (H, W) class-id map as a mode-"P" PNG with the VOC palette."""
    img = Image.fromarray(label.astype(np.uint8), mode="P")
    img.putpalette((voc_palette(256) if palette is None else palette).reshape(-1).tolist())
    img.save(path)


class VOCSubmissionExporter(DatasetEvaluator):
    """Writes predictions for the VOC evaluation server; `evaluate()` zips them (main rank).

    Args:
        output_dir: the folder receiving `results/...` and `<zip_name>`.
        year, comp, task: the folder names of the official layout.
        zip_name: archive name ("" = no archive).
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: str,
        *,
        year: str = "VOC2012",
        comp: str = "comp6",
        zip_name: str = "results.zip",
        distributed: bool = True,
    ):
        self._dataset_name = dataset_name
        self._root = output_dir
        self._rel = os.path.join("results", year, "Segmentation", f"{comp}_test_cls")
        self._zip_name = zip_name
        self._distributed = distributed
        self._logger = logging.getLogger(__name__)

    @property
    def result_dir(self) -> str:
        return os.path.join(self._root, self._rel)

    def reset(self):
        os.makedirs(self.result_dir, exist_ok=True)
        self._written = []

    accepts_labels = True  # reads "sem_seg_labels" (dfr.evaluation.tta.labels_of)

    def process(self, inputs, outputs):
        from .tta import labels_of

        for inp, out in zip(inputs, outputs):
            pred = labels_of(out).to("cpu").numpy().astype(np.uint8)
            stem = os.path.splitext(os.path.basename(inp["file_name"]))[0]
            name = stem + ".png"
            save_indexed_png(pred, os.path.join(self.result_dir, name))
            self._written.append(name)

    def evaluate(self):
        written = self._written
        if self._distributed:
            comm.synchronize()
            written = [n for part in comm.gather(written) for n in part]
            if not comm.is_main_process():
                return {}
        archive = ""
        if self._zip_name:
            archive = os.path.join(self._root, self._zip_name)
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
                for name in sorted(written):
                    zf.write(os.path.join(self.result_dir, name), os.path.join(self._rel, name))
        self._logger.info(
            f"Exported {len(written)} predictions of {self._dataset_name} to {self.result_dir}"
            + (f"; archive for the VOC server: {archive}" if archive else "")
        )
        return OrderedDict({"export": {"num_images": float(len(written))}})
