"""projects/DFR/demo/demo.py on a folder of images: an overlay and a palette label PNG per image,
the labels equal to the model's own prediction, --tta, input globs and the input errors."""

import numpy as np
import pytest
import torch
from helpers import REPO, load_script
from PIL import Image

INSTANT = REPO / "projects/DFR/configs/quick_schedules/dfr_swin_tiny_synthetic_instant_test.yaml"
SIZES = {"a": (48, 64), "b": (70, 50), "c": (33, 47)}  # (h, w); c is a PNG


def _load_demo():
    return load_script("projects/DFR/demo/demo.py", "dfr_demo")


@pytest.fixture(scope="module")
def demo():
    return _load_demo()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random tiny model saved as a checkpoint (the demo must load MODEL.WEIGHTS)."""
    from dfr.config import get_dfr_cfg
    from dfr.engine import Trainer

    torch.manual_seed(0)
    model = Trainer.build_model(get_dfr_cfg(INSTANT))
    path = tmp_path_factory.mktemp("w") / "model.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    for stem, (h, w) in SIZES.items():
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(folder / (f"{stem}.png" if stem == "c" else f"{stem}.jpg"))
    (folder / "notes.txt").write_text("not an image")
    return folder


def _expected_label(path, weights):
    """The model's own single-scale prediction, through the test mapper."""
    from dfr.config import get_dfr_cfg
    from dfr.data import ScribbleDatasetMapper
    from dfr.engine import DFRCheckpointer, Trainer

    cfg = get_dfr_cfg(INSTANT, ["MODEL.WEIGHTS", str(weights)])
    model = Trainer.build_model(cfg).eval()
    DFRCheckpointer(model).load(str(weights))
    w, h = Image.open(path).size
    inp = ScribbleDatasetMapper(cfg, is_train=False)({"file_name": str(path), "height": h,
                                                      "width": w, "image_id": "x"})  # fmt: skip
    with torch.no_grad():
        return model([inp])[0]["sem_seg"].argmax(0).numpy()


def test_demo_on_a_folder_writes_overlay_and_label(demo, images, weights, tmp_path):
    from detectron2.data import MetadataCatalog

    out = tmp_path / "out"
    written = demo.main(["--config-file", str(INSTANT), "--input", str(images), "--output",
                         str(out), "--opts", "MODEL.WEIGHTS", str(weights)])  # fmt: skip
    assert sorted(p.split("/")[-1] for p in written) == sorted(
        f"{s}_{k}.png" for s in SIZES for k in ("overlay", "label"))  # fmt: skip
    meta = MetadataCatalog.get("synthetic_tiny_scribble_val")  # DATASETS.TEST of the config
    for stem, (h, w) in SIZES.items():
        overlay = Image.open(out / f"{stem}_overlay.png")
        assert overlay.mode == "RGB" and overlay.size == (w, h)
        label = Image.open(out / f"{stem}_label.png")
        assert label.mode == "P" and label.size == (w, h)
        pal = np.asarray(label.getpalette()[: 3 * 4]).reshape(4, 3)
        np.testing.assert_array_equal(pal, np.asarray(meta.stuff_colors))
        src = images / (f"{stem}.png" if stem == "c" else f"{stem}.jpg")
        np.testing.assert_array_equal(np.asarray(label), _expected_label(src, weights))


def test_demo_tta_and_glob_inputs(demo, images, weights, tmp_path):
    out = tmp_path / "tta"
    written = demo.main(["--config-file", str(INSTANT), "--input", str(images / "*.jpg"),
                         str(images / "c.png"), "--output", str(out), "--tta", "--opts",
                         "MODEL.WEIGHTS", str(weights), "TEST.AUG.SCALES", "[0.5, 1.0]",
                         "TEST.AUG.FLIP", "True"])  # fmt: skip
    assert len(written) == 6
    opts = ["TEST.AUG.SCALES", "[0.5, 1.0]", "TEST.AUG.FLIP", "True"]
    differs = 0
    for stem, (h, w) in SIZES.items():
        lab = np.asarray(Image.open(out / f"{stem}_label.png"))
        src = images / (f"{stem}.png" if stem == "c" else f"{stem}.jpg")
        want = _expected_tta_label(src, weights, opts)
        assert lab.shape == (h, w)
        np.testing.assert_array_equal(lab, want)
        differs += int((want != _expected_label(src, weights)).sum())
    assert differs > 0  # the multi-scale + flip prediction is not the single-scale one here


