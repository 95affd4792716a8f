"""The converter, the evaluator and the mapper on the real VOC / ScribbleSup samples
(tests/fixtures/real_voc, origin and licence in its README)."""

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.data import transforms as T
from detectron2.evaluation import SemSegEvaluator
from PIL import Image
from scipy.ndimage import binary_dilation
from skimage.draw import line as sk_line

from dfr.data import scribbles as sio
from dfr.data.classes import CONTEXT59_CLASSES

XML_TAGS = ["sheep", "grass", "fence", "tree", "sky"]
TXT_IDS = ["2008_000003", "2011_003223"]
PNG_IDS = ["2007_000032", "2007_000033"]


def jpeg_hw(real_voc, iid):
    w, h = Image.open(real_voc / "jpg" / f"{iid}.jpg").size
    return h, w


def independent_3px(xml_path, h, w, tag_to_id):
    """Reference raster without dfr.data.scribbles: skimage Bresenham centre lines of each polygon,
    dilated by a 3x3 square, drawn in file order. Returns (label, centre-line mask)."""
    ref, centre = np.full((h, w), 255, np.uint8), np.zeros((h, w), bool)
    for poly in ET.parse(xml_path).getroot().iter("polygon"):
        pts = [(int(p.findtext("X")), int(p.findtext("Y"))) for p in poly.findall("point")]
        pts = [(min(max(x, 0), w - 1), min(max(y, 0), h - 1)) for x, y in pts]
        m = np.zeros((h, w), bool)
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
            r, c = sk_line(y0, x0, y1, x1)
            m[r, c] = True
        if len(pts) == 1:
            m[pts[0][1], pts[0][0]] = True
        centre |= m
        ref[binary_dilation(m, np.ones((3, 3), bool))] = tag_to_id[poly.findtext("tag")]
    return ref, centre


def polylines_xml(path, tag_to_id):
    """(class id, (N, 2) float points) per polygon, read with ElementTree (not the package)."""
    out = []
    for poly in ET.parse(path).getroot().iter("polygon"):
        pts = [(float(p.findtext("X")), float(p.findtext("Y"))) for p in poly.findall("point")]
        out.append((tag_to_id[poly.findtext("tag")], np.array(pts)))
    return out


def polylines_txt(path):
    out = []
    for line in Path(path).read_text().split():
        v = [float(t) for t in line.split(",")]
        out.append((int(v[0]), np.array(v[1:]).reshape(-1, 2)))
    return out


def brute_raster(polys, h, w, line_width=3, point_radius=1.0):
    """The standard conversion, straight from its definition (fixtures/README, dfr.data.scribbles
    docstring), one segment at a time: points clamped to the image; a pixel takes a polygon's
    id when its centre is within line_width / 2 of one of its segments (line_width 1:
    skimage's Bresenham lines); all-equal points: within point_radius of the point; later
    polygons overwrite earlier ones."""
    lab = np.full((h, w), 255, np.uint8)
    for cid, pts in polys:
        pts = np.stack([pts[:, 0].clip(0, w - 1), pts[:, 1].clip(0, h - 1)], 1)
        dot = bool((pts == pts[0]).all())
        if line_width == 1 and not dot:
            for (x0, y0), (x1, y1) in zip(pts[:-1].astype(int), pts[1:].astype(int)):
                r, c = sk_line(y0, x0, y1, x1)
                lab[r, c] = cid
            continue
        rad = point_radius if dot else line_width / 2
        for p, q in [(pts[0], pts[0])] if dot else zip(pts[:-1], pts[1:]):
            lo = np.maximum(np.floor(np.minimum(p, q) - rad), 0).astype(int)
            hi = np.minimum(np.ceil(np.maximum(p, q) + rad), [w - 1, h - 1]).astype(int)
            ys, xs = np.mgrid[lo[1] : hi[1] + 1, lo[0] : hi[0] + 1]
            d = q - p
            t = np.zeros(xs.shape)
            if d.any():
                t = (((xs - p[0]) * d[0] + (ys - p[1]) * d[1]) / (d @ d)).clip(0, 1)
            near = (xs - p[0] - t * d[0]) ** 2 + (ys - p[1] - t * d[1]) ** 2 <= rad**2 + 1e-9
            lab[ys[near], xs[near]] = cid
    return lab


