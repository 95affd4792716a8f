"""The released scribble benchmarks made from dense sets: datasets/prepare_s4_scribbles.py
(Scribbles4All s4Pascal / s4ADE20K / s4Cityscapes) and datasets/prepare_cdsp_scribbles.py
(CDSP ScribbleCityscapes / ScribbleCOCO) on fixtures in the released formats
(tests/fixtures/s4, tests/fixtures/cdsp; README there), and the names that load them."""
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from helpers import FIXTURES, load_script
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from dfr.data.datasets.public_scribbles import CITYSCAPES_LABELID_TO_TRAINID, decode_s4

S4 = FIXTURES / "s4"
CDSP = FIXTURES / "cdsp"
H, W = 30, 40


@pytest.fixture(scope="module")
def s4():
    return load_script("datasets/prepare_s4_scribbles.py")


@pytest.fixture(scope="module")
def cdsp():
    return load_script("datasets/prepare_cdsp_scribbles.py")


def _image(path: Path, h=H, w=W):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)


def _released(path: Path) -> np.ndarray:
    arr = np.asarray(Image.open(path))
    assert arr.ndim == 3 and (arr[..., 0] == arr[..., 2]).all()  # the fixture is the format
    return arr[..., 0]


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L", path
        return np.asarray(im)


def test_decode_tables():
    v = np.array([0, 1, 150, 151, 255], np.uint8)
    assert decode_s4("ade20k", v).tolist() == [255, 0, 149, 255, 255]
    assert decode_s4("pascal", np.array([0, 20, 21, 255], np.uint8)).tolist() == [0, 20, 255, 255]
    cs = decode_s4("cityscapes", np.arange(34, dtype=np.uint8))
    assert cs[7] == 0 and cs[26] == 13 and cs[33] == 18 and cs[0] == cs[4] == 255
    assert sorted(CITYSCAPES_LABELID_TO_TRAINID.values()) == list(range(19))
    with pytest.raises(ValueError, match="unknown s4 dataset 'kitti'"):
        decode_s4("kitti", v)


def test_s4_pascal_from_the_tar_archive(tmp_path, s4, monkeypatch, capsys):
    root = tmp_path / "d2"
    ids = ["2007_000032", "2007_000039"]
    for i in ids:
        _image(root / "VOC2012/JPEGImages" / f"{i}.jpg")
    split = root / "VOC2012/ImageSets/Segmentation/train_aug.txt"
    split.parent.mkdir(parents=True)
    split.write_text("\n".join(ids) + "\n")
    tar = tmp_path / "s4Pascal.tar.gz"  # the release is one archive of <id>.png (+ .h5)
    with tarfile.open(tar, "w:gz") as t:
        for p in sorted((S4 / "s4Pascal").iterdir()):
            t.add(p, arcname=p.name)
    assert s4.main(["--dataset", "pascal", "--scribbles", str(tar), "--root", str(root)]) == 0
    for i in ids:
        out = _png(root / "VOC2012/s4_scribble" / f"{i}.png")
        assert np.array_equal(out, _released(S4 / "s4Pascal" / f"{i}.png"))  # ids kept as they are
        assert {0, 255} <= set(np.unique(out).tolist())
    # the registered name reads them (lazily, under $DETECTRON2_DATASETS)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    recs = DatasetCatalog.get("voc_2012_train_aug_s4")
    assert [r["image_id"] for r in recs] == ids
    assert recs[1]["sem_seg_file_name"].endswith("VOC2012/s4_scribble/2007_000039.png")
    meta = MetadataCatalog.get("voc_2012_train_aug_s4")
    assert len(meta.stuff_classes) == 21 and meta.background_id == 0
    # a re-run keeps the files; another source stops (manifest) unless --force
    mtime = (root / "VOC2012/s4_scribble/2007_000032.png").stat().st_mtime_ns
    assert s4.main(["--dataset", "pascal", "--scribbles", str(tar), "--root", str(root)]) == 0
    assert (root / "VOC2012/s4_scribble/2007_000032.png").stat().st_mtime_ns == mtime
    capsys.readouterr()
    rc = s4.main(["--dataset", "pascal", "--scribbles", str(S4 / "s4Pascal"), "--root", str(root)])
    assert rc == 2 and "--scribbles" in capsys.readouterr().err


