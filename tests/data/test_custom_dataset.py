"""Your own scribbles: datasets/prepare_custom_scribbles.py (LabelMe JSON + CVAT XML -> label
PNGs, the problems it reports), register_scribble_dataset (records, metadata, errors) and the
README section "Train on your own scribbles" run as written on tests/fixtures/custom."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    CUSTOM_CLASSES,
    REPO,
    checkout_like,
    run_importer,
    write_random_image,
)
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from dfr.data import register_scribble_dataset, register_scribble_dataset_from_json
from dfr_tools.custom_example import cvat_xml, labelme_json, write_example
from dfr.data.scribbles import Scribble, rasterize

FIXTURE = REPO / "tests" / "fixtures" / "custom"


# ---------------------------------------------------------------- annotation-file writers
# labelme_json(path, image_name, (h, w), [(label, shape_type, points)]) and
# cvat_xml(path, [(name, (h, w), [(tag, label, points, z_order)])]): the writers of the
# README's example folder (prepare_custom_scribbles.py --example), reused here.


# ---------------------------------------------------------------- custom_importer
def test_labelme_and_cvat_shapes_follow_the_scribblesup_rule(custom_importer, tmp_path, capsys):
    h, w = 30, 40
    write_random_image(tmp_path / "images" / "a.jpg", (h, w), 1)
    write_random_image(tmp_path / "images" / "b.png", (h, w), 2)
    line = [(2, 3), (12, 3)]
    strip = [(2, 8), (20, 8), (20, 20)]
    poly = [(25, 5), (37, 5), (37, 25), (25, 25)]
    labelme_json(tmp_path / "lm" / "a.json", "a.jpg", (h, w), [
        ("animal", "line", line), ("person", "linestrip", strip),
        ("vehicle", "polygon", poly), ("background", "point", [(5, 26)])])  # fmt: skip
    cvat_xml(tmp_path / "cvat.xml", [("b.png", (h, w), [
        ("polygon", "vehicle", poly, 0),
        ("points", "person", [(5, 5), (5, 25)], 0),
        ("polyline", "animal", [(0, 15), (39, 15)], 0),
        ("polyline", "background", [(30, 0), (30, 29)], -1),  # z_order -1: drawn first
    ])])  # fmt: skip
    code, out = run_importer(custom_importer, capsys, "--name", "shapes", "--images", tmp_path / "images",
                     "--labelme", tmp_path / "lm", "--cvat", tmp_path / "cvat.xml",
                     "--classes", *CUSTOM_CLASSES, "--out", tmp_path / "out")  # fmt: skip
    assert code == 0, out
    assert "OK: 0 problem(s)" in out and "shapes_train (2 images)" in out

    def expected(scribbles):
        return rasterize([Scribble(c, np.asarray(p, float)) for c, p in scribbles], h, w)

    closed = poly + poly[:1]
    want_a = expected([(1, line), (2, strip), (3, closed), (0, [(5, 26)])])
    want_b = expected([(0, [(30, 0), (30, 29)]), (3, closed), (2, [(5, 5)]), (2, [(5, 25)]),
                       (1, [(0, 15), (39, 15)])])  # fmt: skip
    for name, want in (("a", want_a), ("b", want_b)):
        im = Image.open(tmp_path / "out" / "scribbles" / f"{name}.png")
        assert im.mode == "P"  # palette PNG, index = class id
        np.testing.assert_array_equal(np.asarray(im), want)
    lab_a = np.asarray(Image.open(tmp_path / "out" / "scribbles" / "a.png"))
    # 3-px lines: the line y=3 labels rows 2..4; a polygon is its outline (inside unlabeled);
    # a point is a 5-px dot
    assert (lab_a[2:5, 2:13] == 1).all() and lab_a[1, 7] == 255 and lab_a[5, 7] == 255
    assert lab_a[15, 31] == 255 and lab_a[15, 25] == 3 and lab_a[15, 37] == 3
    assert (lab_a == 0).sum() == 5 and lab_a[26, 5] == 0
    lab_b = np.asarray(Image.open(tmp_path / "out" / "scribbles" / "b.png"))
    assert lab_b[15, 30] == 1 and lab_b[2, 30] == 0  # z_order: the -1 line lies under the rest
    assert (tmp_path / "out" / "classes.txt").read_text().split() == CUSTOM_CLASSES
    desc = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert desc["split_file"] == "train.txt" and "gt_root" not in desc
    assert "| 1 | animal | 2 |" in (tmp_path / "out" / "scribble_stats.md").read_text()


def test_a_phone_photo_stored_sideways_gets_its_displayed_size(custom_importer, tmp_path, capsys):
    """EXIF orientation 6: stored 40 wide x 30 high, shown (LabelMe, CVAT, read_image) 30 x 40."""
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "images").mkdir()
    Image.new("RGB", (40, 30), (90, 120, 30)).save(tmp_path / "images" / "p.jpg", exif=exif)
    labelme_json(tmp_path / "lm" / "p.json", "p.jpg", (40, 30),
                 [("animal", "linestrip", [(5, 5), (5, 35)])])  # fmt: skip
    code, out = run_importer(custom_importer, capsys, "--name", "exiftest", "--images", tmp_path / "images",
                     "--labelme", tmp_path / "lm", "--classes", *CUSTOM_CLASSES,
                     "--out", tmp_path / "out")  # fmt: skip
    assert code == 0, out
    assert np.asarray(Image.open(tmp_path / "out" / "scribbles" / "p.png")).shape == (40, 30)
    rec = DatasetCatalog.get("exiftest_train")[0]
    assert (rec["height"], rec["width"]) == (40, 30)


def _bad_inputs(tmp_path):
    """c: unknown label 'cat'; d: a point outside its 40x30 image; e: no annotation at all;
    f: a LabelMe rectangle (unsupported); g.json names an image that does not exist."""
    hw = (30, 40)
    for k, n in enumerate("cdef"):
        write_random_image(tmp_path / "images" / f"{n}.jpg", hw, k)
    good = ("person", "linestrip", [(3, 3), (30, 3)])
    cat = ("cat", "line", [(3, 9), (30, 9)])
    labelme_json(tmp_path / "lm" / "c.json", "c.jpg", hw, [good, cat])
    labelme_json(tmp_path / "lm" / "f.json", "f.jpg", hw,
                 [good, ("animal", "rectangle", [(3, 9), (30, 20)])])  # fmt: skip
    labelme_json(tmp_path / "lm" / "g.json", "g.jpg", hw, [good])
    cvat_xml(tmp_path / "cvat.xml",
             [("d.jpg", hw, [("polyline", "animal", [(3, 20), (55, 20)], 0)])])  # fmt: skip
    return ["--name", "bad", "--images", tmp_path / "images", "--labelme", tmp_path / "lm",
            "--cvat", tmp_path / "cvat.xml", "--classes", *CUSTOM_CLASSES, "--out", tmp_path / "out"]


def test_problems_are_named_and_stop_the_import_by_default(custom_importer, tmp_path, capsys):
    code, out = run_importer(custom_importer, capsys, *_bad_inputs(tmp_path))
    assert code == 1
    assert "PROBLEM [unknown label] x1" in out and "c.json shape #1 (line 'cat')" in out
    assert re.search(r"PROBLEM \[outside image\] x1\n.*cvat.xml image 'd.jpg'.*outside the "
                     r"40x30 image 'd', e.g. \(55, 20\)", out)  # fmt: skip
    assert "PROBLEM [no annotation] x1" in out and f"{tmp_path / 'images' / 'e.jpg'}" in out
    assert "PROBLEM [unsupported shape] x1" in out and "shape type 'rectangle'" in out
    assert "PROBLEM [missing image] x1" in out and "image 'g' is not in" in out
    assert "FAILED: 5 problem(s)" in out and "nothing registered" in out
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_a_truncated_image_is_named_unless_fast(custom_importer, tmp_path, capsys):
    """Every image is decoded by default: a truncated JPEG stops the import naming the file
    (training would crash when the sampler reached it); --fast reads headers only."""
    h, w = 30, 40
    for k, name in enumerate(("a", "b")):
        write_random_image(tmp_path / "images" / f"{name}.jpg", (h, w), k)
        labelme_json(tmp_path / "lm" / f"{name}.json", f"{name}.jpg", (h, w),
                     [("animal", "line", [(2, 3), (12, 3)])])  # fmt: skip
    jpg = tmp_path / "images" / "b.jpg"
    jpg.write_bytes(jpg.read_bytes()[:-200])  # header intact, pixels cut off
    argv = ["--name", "trunc", "--images", tmp_path / "images", "--labelme", tmp_path / "lm",
            "--classes", *CUSTOM_CLASSES, "--out", tmp_path / "out"]  # fmt: skip
    code, out = run_importer(custom_importer, capsys, *argv)
    assert code == 1 and "PROBLEM [unreadable image] x1" in out and str(jpg) in out
    assert not (tmp_path / "out" / "dataset.json").exists()
    code, out = run_importer(custom_importer, capsys, *argv, "--fast")
    assert code == 0 and "unreadable image" not in out, out


def test_warn_mode_lists_problems_and_leaves_them_out(custom_importer, tmp_path, capsys):
    code, out = run_importer(custom_importer, capsys, *_bad_inputs(tmp_path), "--on-problem", "warn")
    assert code == 0, out
    for kind in ("unknown label", "outside image", "no annotation", "unsupported shape",
                 "missing image"):  # fmt: skip
        assert f"NOTE [{kind}] x1" in out
    assert (tmp_path / "out" / "train.txt").read_text().split() == ["c", "d", "f"]
    c = np.asarray(Image.open(tmp_path / "out" / "scribbles" / "c.png"))
    assert set(np.unique(c)) == {2, 255}  # the 'cat' line is left out
    d = np.asarray(Image.open(tmp_path / "out" / "scribbles" / "d.png"))
    assert (d[19:22, 39] == 1).all()  # the point outside is clamped to the last column
    assert DatasetCatalog.get("bad_train")[0]["image_id"] == "c"


def test_ground_truth_maps_are_checked(custom_importer, tmp_path, capsys):
    argv = _bad_inputs(tmp_path)
    gt = tmp_path / "gt"
    gt.mkdir()
    Image.fromarray(np.full((30, 40), 7, np.uint8)).save(gt / "e.png")  # 7: not a class id
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(gt / "d.png")  # wrong size
    code, out = run_importer(custom_importer, capsys, *argv, "--gt", gt, "--on-problem", "warn")
    assert code == 0
    assert "NOTE [ground truth] x3" in out  # e: values, d: size, and nothing usable left
    assert "e.png: values [7] are not class ids 0..3 or 255" in out
    assert "d.png: size 10x10, image 40x30" in out


# ---------------------------------------------------------------- registration
def _tree(root, ids=("x", "y"), hw=(12, 16)):
    """root/img/sub/<id>.jpg, root/scr/<id>.png (scribbles), root/gt/<id>.png (dense)."""
    for d in ("scr", "gt"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(ids):
        write_random_image(root / "img" / "sub" / f"{i}.jpg", hw, k)
        lab = np.full(hw, 255, np.uint8)
        lab[k, :] = k
        Image.fromarray(lab).save(root / "scr" / f"{i}.png")
        Image.fromarray(np.full(hw, k, np.uint8)).save(root / "gt" / f"{i}.png")


def test_register_records_metadata_and_background(tmp_path):
    _tree(tmp_path)
    (tmp_path / "classes.txt").write_text("# my classes\nsky\nBackground\nboat\n")
    args = ("regtest", tmp_path / "img", tmp_path / "scr", tmp_path / "classes.txt")
    names = register_scribble_dataset(*args, gt_root=tmp_path / "gt")
    assert names == ["regtest_train", "regtest_val"]
    recs = DatasetCatalog.get("regtest_train")
    assert [r["image_id"] for r in recs] == ["x", "y"]
    assert recs[0]["file_name"] == str(tmp_path / "img" / "sub" / "x.jpg")
    assert recs[0]["sem_seg_file_name"] == str(tmp_path / "scr" / "x.png")
    assert (recs[0]["height"], recs[0]["width"]) == (12, 16)
    assert DatasetCatalog.get("regtest_val")[1]["sem_seg_file_name"] == str(tmp_path / "gt/y.png")
    meta = MetadataCatalog.get("regtest_train")
    assert meta.stuff_classes == ["sky", "Background", "boat"]
    assert meta.background_id == 1  # the name, case-insensitive
    assert meta.ignore_label == 255 and meta.evaluator_type == "sem_seg"
    assert len(meta.stuff_colors) == 3
    # the same call again is a no-op; other arguments need replace=True
    assert register_scribble_dataset(*args, gt_root=tmp_path / "gt") == names
    with pytest.raises(ValueError, match="'regtest_train' is already registered"):
        register_scribble_dataset("regtest", tmp_path / "img", tmp_path / "scr", ["a", "b"],
                                  background=None)  # fmt: skip
    register_scribble_dataset("regtest", tmp_path / "img", tmp_path / "scr", ["a", "b"],
                              background=None, replace=True)  # fmt: skip
    assert MetadataCatalog.get("regtest_train").background_id == -1
    assert register_scribble_dataset("regtest2", tmp_path / "img", tmp_path / "scr", ["a", "b"],
                                     background=1) == ["regtest2_train"]  # fmt: skip
    assert MetadataCatalog.get("regtest2_train").background_id == 1
    with pytest.raises(ValueError, match="background class 'background' is not one of"):
        register_scribble_dataset("regtest3", tmp_path / "img", tmp_path / "scr", ["a", "b"])


def test_register_is_lazy_and_errors_name_the_files(tmp_path):
    _tree(tmp_path, ids=("x", "y", "z"))
    missing = tmp_path / "nowhere"
    register_scribble_dataset("lazytest", missing, tmp_path / "scr", CUSTOM_CLASSES)  # reads nothing
    with pytest.raises(FileNotFoundError, match=f"image folder not found: {missing}"):
        DatasetCatalog.get("lazytest_train")
    (tmp_path / "split.txt").write_text("x\ny\nw\n")
    os.remove(tmp_path / "scr" / "y.png")
    register_scribble_dataset("splittest", tmp_path / "img", tmp_path / "scr", CUSTOM_CLASSES,
                              split_file=tmp_path / "split.txt")  # fmt: skip
    with pytest.raises(FileNotFoundError) as e:
        DatasetCatalog.get("splittest_train")
    msg = str(e.value)
    assert "2 of 3 images listed in" in msg
    assert f"scribble label {tmp_path / 'scr' / 'y.png'} (for image" in msg  # image w/o label
    assert "image w.* in" in msg  # listed id without an image
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "scr" / "z.png")
    register_scribble_dataset("sizetest", tmp_path / "img", tmp_path / "scr", CUSTOM_CLASSES)
    with pytest.raises(ValueError, match=r"z.png: 5x5, image .*z.jpg: 16x12"):
        DatasetCatalog.get("sizetest_train")


def test_config_registers_dataset_json_under_the_datasets_root(tmp_path, monkeypatch):
    from dfr.config import get_dfr_cfg
    from dfr.data import register_datasets_from_cfg

    _tree(tmp_path / "root" / "mine")
    (tmp_path / "root" / "mine" / "dataset.json").write_text(json.dumps({
        "name": "cfgtest", "image_root": "img", "scribble_root": "scr", "gt_root": "gt",
        "classes": ["background", "thing"]}))  # fmt: skip
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "root"))
    cfg = get_dfr_cfg(None, ["DATASETS.DFR.CUSTOM", "('mine',)"])
    assert list(cfg.DATASETS.DFR.CUSTOM) == ["mine"]
    assert "cfgtest_val" not in DatasetCatalog.list()  # building a config registers nothing
    assert register_datasets_from_cfg(cfg) == ["cfgtest_train", "cfgtest_val"]
    assert len(DatasetCatalog.get("cfgtest_val")) == 2
    assert MetadataCatalog.get("cfgtest_train").stuff_classes == ["background", "thing"]
    register_datasets_from_cfg(cfg)  # twice: no error
    other = get_dfr_cfg(None, ["DATASETS.DFR.CUSTOM", "('other',)"])  # no error until registered
    with pytest.raises(FileNotFoundError, match=r"'other'.*root/other/dataset.json not found"):
        register_datasets_from_cfg(other)
    assert register_scribble_dataset_from_json(tmp_path / "root" / "mine") == [
        "cfgtest_train", "cfgtest_val"]  # fmt: skip


def test_example_folder_is_the_fixture_and_is_not_overwritten(tmp_path, custom_importer, capsys):
    """--example writes the README's my_data/ (images, masks, 2 LabelMe JSON, 1 CVAT XML with
    2 images) and refuses a non-empty folder."""
    code, out = run_importer(custom_importer, capsys, "--example", tmp_path / "my_data")
    assert code == 0 and "wrote" in out
    root = tmp_path / "my_data"
    assert sorted(p.name for p in (root / "images").iterdir()) == sorted(
        p.name for p in (FIXTURE / "images").iterdir())  # fmt: skip
    assert sorted(p.stem for p in (root / "labelme").glob("*.json")) == ["2007_009897", "2008_000003"]
    assert (root / "cvat" / "annotations.xml").read_text().count("<image ") == 2
    for m in (FIXTURE / "masks").iterdir():
        assert (root / "masks" / m.name).read_bytes() == m.read_bytes()
    with pytest.raises(FileExistsError, match="not empty"):
        write_example(root)


# ---------------------------------------------------------------- README, as written
def doc_blocks(doc: str, section: str):
    """The (kind, code) of the ```bash / ```python blocks of a section of a Markdown file, in
    order; the section ends at the next heading of its level or above."""
    lines = (REPO / doc).read_text().splitlines(keepends=True)
    start = lines.index(section + "\n")
    level = len(section) - len(section.lstrip("#"))
    fenced, end = False, len(lines)
    for i in range(start + 1, len(lines)):
        fenced ^= lines[i].startswith("```")
        heading = len(lines[i]) - len(lines[i].lstrip("#"))
        if not fenced and 0 < heading <= level and lines[i][heading] == " ":
            end = i
            break
    body = "".join(lines[start:end])
    return re.findall(r"```(bash|python)\n(.*?)```", body, flags=re.S)


def readme_blocks(section="## Train on your own scribbles"):
    return doc_blocks("README.md", section)


def test_readme_section_runs_as_written(tmp_path):
    """example folder -> import -> register -> train -> evaluate -> demo, with the README's
    commands, in a folder laid out like the checkout; `.venv/bin/python` there is the
    interpreter running this test."""
    blocks = readme_blocks()
    assert [k for k, _ in blocks] == ["bash", "python", "bash"]
    work = tmp_path / "work"
    checkout_like(work)
    env = {**os.environ, "DETECTRON2_DATASETS": str(work / "datasets"), "MPLBACKEND": "Agg"}
    env.pop("PYTHONWARNINGS", None)  # what a newcomer's shell has: no filter from outside
    t0 = time.time()
    for kind, code in blocks:
        cmd = ["bash", "-euo", "pipefail", "-c", code] if kind == "bash" else [
            sys.executable, "-c", code]  # fmt: skip
        r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        log = f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        assert r.returncode == 0, f"{kind} block failed:\n{code}\n{log}"
        if kind == "python":  # the snippet prints its result and nothing else
            assert "{'my_scribbles_train': 4, 'my_scribbles_val': 2}" in r.stdout
            assert "Warning" not in r.stderr, r.stderr[-2000:]
        else:
            assert "torch.jit" not in r.stderr, r.stderr[-2000:]
    print(f"README section: {time.time() - t0:.1f} s")
    ds = work / "datasets" / "my_scribbles"
    assert (ds / "train.txt").read_text().split() == ["2007_009897", "2008_000003",
                                                       "2008_000008", "2011_003223"]  # fmt: skip
    assert (ds / "val.txt").read_text().split() == ["2007_000032", "2007_000033"]
    assert json.loads((ds / "dataset.json").read_text())["background"] == "background"
    # the labels of the LabelMe and the CVAT images are the 3-px raster of the fixture scribbles
    scribbles = json.loads((FIXTURE / "scribbles.json").read_text())
    for i in ("2007_009897", "2011_003223"):
        w, h = Image.open(FIXTURE / "images" / f"{i}.jpg").size
        ss = [Scribble(CUSTOM_CLASSES.index(c), np.asarray(p)) for c, p in scribbles[i]]
        got = np.asarray(Image.open(ds / "scribbles" / f"{i}.png"))
        np.testing.assert_array_equal(got, rasterize(ss, h, w))
    out = work / "output" / "my_scribbles"
    assert (out / "model_final.pth").is_file()
    metrics = json.loads(
        (out / "eval" / "inference" / "my_scribbles_val" / "sem_seg_metrics.json").read_text()
    )
    assert 0 <= metrics["mIoU"] <= 100 and "IoU-vehicle" in metrics
    for i in sorted(p.stem for p in (FIXTURE / "images").glob("*.jpg")):
        overlay = Image.open(out / "demo" / f"{i}_overlay.png")
        assert overlay.size == Image.open(FIXTURE / "images" / f"{i}.jpg").size
        label = Image.open(out / "demo" / f"{i}_label.png")
        assert label.mode == "P" and np.asarray(label).max() < len(CUSTOM_CLASSES)


# ------------------------------------------- docs/datasets_simulated.md, as written
def test_dense_dataset_section_runs_as_written(tmp_path):
    """A dense dataset by a hand-written dataset.json, simulated as `<name>_train_sim_cdsp`
    with scale auto and trained from the command line, with the docs' commands in a folder
    laid out like a fresh checkout (no Swin weights); `.venv/bin/python` there is the
    interpreter running this test."""
    blocks = doc_blocks("docs/datasets_simulated.md", "### A dense dataset of your own, no Python")
    assert [k for k, _ in blocks] == ["bash"]
    work = tmp_path / "work"
    checkout_like(work)
    env = {**os.environ, "DETECTRON2_DATASETS": "datasets", "MPLBACKEND": "Agg"}
    env.pop("PYTHONWARNINGS", None)
    code = blocks[0][1]
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, f"block failed:\n{code}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert not (work / "pretrained").exists()  # nothing was needed beyond the checkout
    sim = work / "datasets" / "simulated" / "my_dense_train" / "cdsp_auto_seed0"
    manifest = json.loads((sim / "manifest.json").read_text())
    assert (manifest["style"], manifest["scale"], manifest["num_records"]) == ("cdsp", "auto", 2)
    masks = work / "my_dense_data" / "masks"
    for png in sorted(sim.glob("*.png")):
        scribble = np.asarray(Image.open(png))
        dense = np.asarray(Image.open(masks / png.name.split("_", 1)[1]))
        labeled = scribble != 255
        assert 0 < labeled.mean() < 0.2 and (scribble[labeled] == dense[labeled]).all()
    assert (work / "output" / "my_dense" / "model_final.pth").is_file()
