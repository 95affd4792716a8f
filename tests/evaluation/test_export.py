"""VOC test-server export: names, folder layout, palette-indexed PNGs, zip archive."""
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image


def _fake_outputs(rng, n, h, w, c=21):
    logits = torch.from_numpy(rng.normal(size=(n, c, h, w)).astype(np.float32))
    return [{"sem_seg": logits[i].softmax(0)} for i in range(n)]


def test_export_writes_named_palette_pngs_and_zip(tmp_path):
    from dfr.data.classes import voc_palette
    from dfr.evaluation import VOCSubmissionExporter

    rng = np.random.default_rng(0)
    ids = ["2008_000006", "2008_000011", "2010_003531"]
    inputs = [{"file_name": f"/data/VOC2012/JPEGImages/{i}.jpg", "image_id": i} for i in ids]
    outputs = _fake_outputs(rng, 3, 37, 53)
    ev = VOCSubmissionExporter("voc_2012_test", str(tmp_path), distributed=False)
    ev.reset()
    ev.process(inputs[:2], outputs[:2])
    ev.process(inputs[2:], outputs[2:])
    res = ev.evaluate()
    assert res["export"]["num_images"] == 3.0

    folder = tmp_path / "results" / "VOC2012" / "Segmentation" / "comp6_test_cls"
    assert sorted(p.name for p in folder.iterdir()) == [f"{i}.png" for i in ids]
    for i, out in zip(ids, outputs):
        img = Image.open(folder / f"{i}.png")
        assert img.mode == "P" and img.size == (53, 37)
        pal = np.array(img.getpalette()[: 256 * 3], dtype=np.uint8).reshape(-1, 3)
        assert np.array_equal(pal[:21], voc_palette(256)[:21])
        got = np.array(img)
        assert got.dtype == np.uint8
        assert np.array_equal(got, out["sem_seg"].argmax(0).numpy())
        assert got.max() <= 20

    with zipfile.ZipFile(tmp_path / "results.zip") as zf:
        names = sorted(zf.namelist())
    assert names == [f"results/VOC2012/Segmentation/comp6_test_cls/{i}.png" for i in ids]


def test_exported_png_reads_back_as_class_ids_not_colours(tmp_path):
    from dfr.evaluation import save_indexed_png

    label = np.arange(21, dtype=np.uint8).repeat(3).reshape(7, 9)
    save_indexed_png(label, str(tmp_path / "x.png"))
    back = np.array(Image.open(tmp_path / "x.png"))
    assert back.shape == (7, 9) and np.array_equal(back, label)
    rgb = np.array(Image.open(tmp_path / "x.png").convert("RGB"))
    assert rgb[0, 3].tolist() == [128, 0, 0]  # class 1 (aeroplane) in the VOC colour map


@pytest.mark.parametrize("zip_name", [""])
def test_export_without_zip(tmp_path, zip_name):
    from dfr.evaluation import VOCSubmissionExporter

    ev = VOCSubmissionExporter("x", str(tmp_path), zip_name=zip_name, distributed=False)
    ev.reset()
    ev.process([{"file_name": "a/b/c.jpg"}], _fake_outputs(np.random.default_rng(1), 1, 5, 6))
    assert ev.evaluate()["export"]["num_images"] == 1.0
    assert not (tmp_path / "results.zip").exists()
    assert (tmp_path / "results/VOC2012/Segmentation/comp6_test_cls/c.png").is_file()
