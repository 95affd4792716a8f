"""dfr.data.scribbles.tools: shortening to a fraction of the skeleton length, dropping,
determinism per seed, skeleton scribbles from dense masks, writing a new label root."""

import os

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.morphology import skeletonize

from dfr.data.scribbles import (
    drop_scribbles,
    file_rng,
    scribble_components,
    shorten_scribbles,
    skeleton_scribbles,
    transform_label_root,
)


def _scribbles(seed=0, n=4, size=320):
    """n long 3-px polylines (ScribbleSup style), distinct classes, not touching."""
    rng = np.random.default_rng(seed)
    lab = np.full((size, size), 255, np.uint8)
    for i in range(n):
        y = 30 + i * (size - 60) // max(n - 1, 1)
        xs = np.linspace(15, size - 15, 6)
        ys = y + rng.integers(-10, 11, size=6)
        pts = np.stack([xs, ys], 1).round().astype(np.int32)
        cv2.polylines(lab, [pts], False, int(i + 1), thickness=3)
    return lab


def _skel_len(mask):
    return int(skeletonize(mask).sum())


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7])
def test_shortened_length_within_5_percent_of_target(fraction):
    lab = _scribbles()
    out, stats = shorten_scribbles(lab, fraction, np.random.default_rng(0))
    assert abs(stats["kept_length"] / stats["length"] - fraction) < 0.01
    for c, mask in scribble_components(lab):
        ratio = _skel_len(out == c) / _skel_len(mask)  # re-measured on the written map
        assert abs(ratio - fraction) <= 0.05 * fraction, (c, ratio)
        assert ((out == c) <= mask).all()  # a sub-scribble, same class, same place
        assert len(list(scribble_components(np.where(out == c, c, 255).astype(np.uint8)))) == 1


def test_zero_length_is_one_click_per_scribble_and_one_is_identity():
    lab = _scribbles()
    out, stats = shorten_scribbles(lab, 0.0, np.random.default_rng(0))
    comps = list(scribble_components(out))
    assert len(comps) == 4 and stats["kept_length"] == 4
    assert all(1 <= m.sum() <= 9 for _, m in comps)  # the scribble's 3-px cross-section
    same, _ = shorten_scribbles(lab, 1.0, np.random.default_rng(0))
    assert (same == lab).all()
    with pytest.raises(ValueError):
        shorten_scribbles(lab, 1.5, np.random.default_rng(0))


def test_drop_fraction_and_determinism_per_seed():
    labs = [_scribbles(seed=s, n=10, size=400) for s in range(12)]
    kept = total = 0
    for i, lab in enumerate(labs):
        out, st = drop_scribbles(lab, 0.3, np.random.default_rng([7, i]))
        n_after = len(list(scribble_components(out)))
        assert st["scribbles"] == 10 and n_after == 10 - st["dropped"]
        assert st["dropped"] in (3, 4)  # floor / ceil of 0.3 * 10
        kept, total = kept + n_after, total + 10
    assert abs(1 - kept / total - 0.3) < 0.1
    a, _ = drop_scribbles(labs[0], 0.5, np.random.default_rng(3))
    b, _ = drop_scribbles(labs[0], 0.5, np.random.default_rng(3))
    assert (a == b).all()
    c, _ = shorten_scribbles(labs[0], 0.3, np.random.default_rng(3))
    d, _ = shorten_scribbles(labs[0], 0.3, np.random.default_rng(4))
    e, _ = shorten_scribbles(labs[0], 0.3, np.random.default_rng(3))
    assert (c == e).all() and not (c == d).all()


