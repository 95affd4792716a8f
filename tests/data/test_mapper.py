"""ScribbleDatasetMapper + transforms: output contract under every augmentation, flip
alignment, nearest-only labels, no padding (the model pads after normalising), test mode,
and the clear errors for bad inputs."""

import logging
import os
from pathlib import Path

import numpy as np
from helpers import FIXTURES
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import transforms as T
from PIL import Image

from dfr import add_dfr_config
from dfr.data import PhotometricDistortion, PhotometricTransform, RandomScaleKeepRatio
from dfr.data import ScribbleDatasetMapper, build_train_augmentations

NUM_CLASSES = 21


def _write(tmp_path, name, image, label=None):
    rec = {"file_name": str(tmp_path / f"{name}.png"), "image_id": name,
           "height": image.shape[0], "width": image.shape[1]}  # fmt: skip
    Image.fromarray(image).save(rec["file_name"])
    if label is not None:
        rec["sem_seg_file_name"] = str(tmp_path / f"{name}_label.png")
        Image.fromarray(label).save(rec["sem_seg_file_name"])
    return rec


def _pattern(h=60, w=90):
    """Label = vertical bands of ids 0, 3, 7, 255 (+ a horizontal ramp); the image encodes
    the label in its red channel (id * 20) and x in green, so alignment can be checked."""
    x = np.arange(w)
    lab_row = np.array([0, 3, 7, 255])[(x * 4) // w]
    label = np.repeat(lab_row[None], h, 0).astype(np.uint8)
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.where(label == 255, 250, label * 20)
    image[..., 1] = (x * 255 // (w - 1))[None]
    image[..., 2] = 128
    return image, label


def _mapper(augs, is_train=True):
    return ScribbleDatasetMapper(is_train=is_train, augmentations=augs, num_classes=NUM_CLASSES)


def _check_contract(out, max_size):
    h, w = out["image"].shape[-2:]
    assert h <= max_size[0] and w <= max_size[1], (h, w)
    assert out["image"].dtype == torch.uint8 and out["image"].shape == (3, h, w)
    assert out["sem_seg"].dtype == torch.long and out["sem_seg"].shape == (h, w)
    assert "valid" not in out  # nothing is padded in the mapper
    vals = set(out["sem_seg"].unique().tolist())
    assert vals <= {0, 3, 7, 255}, vals  # nearest only: no interpolated ids


@pytest.mark.parametrize(
    "which",
    ["resize", "crop", "flip", "photometric", "all"],
)
def test_output_contract_under_each_augmentation(tmp_path, which):
    np.random.seed(0)
    image, label = _pattern()
    rec = _write(tmp_path, "p", image, label)
    augs = {
        "resize": [RandomScaleKeepRatio((90, 30), (0.5, 2.0))],  # <= 60x90
        "crop": [T.RandomCrop_CategoryAreaConstraint("absolute", (48, 64), 0.75, 255)],
        "flip": [T.RandomFlip(prob=1.0)],
        "photometric": [PhotometricDistortion()],
        "all": build_train_augmentations((64, 64), (200, 50), (0.5, 2.0)),
    }[which]
    m = _mapper(augs)
    bound = {"resize": (60, 90), "crop": (48, 64), "all": (64, 64)}.get(which, (60, 90))
    for _ in range(8):
        out = m(rec)
        _check_contract(out, bound)
        assert (out["height"], out["width"], out["image_id"]) == (60, 90, "p")


def test_flip_keeps_image_and_label_aligned(tmp_path):
    image, label = _pattern()
    rec = _write(tmp_path, "p", image, label)
    out = _mapper([T.RandomFlip(prob=1.0)])(rec)
    lab, red, green = out["sem_seg"].numpy(), out["image"][0].numpy(), out["image"][1].numpy()
    assert (lab == label[:, ::-1]).all() and (green[:, 0] == 255).all()
    assert (red == np.where(lab == 255, 250, lab * 20)).all()


def test_training_pipeline_flips_half_and_distorts_most_samples(tmp_path):
    """The default training pipeline (no rescale here: ratio 1) against the source arrays: every
    output label is a 64-px-wide window of the source label, mirrored in about half of the
    samples (flip_prob 0.5), and the image is that window of the source image (mirrored alike)
    changed by the photometric distortion in most samples (each of its 4 steps has p = 0.5:
    unchanged in 1/16). A no-op flip or a no-op distortion fails."""
    np.random.seed(4)
    image, label = _pattern(60, 90)
    image[..., 2] = np.arange(60)[:, None] * 4  # a vertical ramp too: no symmetric window
    rec = _write(tmp_path, "p", image, label)
    m = _mapper(build_train_augmentations((60, 64), (90, 60), (1.0, 1.0)))
    flipped = changed = 0
    n = 64
    for _ in range(n):
        out = m(rec)
        lab, img = out["sem_seg"].numpy(), out["image"].permute(1, 2, 0).numpy()
        assert lab.shape == (60, 64)
        src = None
        for x0 in range(90 - 64 + 1):
            for flip in (False, True):
                win = label[:, x0 : x0 + 64][:, ::-1] if flip else label[:, x0 : x0 + 64]
                if (win == lab).all():  # unique: the bands 0, 3, 7, 255 are not symmetric
                    src = (x0, flip)
        assert src is not None, "the label is not a window of the source label"
        x0, flip = src
        want = image[:, x0 : x0 + 64][:, ::-1] if flip else image[:, x0 : x0 + 64]
        flipped += flip
        changed += not np.array_equal(img, want)
    assert 0.3 < flipped / n < 0.7, flipped
    assert changed / n > 0.75, changed


def test_full_pipeline_keeps_alignment_away_from_edges(tmp_path):
    np.random.seed(1)
    image, label = _pattern(120, 160)
    rec = _write(tmp_path, "p", image, label)
    augs = build_train_augmentations((96, 96), (300, 80), (0.5, 2.0), photometric=False)
    m = _mapper(augs)
    for _ in range(10):
        out = m(rec)
        lab, red = out["sem_seg"].numpy(), out["image"][0].numpy().astype(int)
        expect = np.where(lab == 255, 250, lab * 20)
        agree = (np.abs(red - expect) <= 2).mean()
        assert agree > 0.9, agree  # only pixels on resampled band edges may differ


def test_nearest_only_labels_under_resize(tmp_path):
    np.random.seed(2)
    rng = np.random.default_rng(0)
    label = rng.choice(np.array([1, 5, 9, 255], np.uint8), size=(37, 53))
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rec = _write(tmp_path, "r", image, label)
    m = _mapper([RandomScaleKeepRatio((300, 100), (0.5, 2.0))])
    for _ in range(10):
        assert set(m(rec)["sem_seg"].unique().tolist()) <= {1, 5, 9, 255}


def test_keep_ratio_resize_matches_mmseg_rule():
    np.random.seed(3)
    aug = RandomScaleKeepRatio((2048, 512), (1.0, 1.0))
    t = aug.get_transform(np.zeros((375, 500, 3), np.uint8))  # a VOC-sized image
    assert (t.new_h, t.new_w) == (512, 683)  # short side 512 binds before long side 2048


def test_photometric_changes_image_only_and_stays_uint8():
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    seg = np.full((20, 30), 7, np.uint8)
    t = PhotometricTransform(brightness=20.0, contrast=None, saturation=None, hue=None)
    out = t.apply_image(img)
    assert out.dtype == np.uint8
    assert (out.astype(int) == np.clip(img.astype(int) + 20, 0, 255)).all()
    assert (t.apply_segmentation(seg) == seg).all()
    t = PhotometricTransform(brightness=None, contrast=1.2, contrast_first=False, saturation=0.5,
                             hue=10)  # fmt: skip
    assert t.apply_image(img).dtype == np.uint8 and not (t.apply_image(img) == img).all()


def test_photometric_distortion_equals_mmseg_on_its_own_output():
    """Same seed -> the same draws and the same uint8 image as mmsegmentation 1.2.2's
    PhotoMetricDistortion (tests/fixtures/mmseg_photometric, written by
    tools/check_mmseg_parity.py --photometric-fixture from mmseg itself): order, probabilities,
    ranges and the truncation to uint8 after every step."""
    fx = np.load(FIXTURES / "mmseg_photometric" / "photometric.npz")
    image = fx["image"]
    aug = PhotometricDistortion()
    kinds = set()
    for seed, expected, next_draw in zip(fx["seeds"], fx["outputs"], fx["next_draw"]):
        np.random.seed(int(seed))
        t = aug.get_transform(image)
        out = t.apply_image(image.copy())
        assert np.random.rand() == next_draw, f"seed {seed}: not mmseg's number of draws"
        diff = np.abs(out.astype(int) - expected).max()
        assert out.dtype == np.uint8 and diff == 0, f"seed {seed}: {t}, max |diff| {diff}"
        kinds.add((t.brightness is None, t.contrast is None, t.contrast_first,
                   t.saturation is None, t.hue is None))  # fmt: skip
    assert len(kinds) >= 24  # most of the 32 branch combinations are exercised


def test_test_mode_has_no_augmentation_or_padding_and_optional_label(tmp_path):
    image, label = _pattern(33, 47)
    m = _mapper([], is_train=False)
    out = m(_write(tmp_path, "a", image, label))
    assert (
        out["image"].shape == (3, 33, 47) and (out["image"].permute(1, 2, 0).numpy() == image).all()
    )
    assert (out["sem_seg"].numpy() == label).all() and "valid" not in out
    out = m(_write(tmp_path, "b", image))
    assert "sem_seg" not in out and out["height"] == 33


def test_from_config_and_logged_augmentations(caplog):
    cfg = get_cfg()
    add_dfr_config(cfg)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 21
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.CROP.ENABLED, cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE = True, "absolute", [512, 512]
    cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 0.75
    # Attach caplog's handler to the logger itself: a Detectron2 setup_logger() run by an
    # earlier test (train_net) stops "dfr" records from propagating to the root logger.
    logger = logging.getLogger("dfr.data.dataset_mapper")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="dfr.data.dataset_mapper"):
            m = ScribbleDatasetMapper(cfg, is_train=True)
    finally:
        logger.removeHandler(caplog.handler)
    names = [type(a).__name__ for a in m.augmentations.augs]
    assert names == ["RandomScaleKeepRatio", "RandomCrop_CategoryAreaConstraint", "RandomFlip",
                     "PhotometricDistortion"]  # fmt: skip
    assert m.augmentations.augs[1].single_category_max_area == 0.75
    assert "RandomScaleKeepRatio(scale=(2048, 512)" in caplog.text
    test = ScribbleDatasetMapper(cfg, is_train=False)
    assert test.augmentations.augs == []
    cfg.INPUT.DFR.TEST_RESIZE = True  # mmseg's test resize: deterministic, ratio 1
    (aug,) = ScribbleDatasetMapper(cfg, is_train=False).augmentations.augs
    t = aug.get_transform(np.zeros((375, 500, 3), np.uint8))
    assert (t.new_h, t.new_w) == (512, 683)


# ---- bad inputs: each names the file ----


def test_corrupt_jpeg_names_file(tmp_path):
    good = tmp_path / "ok.jpg"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(good)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(good.read_bytes()[:60])  # truncated
    with pytest.raises(ValueError, match="broken.jpg"):
        _mapper([], is_train=False)({"file_name": str(bad), "height": 40, "width": 40})
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="junk.jpg"):
        _mapper([], is_train=False)({"file_name": str(junk)})


