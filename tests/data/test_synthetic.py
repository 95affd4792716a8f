"""dfr.data.synthetic: deterministic generation, ~3 % scribbled pixels, classes present,
counts and registration, two-tone objects, concurrent first use."""

import json
import multiprocessing as mp
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from dfr.data.synthetic import (
    DEFAULT_SPEC,
    SYNTHETIC_CLASSES,
    SyntheticSpec,
    ensure_synthetic,
    register_synthetic,
)

SPEC = SyntheticSpec(dirname="synth_test", num_train=8, num_val=3, min_size=128, max_size=160)


def _read(path):
    return np.asarray(Image.open(path))


def _all(out, split, sub):
    d = os.path.join(out, split, sub)
    return [_read(os.path.join(d, f)) for f in sorted(os.listdir(d))]


def test_deterministic_for_a_seed_and_seed_changes_data(tmp_path):
    a = ensure_synthetic(str(tmp_path / "a"), SPEC)
    b = ensure_synthetic(str(tmp_path / "b"), SPEC)
    for sub in ("images", "labels", "scribbles"):
        for x, y in zip(_all(a, "train", sub), _all(b, "train", sub)):
            assert x.shape == y.shape and (x == y).all()
    other = SyntheticSpec(**{**{k: v for k, v in SPEC.items() if k != "version"}, "seed": 1})
    c = ensure_synthetic(str(tmp_path / "c"), other)
    x, y = _all(a, "train", "images")[0], _all(c, "train", "images")[0]
    assert not (x.shape == y.shape and (x == y).all())


def test_counts_sizes_labels_scribble_fraction_and_classes(tmp_path):
    out = ensure_synthetic(str(tmp_path), SPEC)
    imgs, labs, scrs = (_all(out, "train", s) for s in ("images", "labels", "scribbles"))
    assert len(imgs) == 8 and len(_all(out, "val", "labels")) == 3
    fracs, seen = [], set()
    for img, lab, scr in zip(imgs, labs, scrs):
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[:2] == lab.shape == scr.shape
        assert 128 <= min(lab.shape) and max(lab.shape) <= 160
        assert set(np.unique(lab)) <= {0, 1, 2, 3}  # dense: no 255
        m = scr != 255
        assert (scr[m] == lab[m]).all()  # scribbles agree with the dense GT
        assert set(np.unique(scr[m])) == set(np.unique(lab))  # every present class scribbled
        fracs.append(m.mean())
        seen |= set(np.unique(lab).tolist())
    assert seen == {0, 1, 2, 3}
    assert 0.025 < np.mean(fracs) < 0.035, np.mean(fracs)
    meta = json.load(open(os.path.join(out, "meta.json")))
    assert meta["classes"] == SYNTHETIC_CLASSES and meta["spec"] == dict(SPEC)


def test_objects_are_two_tone_so_colour_edges_lie_inside_objects(tmp_path):
    out = ensure_synthetic(str(tmp_path), SPEC)
    two_tone = 0
    objects = 0
    for img, lab in zip(_all(out, "train", "images"), _all(out, "train", "labels")):
        for c in range(1, 4):
            m = lab == c
            if m.sum() < 300:
                continue
            objects += 1
            # colour of the object's pixels splits into two far-apart clusters (2-means)
            px = img[m].astype(np.float32)
            a, b = px[np.argmin(px.sum(1))], px[np.argmax(px.sum(1))]
            for _ in range(5):
                near_a = ((px - a) ** 2).sum(1) < ((px - b) ** 2).sum(1)
                a, b = px[near_a].mean(0), px[~near_a].mean(0)
            two_tone += np.abs(a - b).sum() > 60 and min(near_a.mean(), 1 - near_a.mean()) > 0.1
    assert objects >= 8 and two_tone / objects > 0.7


def test_registered_names_load_lazily_with_metadata(tmp_path):
    root = str(tmp_path / "reg")
    register_synthetic("synth_unit", SPEC, root=root)
    assert not os.path.exists(root)  # registration generated nothing
    train = DatasetCatalog.get("synth_unit_scribble_train")
    full = DatasetCatalog.get("synth_unit_full_train")
    val = DatasetCatalog.get("synth_unit_scribble_val")
    assert (len(train), len(full), len(val)) == (8, 8, 3)
    assert [d["file_name"] for d in train] == [d["file_name"] for d in full]
    assert "scribbles" in train[0]["sem_seg_file_name"] and "labels" in full[0]["sem_seg_file_name"]
    r = val[0]
    assert _read(r["file_name"]).shape[:2] == (r["height"], r["width"])
    meta = MetadataCatalog.get("synth_unit_scribble_val")
    assert meta.stuff_classes == SYNTHETIC_CLASSES and meta.ignore_label == 255
    assert "synthetic_scribble_train" in DatasetCatalog.list() and DEFAULT_SPEC["num_train"] == 400


def test_spec_mismatch_is_an_error_naming_the_folder(tmp_path):
    ensure_synthetic(str(tmp_path), SPEC)
    bigger = SyntheticSpec(dirname="synth_test", num_train=9, num_val=3, min_size=128, max_size=160)
    with pytest.raises(RuntimeError, match="synth_test"):
        ensure_synthetic(str(tmp_path), bigger)


def _gen(root):
    return ensure_synthetic(root, SyntheticSpec(dirname="race", num_train=4, num_val=2,
                                                min_size=96, max_size=96))  # fmt: skip


def test_two_processes_do_not_race(tmp_path):
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        outs = pool.map(_gen, [str(tmp_path)] * 2)
    assert outs[0] == outs[1] and len(os.listdir(os.path.join(outs[0], "train", "images"))) == 4
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".race.") and f != ".race.lock"]


def test_output_of_an_older_generator_version_is_regenerated(tmp_path):
    out = ensure_synthetic(str(tmp_path), SPEC)
    meta_path = os.path.join(out, "meta.json")
    meta = json.load(open(meta_path))
    meta["spec"]["version"] = 0
    json.dump(meta, open(meta_path, "w"))
    os.remove(os.path.join(out, "train", "images", "train_00000.png"))
    ensure_synthetic(str(tmp_path), SPEC)
    assert os.path.isfile(os.path.join(out, "train", "images", "train_00000.png"))
    assert json.load(open(meta_path))["spec"]["version"] == SPEC["version"]


def test_colour_alone_does_not_identify_object_classes(tmp_path):
    """Fairness: a per-pixel colour -> class lookup fitted on train is poor on val objects."""
    spec = SyntheticSpec(dirname="fair", num_train=24, num_val=8, min_size=96, max_size=128)
    out = ensure_synthetic(str(tmp_path), spec)
    hist = np.zeros((16**3, 4))

    def idx(img):
        q = img.astype(int) // 16
        return q[..., 0] * 256 + q[..., 1] * 16 + q[..., 2]

    for img, lab in zip(_all(out, "train", "images"), _all(out, "train", "labels")):
        np.add.at(hist, (idx(img).ravel(), lab.ravel()), 1)
    inter, union = np.zeros(4), np.zeros(4)
    for img, lab in zip(_all(out, "val", "images"), _all(out, "val", "labels")):
        pred = hist[idx(img)].argmax(-1)
        for c in range(4):
            inter[c] += ((pred == c) & (lab == c)).sum()
            union[c] += ((pred == c) | (lab == c)).sum()
    iou = inter / np.maximum(union, 1)
    assert iou[1:].max() < 0.3, iou