def _expected_tta_label(path, weights, opts):
    """dfr.evaluation.SemSegTTA (tested against a brute-force average in test_tta.py) around
    the same model, on the original image."""
    from dfr.config import get_dfr_cfg
    from dfr.engine import DFRCheckpointer, Trainer
    from dfr.evaluation import SemSegTTA

    cfg = get_dfr_cfg(INSTANT, ["MODEL.WEIGHTS", str(weights), *opts])
    model = Trainer.build_model(cfg).eval()
    DFRCheckpointer(model).load(str(weights))
    rgb = np.asarray(Image.open(path).convert("RGB"))
    inp = {"image": torch.from_numpy(rgb.copy()).permute(2, 0, 1), "height": rgb.shape[0],
           "width": rgb.shape[1]}  # fmt: skip
    with torch.no_grad():
        return SemSegTTA(cfg, model)([inp])[0]["sem_seg"].argmax(0).numpy()


def test_demo_input_errors(demo, images, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file, folder or matching file"):
        demo.collect_inputs([str(tmp_path / "missing*.jpg")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no image"):
        demo.collect_inputs([str(empty)])
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(other / "a.png")
    with pytest.raises(ValueError, match="same outputs a_\\*.png"):
        demo.collect_inputs([str(images), str(other / "a.png")])
    # a folder lists its images only (notes.txt is skipped), sorted
    assert [p.split("/")[-1] for p in demo.collect_inputs([str(images)])] == [
        "a.jpg", "b.jpg", "c.png"]  # fmt: skip


def test_demo_refuses_an_image_that_cannot_fit_naming_the_size_that_would(demo, images, weights,
                                                                          tmp_path):
    """TEST.MEMORY_LIMIT_MB tiny: the large image is refused by name with the estimate and a
    size that fits (checked against the same estimate), before any prediction; the small
    ones are written; the command line's exit status is 1."""
    big = images / "big.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (600, 900, 3), dtype=np.uint8)).save(big)
    out = tmp_path / "out"
    argv = ["--config-file", str(INSTANT), "--input", str(images), "--output", str(out),
            "--opts", "MODEL.WEIGHTS", str(weights), "TEST.MEMORY_LIMIT_MB", 8]  # fmt: skip
    from helpers import logged

    with logged("dfr.demo") as log:
        written, failed = demo.run([str(a) for a in argv])
    assert failed == [str(big)]
    assert sorted(p.split("/")[-1] for p in written) == sorted(
        f"{s}_{k}.png" for s in SIZES for k in ("overlay", "label"))  # fmt: skip
    refused = [m for m in log.messages if str(big) in m and "needs about" in m]
    assert len(refused) == 1, log.text
    msg = refused[0]
    assert "(900x600 px, 4 classes)" in msg and "TEST.MEMORY_LIMIT_MB = 8 (8.0 MB)" in msg
    w, h = (int(v) for v in msg.split("It would fit at ")[1].split(" px")[0].split("x"))
    from dfr.config import get_dfr_cfg
    from dfr.evaluation.tta import check_inference_memory

    cfg = get_dfr_cfg(INSTANT, ["TEST.MEMORY_LIMIT_MB", 8])
    check_inference_memory(cfg, (h, w), "fits")  # no error at the size it names
    with pytest.raises(MemoryError, match=r"bigger \(\d+x\d+ px"):
        check_inference_memory(cfg, (h + 20, w + 30), "bigger")
    assert 0.3 < w / 900 < 1 and abs(w / h - 1.5) < 0.02
    assert not (out / "big_label.png").exists()