def test_size_mismatch_names_label_file(tmp_path):
    rec = _write(tmp_path, "img", np.zeros((20, 30, 3), np.uint8))
    rec["sem_seg_file_name"] = str(tmp_path / "small_label.png")
    Image.fromarray(np.zeros((20, 29), np.uint8)).save(rec["sem_seg_file_name"])
    with pytest.raises(ValueError, match=r"small_label.png is 29x20 .* is 30x20"):
        _mapper([])(rec)


def test_out_of_range_label_names_file_and_values(tmp_path):
    label = np.zeros((20, 30), np.uint8)
    label[0, 0], label[1, 1] = 21, 254
    rec = _write(tmp_path, "oor", np.zeros((20, 30, 3), np.uint8), label)
    with pytest.raises(ValueError, match=r"oor_label.png has values \[21, 254\] outside"):
        _mapper([])(rec)


def test_colour_label_map_is_rejected(tmp_path):
    rec = _write(tmp_path, "rgb", np.zeros((20, 30, 3), np.uint8), np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(ValueError, match="rgb_label.png"):
        _mapper([])(rec)


def test_missing_image_names_file(tmp_path):
    with pytest.raises(ValueError, match="nope.jpg"):
        _mapper([])({"file_name": os.path.join(str(tmp_path), "nope.jpg")})


def test_real_voc_image_and_scribble_through_the_paper_pipeline(real_voc):
    np.random.seed(5)
    rec = {
        "file_name": str(real_voc / "jpg" / "2007_000032.jpg"),
        "sem_seg_file_name": str(real_voc / "scribble_png" / "2007_000032.png"),
        "image_id": "2007_000032",
    }
    orig = set(np.unique(np.asarray(Image.open(rec["sem_seg_file_name"]))).tolist())
    m = _mapper(build_train_augmentations((512, 512)))
    for _ in range(3):
        out = m(rec)
        h, w = out["sem_seg"].shape
        assert out["image"].shape == (3, h, w) and h <= 512 and w <= 512
        assert set(out["sem_seg"].unique().tolist()) <= orig
        assert (out["height"], out["width"]) == (281, 500)


def _bilinear_half_pixel(img: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Independent float64 reference of OpenCV's INTER_LINEAR (half-pixel centres, edge
    clamp, no anti-aliasing) — what mmcv's imresize computes, unlike PIL's bilinear."""
    h, w = img.shape[:2]
    ys = np.clip((np.arange(nh) + 0.5) * h / nh - 0.5, 0, h - 1)
    xs = np.clip((np.arange(nw) + 0.5) * w / nw - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    f = img.astype(np.float64)
    top = f[y0][:, x0] * (1 - fx) + f[y0][:, x1] * fx
    bot = f[y1][:, x0] * (1 - fx) + f[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy


def test_test_resize_is_opencv_bilinear_keep_ratio_like_mmcv():
    from dfr.data.transforms import KeepRatioResize

    img = np.random.default_rng(0).integers(0, 256, (75, 100, 3), dtype=np.uint8)
    t = KeepRatioResize((400, 100)).get_transform(img)
    assert (t.new_h, t.new_w) == (100, 133)  # short side binds: 75 * 4/3 = 100, 100 * 4/3
    out = t.apply_image(img)
    ref = _bilinear_half_pixel(img, 100, 133)
    assert out.dtype == np.uint8 and np.abs(out - ref).max() <= 1.0  # OpenCV's fixed point
    # shrinking by 3: no anti-aliasing (PIL's BILINEAR would average ~3x3 neighbourhoods)
    small = KeepRatioResize((40, 25)).get_transform(img).apply_image(img)
    assert np.abs(small - _bilinear_half_pixel(img, 25, 33)).max() <= 1.0
    seg = np.random.default_rng(1).choice(np.array([0, 4, 255], np.uint8), (75, 100))
    assert set(np.unique(t.apply_segmentation(seg))) <= {0, 4, 255}