@pytest.mark.parametrize("num_classes", [60, 59])
def test_real_xml_context_release(real_voc, num_classes):
    h, w = jpeg_hw(real_voc, "2008_003147")
    path = real_voc / "xml" / "test_2008_003147.xml"
    ss = sio.parse_scribble_xml(path, sio.context_tag_map(num_classes))
    assert ss.size == (375, 500) and ss.num_empty == 0 and len(ss) == 11
    # the file holds a 2-point polygon whose points coincide: drawn as a dot, no error
    assert sum(bool(np.all(s.points == s.points[:1])) for s in ss) == 1
    lab = sio.rasterize(ss, h, w)
    off = 1 if num_classes == 60 else 0
    ids = {t: CONTEXT59_CLASSES.index(t) + off for t in XML_TAGS}
    assert lab.shape == (h, w) and lab.dtype == np.uint8
    assert set(np.unique(lab).tolist()) == set(ids.values()) | {255}
    ref, centre = independent_3px(path, h, w, ids)
    labeled = lab != 255
    assert labeled[centre].all()  # every centre-line pixel is labeled ...
    assert not (
        labeled & ~binary_dilation(centre, np.ones((3, 3), bool))
    ).any()  # ... within 1 px of it
    both = labeled & (ref != 255)
    assert (lab[both] == ref[both]).mean() > 0.99  # same class where both label a pixel
    # pixel for pixel: the definition of the conversion, evaluated segment by segment
    polys = polylines_xml(path, ids)
    np.testing.assert_array_equal(lab, brute_raster(polys, h, w))
    frac = labeled.mean()
    # the same-release PNGs are 3.42 % and 2.92 % labeled: same line-width family
    png_fracs = [
        (np.asarray(Image.open(real_voc / "scribble_png" / f"{i}.png")) != 255).mean()
        for i in PNG_IDS
    ]
    assert all(0.5 < frac / f < 2.0 for f in png_fracs)
    # 1-px lines: Bresenham
    thin = sio.rasterize(ss, h, w, line_width=1)
    np.testing.assert_array_equal(thin, brute_raster(polys, h, w, line_width=1))


def test_real_txt_scribbles(real_voc):
    src = sio.open_scribble_source(real_voc / "scribble_txt")
    assert src.kind == "txt" and src.ids() == TXT_IDS
    for iid in TXT_IDS:
        h, w = jpeg_hw(real_voc, iid)
        lab, ss = src.load(iid, h, w)
        lines = (real_voc / "scribble_txt" / f"{iid}_scribble.txt").read_text().split()
        assert lab.shape == (h, w)
        assert set(np.unique(lab).tolist()) == {int(t.split(",")[0]) for t in lines} | {255}
        for s in ss:  # each scribble's own id at its first point (unless a later one overwrote it)
            x, y = np.clip(s.points[0], 0, [w - 1, h - 1]).astype(int)
            later = [t.class_id for t in ss.scribbles[ss.scribbles.index(s) + 1 :]]
            assert lab[y, x] == s.class_id or lab[y, x] in later
        polys = polylines_txt(real_voc / "scribble_txt" / f"{iid}_scribble.txt")
        np.testing.assert_array_equal(lab, brute_raster(polys, h, w))


def test_real_pngs_read_as_ready_labels(real_voc):
    src = sio.open_scribble_source(real_voc / "scribble_png")
    assert src.kind == "png" and src.ids() == PNG_IDS
    for iid in PNG_IDS:
        lab, ss = src.load(iid, *jpeg_hw(real_voc, iid))
        assert ss is None and set(np.unique(lab).tolist()) <= set(range(21)) | {255}
        # the same array as a plain PIL read of the palette PNG (indices = class ids)
        plain = Image.open(real_voc / "scribble_png" / f"{iid}.png")
        assert plain.mode in ("P", "L")
        np.testing.assert_array_equal(lab, np.asarray(plain))
        assert lab.dtype == np.uint8 and (lab != 255).any()


def _evaluate(recs, preds, out_dir):
    """Our evaluator for our registered VOC val set (Trainer.build_evaluator)."""
    from dfr.config import get_dfr_cfg
    from dfr.engine import Trainer

    cfg = get_dfr_cfg(None, ["OUTPUT_DIR", str(out_dir)])
    ev = Trainer.build_evaluator(cfg, "voc_2012_val_sem_seg", str(out_dir))
    assert isinstance(ev, SemSegEvaluator)
    ev.reset()
    for rec, pred in zip(recs, preds):
        scores = torch.nn.functional.one_hot(torch.as_tensor(pred, dtype=torch.long), 21)
        ev.process([rec], [{"sem_seg": scores.permute(2, 0, 1).float()}])
    return ev.evaluate()["sem_seg"]["mIoU"]