def test_s4_pascal_problems_are_named(tmp_path, s4, capsys):
    root = tmp_path / "d2"
    ids = ["2007_000032", "2007_000039", "2007_000042"]
    for i in ids[:2] + ["2007_000099"]:
        _image(root / "VOC2012/JPEGImages" / f"{i}.jpg", w=W + 1 if i.endswith("39") else W)
    split = root / "VOC2012/ImageSets/Segmentation/train_aug.txt"
    split.parent.mkdir(parents=True)
    split.write_text("\n".join(ids) + "\n")
    rel = tmp_path / "rel"
    shutil.copytree(S4 / "s4Pascal", rel)
    Image.fromarray(np.full((H, W, 3), [1, 2, 3], np.uint8)).save(rel / "2007_000099.png")
    assert s4.main(["--dataset", "pascal", "--scribbles", str(rel), "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "2007_000039.png: (30, 40) != image (30, 41)" in out  # size
    assert "2007_000099.png: colour PNG whose channels differ" in out
    assert "1 of 3 train_aug ids" in out and "2007_000042" in out  # no scribble for it
    assert "scribbles outside train_aug" in out and "2007_000099" in out


def test_s4_ade20k_values_shift_to_detectron2_ids(tmp_path, s4, monkeypatch):
    root = tmp_path / "d2"
    _image(root / "ADEChallengeData2016/images/training/ADE_train_00000001.jpg")
    _image(root / "ADEChallengeData2016/images/training/ADE_train_00000002.jpg", h=W, w=H)
    rel = S4 / "s4ADE20K"
    assert s4.main(["--dataset", "ade20k", "--scribbles", str(rel), "--root", str(root)]) == 0
    out_dir = root / "ADEChallengeData2016/s4_scribbles_detectron2/training"
    released = _released(rel / "scribbles/training/ADE_train_00000001.png")
    out = _png(out_dir / "ADE_train_00000001.png")
    assert np.array_equal(out[released == 0], np.full((released == 0).sum(), 255))
    assert np.array_equal(out[released > 0], released[released > 0] - 1)
    assert set(np.unique(out).tolist()) == {0, 12, 149, 255}
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    recs = DatasetCatalog.get("ade20k_sem_seg_train_s4")
    assert [(r["image_id"], r["height"], r["width"]) for r in recs] == [
        ("ADE_train_00000001", H, W), ("ADE_train_00000002", W, H)]  # fmt: skip
    meta = MetadataCatalog.get("ade20k_sem_seg_train_s4")
    assert len(meta.stuff_classes) == 150 and meta.ignore_label == 255
    assert meta.stuff_classes == MetadataCatalog.get("ade20k_sem_seg_train").stuff_classes


def test_s4_on_an_incomplete_tree_fails_without_a_success_line(tmp_path, s4, capsys):
    """One of the two ADE20K images missing: exit status 1, the missing image named, no
    "wrote ..." line (it used to come before FAILED), the manifest not marked complete; the
    re-run with the image there finishes and keeps the map already written."""
    import json

    root = tmp_path / "d2"
    _image(root / "ADEChallengeData2016/images/training/ADE_train_00000001.jpg")
    rel = S4 / "s4ADE20K"
    argv = ["--dataset", "ade20k", "--scribbles", str(rel), "--root", str(root)]
    assert s4.main(argv) == 1
    cap = capsys.readouterr()
    missing = root / "ADEChallengeData2016/images/training/ADE_train_00000002.jpg"
    assert f"ADE_train_00000002: {missing}" in cap.out and "FAILED: 1 problem(s)" in cap.out
    assert "wrote" not in cap.out + cap.err
    out_dir = root / "ADEChallengeData2016/s4_scribbles_detectron2/training"
    assert f"FAILED: {out_dir} is incomplete (1 scribble maps written, 0 kept, of 2 files)" in cap.err
    assert json.loads((out_dir / "prepare_manifest.json").read_text())["complete"] is False
    _image(missing, h=W, w=H)
    assert s4.main(argv) == 0
    cap = capsys.readouterr()
    assert f"wrote {out_dir}: 1 scribble maps written, 1 kept (2 in all)" in cap.out
    assert json.loads((out_dir / "prepare_manifest.json").read_text())["complete"] is True


def test_s4_cityscapes_label_ids_to_train_ids(tmp_path, s4, monkeypatch):
    root = tmp_path / "d2"
    keys = {"aachen": "aachen_000000_000019", "bochum": "bochum_000000_000313"}
    for city, key in keys.items():
        _image(root / "cityscapes/leftImg8bit/train" / city / f"{key}_leftImg8bit.png")
    # per-city archives, as released (extractCityscapes.sh unpacks the same files)
    tars = []
    for city in keys:
        tar = tmp_path / f"{city}.tar.gz"
        with tarfile.open(tar, "w:gz") as t:
            t.add(S4 / "s4Cityscapes/scribbles/gtFine/train" / city, arcname=city)
        tars.append(str(tar))
    assert s4.main(["--dataset", "cityscapes", "--scribbles", *tars, "--root", str(root)]) == 0
    src = _released(S4 / "s4Cityscapes/scribbles/gtFine/train/aachen"
                    / "aachen_000000_000019_gtFine_labelIds.png")  # fmt: skip
    out = _png(root / "cityscapes/s4_scribbles/train/aachen"
               / "aachen_000000_000019_gtFine_labelTrainIds.png")  # fmt: skip
    assert (out[src == 7] == 0).all() and (out[src == 26] == 13).all()
    assert (out[src == 33] == 18).all()
    assert (out[src == 4] == 255).all() and (out[src == 0] == 255).all()  # void, no scribble
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    recs = DatasetCatalog.get("cityscapes_fine_sem_seg_train_s4")
    assert [r["image_id"] for r in recs] == list(keys.values())
    assert recs[0]["file_name"].endswith("train/aachen/aachen_000000_000019_leftImg8bit.png")
    meta = MetadataCatalog.get("cityscapes_fine_sem_seg_train_s4")
    assert len(meta.stuff_classes) == 19 and meta.scribble_source == "s4Cityscapes"


def test_cdsp_scribble_cityscapes(tmp_path, cdsp, monkeypatch):
    out = tmp_path / "d2" / "ScribbleCityscapes"
    rel = CDSP / "ScribbleCityscapes"
    assert cdsp.main(["--dataset", "cityscapes", "--release", str(rel), "--out", str(out),
                      "--link", "copy"]) == 0  # fmt: skip
    train = ["frankfurt_000000_000294", "lindau_000001_000019"]
    assert (out / "ImageSets/train.txt").read_text().split() == train
    for k, folder in ((1, "cityscapes_scribble_r1"), (2, "cityscape_scribble_r2")):
        for i in train:
            assert np.array_equal(_png(out / f"scribble_r{k}" / f"{i}.png"),
                                  _released(rel / folder / f"{i}.png"))  # fmt: skip
    assert not (out / "scribble_r1" / "munster_000002_000019.png").exists()  # val: dense only
    dense = "SegmentationClassAug/munster_000002_000019.png"
    assert np.array_equal(_png(out / dense), _released(rel / dense))
    monkeypatch.setenv("DETECTRON2_DATASETS", str(out.parent))
    recs = DatasetCatalog.get("scribble_cityscapes_train_cdsp_r2")
    assert [r["image_id"] for r in recs] == train
    assert recs[0]["sem_seg_file_name"].endswith("scribble_r2/frankfurt_000000_000294.png")
    val = DatasetCatalog.get("scribble_cityscapes_val_sem_seg")
    assert [r["image_id"] for r in val] == ["munster_000002_000019"]
    meta = MetadataCatalog.get("scribble_cityscapes_train_cdsp_r1")
    assert meta.stuff_classes[:3] == ["background", "person", "rider"]
    assert len(meta.stuff_classes) == 9 and meta.background_id == 0
    assert len(MetadataCatalog.get("scribble_coco_val_sem_seg").stuff_classes) == 81


def test_cdsp_value_outside_the_classes_is_reported(tmp_path, cdsp, capsys):
    rel = tmp_path / "rel"
    shutil.copytree(CDSP / "ScribbleCityscapes", rel)
    bad = np.full((H, W, 3), 255, np.uint8)
    bad[3:5, 3:9] = 9  # ScribbleCityscapes has ids 0..8
    Image.fromarray(bad).save(rel / "cityscapes_scribble_r1/lindau_000001_000019.png")
    out = tmp_path / "out"
    assert cdsp.main(["--dataset", "cityscapes", "--release", str(rel), "--out", str(out)]) == 1
    assert "lindau_000001_000019.png: values [9] outside 0..8, 255" in capsys.readouterr().out
