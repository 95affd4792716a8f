#!/usr/bin/env python
"""Run a trained DFR model on your own images (the shape of Detectron2's demo/demo.py).

    python projects/DFR/demo/demo.py --config-file <cfg.yaml> \
        --input photos/ one.jpg "more/*.png" --output output/demo \
        --opts MODEL.WEIGHTS output/run/model_final.pth      [--tta]

For every input image <stem> it writes, under --output:

    <stem>_overlay.png   the image with the predicted classes drawn over it (Detectron2's
                         Visualizer.draw_sem_seg: class names and colours of the dataset;
                         above 4 Mpx the colours alone, which take far less memory)
    <stem>_label.png     the predicted class ids as a palette PNG (pixel value = class id,
                         palette = the dataset's colours)

--input takes image files, glob patterns and folders (their images, not recursive). Images go
through the evaluation pipeline (dfr.engine.Trainer.test): the config's test-time resize and
TEST.MODE ("whole" / "slide"), and with --tta multi-scale + flip (TEST.AUG.SCALES / FLIP,
dfr.evaluation.SemSegTTA); the labels at the original size take memory independent of the
number of classes (TEST.RESIZE_CHUNK_MB), and an image whose inference would not fit
(TEST.MEMORY_LIMIT_MB, default: the memory available) is skipped, naming the size that would
fit. Class names and colours come from --dataset (default: the first of
DATASETS.TEST, else of DATASETS.TRAIN; the datasets of the config's DATASETS.DFR.CUSTOM are
registered by dfr.data.register_datasets_from_cfg).
Runs on the config's MODEL.DEVICE, CPU when CUDA is missing.
"""
# First: importing dfr silences the torch.jit FutureWarnings of detectron2 / fvcore imports.
import dfr  # noqa: F401  isort: skip

import argparse
import glob
import logging
import os
import sys

import numpy as np

logger = logging.getLogger("dfr.demo")


def parse_args(argv=None):
    from dfr.cli import HelpFormatter

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter
    )
    p.add_argument("--config-file", required=True, metavar="FILE", help="path to config file")
    p.add_argument("--input", nargs="+", required=True,
                   help="image files, glob patterns ('dir/*.jpg') or folders")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--tta", action="store_true",
                   help="multi-scale + flip inference (TEST.AUG.SCALES, TEST.AUG.FLIP)")
    p.add_argument("--dataset", default=None,
                   help="registered dataset whose class names / colours label the output")
    p.add_argument("--opts", default=[], nargs=argparse.REMAINDER,
                   help="config overrides as KEY VALUE pairs, e.g. MODEL.WEIGHTS model.pth")
    return p.parse_args(argv)  # fmt: skip


def collect_inputs(inputs):
    """Files, globs and folders -> sorted image paths; an output name (file stem) used twice
    or an input that matches nothing is an error."""
    from dfr.data.images import IMAGE_EXTENSIONS

    paths = []
    for x in inputs:
        if os.path.isdir(x):
            names = sorted(f for f in os.listdir(x) if not f.startswith("."))
            found = [os.path.join(x, f) for f in names if f.lower().endswith(IMAGE_EXTENSIONS)]
            if not found:
                raise FileNotFoundError(f"--input folder {x} holds no image ({IMAGE_EXTENSIONS})")
            other = [f for f in names if not f.lower().endswith(IMAGE_EXTENSIONS)
                     and os.path.isfile(os.path.join(x, f))]  # fmt: skip
            if other:
                logger.warning(f"--input folder {x}: skipped {len(other)} file(s) that are not "
                               f"images {IMAGE_EXTENSIONS}: {', '.join(other)}")  # fmt: skip
        elif os.path.isfile(x):
            found = [x]
        else:
            found = sorted(glob.glob(os.path.expanduser(x)))
            if not found:
                raise FileNotFoundError(f"--input {x}: no such file, folder or matching file")
        paths += found
    by_stem = {}
    for p in paths:
        stem = os.path.splitext(os.path.basename(p))[0]
        if stem in by_stem and os.path.abspath(by_stem[stem]) != os.path.abspath(p):
            raise ValueError(
                f"two inputs would write the same outputs {stem}_*.png: {by_stem[stem]}, {p}"
            )
        by_stem[stem] = p
    return list(by_stem.values())


def dataset_metadata(cfg, name=None):
    """(class names, colours) from `name` or the config's datasets; generic names (and the VOC
    palette) when none is registered with as many classes as the model predicts."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from dfr.data.classes import voc_colors

    n = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    candidates = [name] if name else list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN)
    for ds in candidates:
        if name and ds not in DatasetCatalog.list():
            raise KeyError(f"--dataset {ds!r} is not registered")
        meta = MetadataCatalog.get(ds) if ds in DatasetCatalog.list() else None
        classes = getattr(meta, "stuff_classes", None)
        if classes is not None and len(classes) == n:
            colors = getattr(meta, "stuff_colors", None) or voc_colors(n)
            return list(classes), [list(map(int, c)) for c in colors]
        if name:
            raise ValueError(f"--dataset {ds!r} has {len(classes or [])} classes, model {n}")
    logger.warning(f"no registered dataset with {n} classes in the config: generic class names")
    return [f"class {i}" for i in range(n)], voc_colors(n)


# Detectron2's Visualizer (class names, outlines) takes ~120 bytes per pixel (a 4000x3000 photo:
# +1.4 GB); larger images get the colours alone (`blend_overlay`, a few bytes per pixel).
VISUALIZER_MAX_PX = 4_000_000


def blend_overlay(image: np.ndarray, label: np.ndarray, palette: np.ndarray,
                  alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 image with each pixel's class colour `palette[label]` blended in at
    `alpha` (what draw_sem_seg does to the pixels), in blocks of rows."""
    out = np.empty_like(image)
    for y0 in range(0, image.shape[0], 256):
        rows = slice(y0, y0 + 256)
        mix = image[rows] * (1 - alpha) + palette[label[rows]] * alpha
        out[rows] = np.clip(np.rint(mix), 0, 255).astype(np.uint8)
    return out