def _dense(seed=0, size=160):
    rng = np.random.default_rng(seed)
    lab = np.zeros((size, size), np.uint8)
    cv2.ellipse(lab, (50, 60), (35, 25), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    cv2.rectangle(lab, (95, 30), (150, 70), 2, -1)
    cv2.fillPoly(lab, [np.array([[90, 150], [150, 150], [120, 95]], np.int32)], 3)
    lab[:4] = 255  # an ignored band stays unlabeled
    return lab


def test_skeleton_scribbles_inside_masks_with_target_fraction():
    for seed in range(3):
        dense = _dense(seed)
        scr = skeleton_scribbles(dense, np.random.default_rng(seed), width=3, target_fraction=0.03)
        lab = scr != 255
        assert (scr[lab] == dense[lab]).all()  # every scribble pixel inside its own class
        assert set(np.unique(scr[lab])) == {0, 1, 2, 3}  # every region got a scribble
        assert 0.02 < lab.mean() < 0.04, lab.mean()
        # 3-px strokes: a scribble pixel's 3x3 neighbourhood is mostly scribble (not 1-px lines)
        assert lab.sum() > 2 * skeletonize(lab).sum()
    full = skeleton_scribbles(dense, np.random.default_rng(0), width=1, target_fraction=None)
    assert ((full != 255) <= (dense != 255)).all()


def test_transform_label_root_is_order_independent_and_deterministic(tmp_path):
    src, dst1, dst2 = tmp_path / "src", tmp_path / "a", tmp_path / "b"
    src.mkdir()
    for i in range(3):
        Image.fromarray(_scribbles(seed=i)).save(src / f"img{i}.png")
    s1 = transform_label_root(str(src), str(dst1), length=0.5, drop=0.25, seed=1)
    transform_label_root(str(src), str(dst2), length=0.5, drop=0.25, seed=1)
    assert s1["files"] == 3 and s1["dropped"] >= 1
    for i in range(3):
        a = np.asarray(Image.open(dst1 / f"img{i}.png"))
        b = np.asarray(Image.open(dst2 / f"img{i}.png"))
        assert (a == b).all()
    # per-file seeding: a file's result does not depend on the other files of the folder
    alone, dst3 = tmp_path / "alone", tmp_path / "c"
    alone.mkdir()
    (alone / "img2.png").write_bytes((src / "img2.png").read_bytes())
    transform_label_root(str(alone), str(dst3), length=0.5, drop=0.25, seed=1)
    b = np.asarray(Image.open(dst3 / "img2.png"))
    assert (b == np.asarray(Image.open(dst1 / "img2.png"))).all()
    # the rule: a file's generator depends on the seed and the file's name, not on its folder
    def draws(seed, name):
        return file_rng(seed, name).integers(0, 2**31, 4).tolist()

    assert draws(1, str(src / "img2.png")) == draws(1, "img2.png") == draws(1, "x/y/img2.png")
    assert draws(1, "img2.png") != draws(2, "img2.png")
    assert draws(1, "img2.png") != draws(1, "img1.png")
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        transform_label_root(os.path.join(str(tmp_path), "missing_dir"), str(dst1), length=0.3)


def test_real_scribsup_png_shortening(real_voc, tmp_path):
    src = real_voc / "scribble_png"
    st = transform_label_root(str(src), str(tmp_path / "len50"), length=0.5, seed=0)
    assert st["files"] == 2 and abs(st["kept_length"] / st["length"] - 0.5) < 0.01
    for name in os.listdir(src):
        orig = np.asarray(Image.open(src / name))
        short = np.asarray(Image.open(tmp_path / "len50" / name))
        assert ((short == 255) | (short == orig)).all()
        frac = (short != 255).sum() / (orig != 255).sum()
        assert 0.4 < frac < 0.6, frac


def test_thick_regions_are_thinned_coarsely_and_stay_a_connected_skeleton(monkeypatch):
    """Above THINNING_BUDGET (area x thickness) a region's skeleton is thinned at 1/k
    resolution and drawn back: a thin, connected path inside the region along its long axis,
    close to the full-resolution skeleton's length; below it, skimage's skeleton itself."""
    from dfr.data.scribbles import geometry, tools

    mask = np.zeros((400, 1200), bool)
    mask[100:300, 100:1100] = True  # 200 px thick: area x thickness = 200 k x 100
    full = skeletonize(mask)
    monkeypatch.setattr(geometry, "THINNING_BUDGET", 10**6)
    fast = tools._component_skeleton(mask)
    assert (fast <= mask).all() and ndimage.label(fast, structure=np.ones((3, 3)))[1] == 1
    assert abs(int(fast.sum()) - int(full.sum())) < 0.1 * full.sum()
    assert (skeletonize(fast) == fast).all()  # 1 px thin
    monkeypatch.setattr(geometry, "THINNING_BUDGET", 10**9)
    assert (tools._component_skeleton(mask) == full).all()
