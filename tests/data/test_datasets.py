"""dfr.data.datasets: registered names, metadata, records on a tiny on-disk fixture tree,
lazy DETECTRON2_DATASETS lookup and the errors for missing files."""

import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

import dfr.data  # noqa: F401  (registers the names)
from dfr.data.datasets import CONTEXT_TREE, VOC_TREE

CONTRACT_NAMES = {
    "voc_2012_train_aug_scribble": 21,
    "voc_2012_train_aug_full": 21,
    "voc_2012_val_sem_seg": 21,
    "voc_2012_test": 21,
    "context_59_train_scribble": 59,
    "context_59_val_sem_seg": 59,
    "context_60_train_scribble": 60,
    "context_60_val_sem_seg": 60,
    "synthetic_scribble_train": 4,
    "synthetic_full_train": 4,
    "synthetic_scribble_val": 4,
    "voc_2012_train_aug_scribble_len30": 21,
    "voc_2012_train_aug_scribble_len0": 21,
    "voc_2012_train_aug_scribble_drop50": 21,
}


def _img(path, h, w, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def _lab(path, h, w, values=(0, 1, 255)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lab = np.full((h, w), values[-1], np.uint8)
    lab[: h // 2] = values[0]
    lab[h // 2 :, : w // 2] = values[1]
    Image.fromarray(lab).save(path)


def _split(path, ids):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(ids) + "\n")


@pytest.fixture
def voc_root(tmp_path, monkeypatch):
    """VOC tree: 3 train_aug (scribble + dense), 2 val (dense), 1 test (image only)."""
    r = str(tmp_path)
    t = VOC_TREE
    train, val, test = (
        ["2007_000001", "2007_000002", "2008_000003"],
        ["2007_000010", "2009_1"],
        ["2010_5"],
    )
    for i, n in enumerate(train + val + test):
        _img(os.path.join(r, t["images"], n + ".jpg"), 20 + i, 30, seed=i)
    for i, n in enumerate(train):
        _lab(os.path.join(r, t["scribble"], n + ".png"), 20 + i, 30)
    for i, n in enumerate(train + val):
        _lab(os.path.join(r, t["dense"], n + ".png"), 20 + i, 30)
    for s, ids in (("train_aug", train), ("val", val), ("test", test)):
        _split(os.path.join(r, t["splits"][s]), ids)
    monkeypatch.setenv("DETECTRON2_DATASETS", r)
    return r


def test_contract_names_registered_with_metadata():
    for name, n in CONTRACT_NAMES.items():
        assert name in DatasetCatalog.list(), name
        meta = MetadataCatalog.get(name)
        assert len(meta.stuff_classes) == n and len(meta.stuff_colors) == n, name
        kind = "voc_submission" if name == "voc_2012_test" else "sem_seg"
        assert meta.ignore_label == 255 and meta.evaluator_type == kind, name
    assert MetadataCatalog.get("voc_2012_val_sem_seg").stuff_classes[15] == "person"
    assert MetadataCatalog.get("context_60_val_sem_seg").stuff_classes[0] == "background"
    assert MetadataCatalog.get("context_59_val_sem_seg").stuff_classes[0] == "aeroplane"


def test_voc_records_on_fixture(voc_root):
    train = DatasetCatalog.get("voc_2012_train_aug_scribble")
    assert len(train) == 3
    r = train[2]
    assert set(r) == {"file_name", "sem_seg_file_name", "height", "width", "image_id"}
    assert (r["height"], r["width"], r["image_id"]) == (22, 30, "2008_000003")
    assert r["sem_seg_file_name"].endswith(os.path.join("pascal_2012_scribble", "2008_000003.png"))
    full = DatasetCatalog.get("voc_2012_train_aug_full")
    assert [os.path.basename(os.path.dirname(d["sem_seg_file_name"])) for d in full] == [
        "SegmentationClassAug"
    ] * 3
    assert len(DatasetCatalog.get("voc_2012_val_sem_seg")) == 2
    test = DatasetCatalog.get("voc_2012_test")
    assert len(test) == 1 and "sem_seg_file_name" not in test[0]


def test_builtin_records_give_the_size_read_image_loads_after_exif_orientation(voc_root):
    """A JPEG stored 30 wide x 21 high with EXIF orientation 6 (turned by 90 degrees) is
    loaded by Detectron2's read_image as 21 wide x 30 high: the record says so too."""
    from detectron2.data.detection_utils import read_image

    path = os.path.join(voc_root, VOC_TREE["images"], "2007_000010.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (30, 21), (90, 120, 30)).save(path, exif=exif)
    rec = {r["image_id"]: r for r in DatasetCatalog.get("voc_2012_val_sem_seg")}["2007_000010"]
    assert (rec["height"], rec["width"]) == (30, 21)
    assert read_image(path, format="RGB").shape[:2] == (30, 21)


def test_context_records_on_fixture(tmp_path, monkeypatch):
    r, t = str(tmp_path), CONTEXT_TREE
    for n in ("a", "b"):
        _img(os.path.join(r, t["images"], n + ".jpg"), 16, 24)
        for k in (59, 60):
            _lab(os.path.join(r, t["scribble"][k], n + ".png"), 16, 24)
            _lab(os.path.join(r, t["dense"][k], n + ".png"), 16, 24)
    _split(os.path.join(r, t["splits"]["train"]), ["a", "b"])
    _split(os.path.join(r, t["splits"]["val"]), ["b"])
    monkeypatch.setenv("DETECTRON2_DATASETS", r)
    assert len(DatasetCatalog.get("context_59_train_scribble")) == 2
    val60 = DatasetCatalog.get("context_60_val_sem_seg")
    assert len(val60) == 1 and "SegmentationClassContext60" in val60[0]["sem_seg_file_name"]


def test_root_is_read_at_use_time_and_missing_root_names_path_and_command(tmp_path, monkeypatch):
    missing = str(tmp_path / "nowhere")
    monkeypatch.setenv("DETECTRON2_DATASETS", missing)
    with pytest.raises(FileNotFoundError) as e:
        DatasetCatalog.get("voc_2012_val_sem_seg")
    assert missing in str(e.value) and "prepare_voc_scribble.py" in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        DatasetCatalog.get("context_59_val_sem_seg")
    assert missing in str(e.value) and "prepare_context_scribble.py" in str(e.value)


def test_missing_split_file_and_missing_label_are_named(voc_root):
    os.remove(os.path.join(voc_root, VOC_TREE["splits"]["val"]))
    with pytest.raises(FileNotFoundError, match="val.txt"):
        DatasetCatalog.get("voc_2012_val_sem_seg")
    os.remove(os.path.join(voc_root, VOC_TREE["scribble"], "2007_000002.png"))
    with pytest.raises(FileNotFoundError, match=r"1 of 3 files .*2007_000002.png"):
        DatasetCatalog.get("voc_2012_train_aug_scribble")


def _load_cli():
    from helpers import load_script

    return load_script("tools/shorten_scribbles.py", "shorten_scribbles_cli").main


def _scribble_lines(path, h, w):
    """Two 3-px horizontal scribbles (class 0 over 24 px, class 1 over 20 px) on a 255 canvas."""
    lab = np.full((h, w), 255, np.uint8)
    lab[4:7, 3:27] = 0
    lab[h - 7 : h - 4, 5:25] = 1
    Image.fromarray(lab).save(path)
    return lab


def test_voc_variant_missing_names_the_tool_then_cli_writes_the_registered_root(voc_root, capsys):
    with pytest.raises(FileNotFoundError, match="shorten_scribbles.py --voc-variant len30"):
        DatasetCatalog.get("voc_2012_train_aug_scribble_len30")
    src = {}
    for i, n in enumerate(["2007_000001", "2007_000002", "2008_000003"]):
        src[n] = _scribble_lines(os.path.join(voc_root, VOC_TREE["scribble"], n + ".png"), 20 + i, 30)
    _load_cli()(["--voc-variant", "len30"])
    recs = DatasetCatalog.get("voc_2012_train_aug_scribble_len30")
    assert len(recs) == 3
    assert all("pascal_2012_scribble_len30" in d["sem_seg_file_name"] for d in recs)
    assert "kept_length_fraction" in capsys.readouterr().out
    # against the source arrays: each scribble keeps about 30 % of its length (3 px wide), no
    # pixel gains a label or changes class, and both scribbles survive
    for d in recs:
        before = src[d["image_id"]]
        after = np.asarray(Image.open(d["sem_seg_file_name"]))
        assert after.shape == before.shape
        kept = after != 255
        assert (after[kept] == before[kept]).all()
        for c in (0, 1):
            frac = (after == c).sum() / (before == c).sum()
            assert 0.15 <= frac <= 0.5, (d["image_id"], c, frac)


def test_image_hw_decode_names_a_truncated_file_and_thread_map_keeps_order(tmp_path):
    from dfr.data.images import image_hw, thread_map

    good = tmp_path / "good.jpg"
    _img(str(good), 40, 50)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert image_hw(good, decode=True) == (40, 50) and image_hw(bad) == (40, 50)  # header only
    with pytest.raises(ValueError, match=r"cannot decode image .*bad.jpg"):
        image_hw(bad, decode=True)
    for n in (3, 40):  # serial below 16 items, a thread pool above
        assert thread_map(lambda x: x * x, range(n), workers=4) == [x * x for x in range(n)]