def _writer(out_dir, classes, colors, total):
    """A DatasetEvaluator that writes the overlay and the label PNG of every prediction."""
    from detectron2.data import detection_utils as utils
    from detectron2.data.catalog import Metadata
    from detectron2.evaluation import DatasetEvaluator
    from detectron2.utils.visualizer import Visualizer
    from PIL import Image
    from tqdm import tqdm

    from dfr.data.classes import voc_palette
    from dfr.evaluation import labels_of, save_indexed_png

    meta = Metadata(stuff_classes=classes, stuff_colors=colors)
    palette = voc_palette(256).copy()
    palette[: len(colors)] = np.asarray(colors, dtype=np.uint8)

    class DemoWriter(DatasetEvaluator):
        def reset(self):
            self.written = []
            self.bar = tqdm(total=total, desc="demo", unit="img")

        accepts_labels = True  # Trainer.test then predicts labels with bounded memory

        def process(self, inputs, outputs):
            for inp, out in zip(inputs, outputs):
                label = labels_of(out).to("cpu").numpy().astype(np.uint8)
                image = utils.read_image(inp["file_name"], format="RGB")
                name = os.path.splitext(os.path.basename(inp["file_name"]))[0]
                stem = os.path.join(out_dir, name)
                if label.size <= VISUALIZER_MAX_PX:
                    overlay = Visualizer(image, meta).draw_sem_seg(label, alpha=0.5).get_image()
                else:
                    overlay = blend_overlay(image, label, palette[:, :3])
                Image.fromarray(overlay).save(stem + "_overlay.png")
                del overlay, image
                save_indexed_png(label, stem + "_label.png", palette)
                self.written += [stem + "_overlay.png", stem + "_label.png"]
                self.bar.update(1)

        def evaluate(self):
            self.bar.close()
            return {}

    return DemoWriter()


def run(argv=None):
    """Predict every readable input; returns (files written: overlay, label per image in
    input order; inputs that could not be read or predicted). An unreadable image, or one
    whose inference would not fit in memory (TEST.MEMORY_LIMIT_MB; the message gives the size
    that would), is reported by name and skipped; the others are written."""
    args = parse_args(argv)
    from detectron2.data import DatasetCatalog
    from detectron2.utils.logger import setup_logger

    from dfr.config import get_dfr_cfg
    from dfr.data import register_datasets_from_cfg
    from dfr.data.images import image_hw
    from dfr.engine import DFRCheckpointer, Trainer
    from dfr.engine.checks import check_config_values
    from dfr.evaluation import InferenceMemoryError, SemSegTTA

    setup_logger(name="dfr")
    paths = collect_inputs(args.input)
    cfg = get_dfr_cfg(args.config_file, args.opts)
    register_datasets_from_cfg(cfg)
    check_config_values(cfg, train=False)  # the model keys' ranges, before anything is built
    classes, colors = dataset_metadata(cfg, args.dataset)

    name = f"dfr_demo_inputs_{os.getpid()}"
    records, failed = [], []
    for p in paths:
        try:  # decoded in full (a truncated JPEG fails here, not in the middle of the run)
            h, w = image_hw(p, decode=True)  # after EXIF orientation, as read_image loads it
        except Exception as e:
            logger.error(f"{p}: cannot read the image ({type(e).__name__}: {e}); skipped")
            failed.append(p)
            continue
        records.append({"file_name": p, "image_id": os.path.splitext(os.path.basename(p))[0],
                        "height": h, "width": w})  # fmt: skip
    if not records:
        logger.error(f"none of the {len(paths)} input(s) could be read")
        return [], failed
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    DatasetCatalog.register(name, lambda: records)
    cfg.DATASETS.TEST = (name,)
    cfg.freeze()

    model = Trainer.build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        DFRCheckpointer.from_config(cfg, model, save_dir="").load(cfg.MODEL.WEIGHTS)
    else:
        logger.warning("MODEL.WEIGHTS is empty: predicting with random weights")
    # labels at the original size with bounded memory; an image that cannot fit is refused
    # by name (with the size that would fit) before any is predicted, the others written
    model = SemSegTTA(cfg, model, tta=args.tta, output="labels")
    for rec in list(records):
        try:
            model.check_memory((rec["height"], rec["width"]), model.num_classes, rec["file_name"])
        except InferenceMemoryError as e:
            logger.error(f"{e} Skipped.")
            failed.append(rec["file_name"])
            records.remove(rec)
    if not records:
        logger.error(f"none of the {len(paths)} input(s) could be read and predicted")
        DatasetCatalog.remove(name)
        return [], failed
    os.makedirs(args.output, exist_ok=True)
    writer = _writer(args.output, classes, colors, len(records))
    try:
        Trainer.test(cfg, model, [writer])
    finally:
        DatasetCatalog.remove(name)
    logger.info(f"wrote {len(writer.written)} files for {len(records)} images to {args.output}")
    if failed:
        logger.error(f"{len(failed)} input(s) could not be read or predicted: "
                     f"{', '.join(failed)}")  # fmt: skip
    return writer.written, failed


def main(argv=None):
    """The files written (see `run`; the command line's exit status is 1 when an input
    could not be read)."""
    return run(argv)[0]


if __name__ == "__main__":
    sys.exit(1 if run()[1] else 0)
