"""The converter, the evaluator and the mapper on the real VOC / ScribbleSup samples
(../shared/real_voc; skipped when absent)."""

import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.evaluation import SemSegEvaluator
from PIL import Image
from scipy.ndimage import binary_dilation
from skimage.draw import line as sk_line

from dfr.data import scribble_io as sio
from dfr.data.classes import CONTEXT59_CLASSES, VOC_CLASSES

XML_TAGS = ["sheep", "grass", "fence", "tree", "sky"]
TXT_IDS = ["2007_009897", "2008_000003", "2008_000008", "2011_003223"]
PNG_IDS = ["2007_000032", "2007_000033"]


def jpeg_hw(real_voc, iid):
    w, h = Image.open(real_voc / "jpg" / f"{iid}.jpg").size
    return h, w


def independent_3px(xml_path, h, w, tag_to_id):
    """Reference raster without scribble_io: skimage Bresenham centre lines of each polygon,
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
    frac, ref_frac = labeled.mean(), (ref != 255).mean()
    # measured: 0.0385 (scribble_io: centre within 1.5 px) vs 0.0411 (3x3-dilated Bresenham)
    assert 0.90 < frac / ref_frac <= 1.0, (frac, ref_frac)
    assert 0.03 < frac < 0.045
    # the same-release PNGs are 3.42 % and 2.92 % labeled: same line-width family
    png_fracs = [
        (np.asarray(Image.open(real_voc / "scribble_png" / f"{i}.png")) != 255).mean()
        for i in PNG_IDS
    ]
    assert all(0.5 < frac / f < 2.0 for f in png_fracs)
    # 1-px lines label about a third of that
    assert 0.25 < sio.labeled_fraction(sio.rasterize(ss, h, w, line_width=1)) / frac < 0.4


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
        assert 0.01 < sio.labeled_fraction(lab) < 0.05


def test_real_pngs_read_as_ready_labels(real_voc):
    src = sio.open_scribble_source(real_voc / "scribble_png")
    assert src.kind == "png" and src.ids() == PNG_IDS
    for iid in PNG_IDS:
        lab, ss = src.load(iid, *jpeg_hw(real_voc, iid))
        assert ss is None and set(np.unique(lab).tolist()) <= set(range(21)) | {255}


def _register(name, real_voc, label_dir):
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    recs = []
    for iid in PNG_IDS:
        h, w = jpeg_hw(real_voc, iid)
        recs.append(
            {
                "file_name": str(real_voc / "jpg" / f"{iid}.jpg"),
                "image_id": iid,
                "height": h,
                "width": w,
                "sem_seg_file_name": str(real_voc / label_dir / f"{iid}.png"),
            }
        )
    DatasetCatalog.register(name, lambda: recs)
    MetadataCatalog.get(name).set(
        stuff_classes=VOC_CLASSES, ignore_label=255, evaluator_type="sem_seg"
    )
    return recs


def _evaluate(name, recs, preds):
    ev = SemSegEvaluator(name, distributed=False)
    ev.reset()
    for rec, pred in zip(recs, preds):
        scores = torch.nn.functional.one_hot(torch.as_tensor(pred, dtype=torch.long), 21).permute(
            2, 0, 1
        )
        ev.process([rec], [{"sem_seg": scores.float()}])
    return ev.evaluate()["sem_seg"]["mIoU"]


def test_real_gt_through_sem_seg_evaluator(real_voc):
    recs = _register("_real_voc_gt_eval", real_voc, "gt_png")
    gts = [np.asarray(Image.open(r["sem_seg_file_name"])).astype(np.int64) for r in recs]
    assert _evaluate(
        "_real_voc_gt_eval", recs, [np.where(g == 255, 0, g) for g in gts]
    ) == pytest.approx(100.0)
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
    got = _evaluate("_real_voc_gt_eval", recs, preds)
    assert got == pytest.approx(hand, abs=1e-9)
    assert 30 < got < 80  # background IoU is high, thin object scribbles give low object IoU


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
        mapper = ScribbleDatasetMapper(
            is_train=True, num_classes=21, pad_size=(512, 512), augmentations=augs
        )
        out = mapper(rec)
        img0 = np.asarray(Image.open(rec["file_name"]).convert("RGB")).astype(int)
        lab0 = np.asarray(Image.open(rec["sem_seg_file_name"]))
        img, lab = out["image"].permute(1, 2, 0).numpy().astype(int), out["sem_seg"].numpy()
        assert lab.shape == (512, 512) and (lab[ch:, :] == 255).all() and (lab[:, cw:] == 255).all()
        assert out["valid"][:ch, :cw].all() and not out["valid"][ch:].any()
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