def test_real_gt_through_the_registered_val_set_and_our_evaluator(real_voc, tmp_path, monkeypatch):
    voc = tmp_path / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    for iid in PNG_IDS:
        shutil.copy(real_voc / "jpg" / f"{iid}.jpg", voc / "JPEGImages")
        shutil.copy(real_voc / "gt_png" / f"{iid}.png", voc / "SegmentationClassAug")
    (voc / "ImageSets/Segmentation/val.txt").write_text("\n".join(PNG_IDS) + "\n")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    recs = DatasetCatalog.get("voc_2012_val_sem_seg")
    assert [(r["image_id"], r["height"], r["width"]) for r in recs] == [
        (i, *jpeg_hw(real_voc, i)) for i in PNG_IDS]  # fmt: skip
    gts = [np.asarray(Image.open(r["sem_seg_file_name"])).astype(np.int64) for r in recs]
    assert (gts[0] == 255).any()  # the VOC boundary band: ignored, not a 22nd class
    perfect = _evaluate(recs, [np.where(g == 255, 0, g) for g in gts], tmp_path / "a")
    assert perfect == pytest.approx(100.0)
    # scribbles as predictions; their unlabeled (255) pixels are predicted as background (0)
    preds = [
        np.asarray(Image.open(real_voc / "scribble_png" / f"{i}.png")).astype(np.int64)
        for i in PNG_IDS
    ]
    preds = [np.where(p == 255, 0, p) for p in preds]
    conf = np.zeros((21, 21), np.int64)  # by hand: conf[gt, pred] over gt != 255
    for g, p in zip(gts, preds):
        k = g != 255
        np.add.at(conf, (g[k], p[k]), 1)
    tp, n_gt, n_pred = np.diag(conf), conf.sum(1), conf.sum(0)
    present = n_gt > 0  # SemSegEvaluator averages over classes present in the ground truth
    hand = 100 * np.mean(tp[present] / (n_gt + n_pred - tp)[present])
    assert _evaluate(recs, preds, tmp_path / "b") == pytest.approx(hand, abs=1e-9)


class _FixedCrop(T.Augmentation):
    def __init__(self, x0, y0, w, h):
        super().__init__()
        self.box = (x0, y0, w, h)

    def get_transform(self, image):
        return T.CropTransform(*self.box)


def test_real_scribble_pngs_through_registered_dataset_and_mapper(real_voc, tmp_path, monkeypatch):
    from dfr.data import ScribbleDatasetMapper

    voc = tmp_path / "VOC2012"
    for sub in (
        "JPEGImages",
        "pascal_2012_scribble",
        "SegmentationClassAug",
        "ImageSets/Segmentation",
    ):
        (voc / sub).mkdir(parents=True)
    for iid in PNG_IDS:
        shutil.copy(real_voc / "jpg" / f"{iid}.jpg", voc / "JPEGImages")
        shutil.copy(real_voc / "scribble_png" / f"{iid}.png", voc / "pascal_2012_scribble")
        shutil.copy(real_voc / "gt_png" / f"{iid}.png", voc / "SegmentationClassAug")
    (voc / "ImageSets/Segmentation/train_aug.txt").write_text("\n".join(PNG_IDS) + "\n")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    recs = DatasetCatalog.get("voc_2012_train_aug_scribble")
    assert [r["image_id"] for r in recs] == PNG_IDS

    x0, y0, cw, ch = 100, 60, 400, 300
    for rec in recs:
        h, w = rec["height"], rec["width"]
        augs = [T.Resize((2 * h, 2 * w)), T.RandomFlip(prob=1.0), _FixedCrop(x0, y0, cw, ch)]
        mapper = ScribbleDatasetMapper(is_train=True, num_classes=21, augmentations=augs)
        out = mapper(rec)
        img0 = np.asarray(Image.open(rec["file_name"]).convert("RGB")).astype(int)
        lab0 = np.asarray(Image.open(rec["sem_seg_file_name"]))
        img, lab = out["image"].permute(1, 2, 0).numpy().astype(int), out["sem_seg"].numpy()
        assert lab.shape == (ch, cw) and "valid" not in out  # the model pads, not the mapper
        # output (y, x) <- 2x-resized+flipped (y + y0, x + x0) <- original (y_r // 2, x_r // 2)
        ys, xs = np.mgrid[0:ch, 0:cw]
        yo, xo = (ys + y0) // 2, (2 * w - 1 - (xs + x0)) // 2
        np.testing.assert_array_equal(lab[:ch, :cw], lab0[yo, xo])  # nearest: exact
        k = np.flatnonzero(lab[:ch, :cw].reshape(-1) != 255)
        assert k.size > 500
        pick = k[:: max(1, k.size // 25)]  # a few labeled pixels: colours follow them
        diff = np.abs(
            img[:ch, :cw].reshape(-1, 3)[pick] - img0[yo.reshape(-1)[pick], xo.reshape(-1)[pick]]
        )
        assert np.median(diff) <= 4, diff.max()
        # a misaligned label (no flip) would point at other colours
        xo_bad = (xs + x0) // 2
        bad = np.abs(
            img[:ch, :cw].reshape(-1, 3)[pick]
            - img0[yo.reshape(-1)[pick], xo_bad.reshape(-1)[pick]]
        )
        assert np.mean(bad) > 3 * np.mean(diff), (np.mean(bad), np.mean(diff))
