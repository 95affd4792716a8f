"""dfr.data.scribbles.simulate: property tests over random label maps (no crossing, ignore
respected, determinism, width, every large region hit) and hand-made maps with known answers."""

import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import skeletonize

from dfr.data import GENERATOR_VERSION, STYLES, simulate_scribbles
from dfr.data.labels import read_label
from dfr.data.scribbles import DEFAULT_PARAMS, image_seed, skeleton_scribbles

from helpers import FIXTURES

NUM_MAPS = 48
EIGHT = np.ones((3, 3), bool)


def random_label_map(seed: int) -> np.ndarray:
    """Blobs, rectangles and polygons of up to 7 classes on a background, with ignore regions,
    tiny specks and one-pixel-wide classes (lines), 48..160 px a side."""
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(48, 161, 2))
    lab = np.full((h, w), int(rng.integers(0, 3)), np.uint8)
    for _ in range(int(rng.integers(1, 10))):
        c = int(rng.integers(0, 7))
        kind = rng.integers(0, 3)
        if kind == 0:
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(2, w // 2 + 3)), int(rng.integers(2, h // 2 + 3)))
            cv2.ellipse(lab, centre, axes, float(rng.uniform(0, 180)), 0, 360, c, -1)
        elif kind == 1:
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            lab[y0 : y0 + int(rng.integers(1, h)), x0 : x0 + int(rng.integers(1, w))] = c
        else:
            pts = np.stack([rng.integers(0, w, 5), rng.integers(0, h, 5)], 1).astype(np.int32)
            cv2.fillPoly(lab, [pts], c)  # possibly self-intersecting: odd shapes
    for _ in range(int(rng.integers(0, 3))):  # one-pixel-wide classes
        p, q = rng.integers(0, [w, h], size=(2, 2))
        cv2.line(lab, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 7, 1, cv2.LINE_8)
    if rng.random() < 0.5:  # tiny specks
        ys, xs = rng.integers(0, h, 12), rng.integers(0, w, 12)
        lab[ys, xs] = 8
    if rng.random() < 0.6:  # ignore: a blob and / or VOC-like outlines
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(lab, centre, int(rng.integers(3, 25)), 255, -1)
    if rng.random() < 0.4:
        edges = cv2.morphologyEx(lab, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        lab[edges] = 255
    return lab


MAPS = [random_label_map(s) for s in range(NUM_MAPS)]
MAPS += [np.full((40, 50), 255, np.uint8), np.full((40, 50), 3, np.uint8)]  # all ignore, one class


@pytest.fixture(scope="module")
def outputs():
    """style -> list of outputs (seed 0) over MAPS, computed once."""
    return {s: [simulate_scribbles(m, style=s, seed=0) for m in MAPS] for s in STYLES}


@pytest.mark.parametrize("style", STYLES)
def test_no_crossing_and_ignore_never_labeled(style, outputs):
    for i, (lab, out) in enumerate(zip(MAPS, outputs[style])):
        assert out.dtype == np.uint8 and out.shape == lab.shape
        labeled = out != 255
        assert (out[labeled] == lab[labeled]).all(), f"{style}: crossing in map {i}"
        assert not (labeled & (lab == 255)).any(), f"{style}: ignore labeled in map {i}"


@pytest.mark.parametrize("style", STYLES)
def test_sparse_but_not_empty(style, outputs):
    fracs = [
        (o != 255).sum() / max((m != 255).sum(), 1) for m, o in zip(MAPS, outputs[style])
    ]
    assert max(fracs) < 0.6
    assert np.mean([f > 0 for f, m in zip(fracs, MAPS) if (m != 255).sum() > 500]) == 1.0
    assert outputs[style][-2].tolist() == np.full((40, 50), 255).tolist()  # all ignore


@pytest.mark.parametrize("style,min_differ", [("s4", 0.9), ("cdsp", 0.6), ("skeleton", 0.9)])
def test_deterministic_per_seed(style, min_differ, outputs):
    """Same seed: same map. Another seed: another map, except where a style has no choice
    (cdsp's leaves of a simple skeleton end in the same smoothed curve)."""
    again = [simulate_scribbles(m, style=style, seed=0) for m in MAPS[:16]]
    assert all((a == b).all() for a, b in zip(again, outputs[style]))
    other = [simulate_scribbles(m, style=style, seed=1) for m in MAPS[:16]]
    differ = [(a != b).any() for a, b in zip(other, outputs[style]) if (b != 255).sum() > 50]
    assert len(differ) >= 10 and np.mean(differ) >= min_differ


def test_s4_hits_every_region_above_min_area(outputs):
    min_area = DEFAULT_PARAMS["s4"].min_area
    checked = 0
    for i, (lab, out) in enumerate(zip(MAPS, outputs["s4"])):
        for c in np.unique(lab):
            if c == 255:
                continue
            comp, n = ndimage.label(lab == c, structure=EIGHT)
            sizes = np.bincount(comp.ravel(), minlength=n + 1)
            for j in range(1, n + 1):
                if sizes[j] >= min_area:
                    checked += 1
                    assert (out[comp == j] == c).any(), f"map {i}: region {j} of {c} missed"
                elif sizes[j] < 20:
                    assert not (out[comp == j] != 255).any()  # specks stay unlabeled
    assert checked > 100


@pytest.mark.parametrize("style", ["s4", "cdsp"])
def test_width_thickens_the_strokes(style):
    lab = np.full((300, 400), 255, np.uint8)
    lab[100:150, 100:300] = 1
    n1 = (simulate_scribbles(lab, style=style, seed=3, width=1) != 255).sum()
    n5 = (simulate_scribbles(lab, style=style, seed=3, width=5) != 255).sum()
    assert 4 * n1 < n5 < 6 * n1


def test_custom_ignore_label():
    lab = np.zeros((100, 140), np.uint8)  # 0 = unlabeled here
    lab[10:60, 10:120] = 4
    lab[65:95, 20:130] = 9
    for style in STYLES:
        out = simulate_scribbles(lab, style=style, seed=0, ignore_label=0)
        assert set(np.unique(out)) == {0, 4, 9}
        assert not ((out != 0) & (lab == 0)).any()
        assert ((out == lab) | (out == 0)).all()


def _length(mask):
    return int(skeletonize(mask).sum())


@pytest.mark.parametrize("style,lo,hi,margin", [("s4", 120, 180, 10), ("cdsp", 130, 200, 2)])
def test_single_rectangle_known_answer(style, lo, hi, margin):
    """A 50 x 200 rectangle covering 8.3 % of the image: one stroke, inside, 3 px wide, its
    length within [lo, hi]. s4 erodes it by 2 + int(0.080 / 0.147 * 18) = 11 px and keeps
    90 % of a curve between two far-apart edge points of the 28 x 178 core; cdsp smooths the
    skeleton's corner-to-corner path."""
    lab = np.full((300, 400), 255, np.uint8)
    lab[100:150, 100:300] = 1
    for seed in range(5):
        out = simulate_scribbles(lab, style=style, seed=seed)
        m = out == 1
        assert set(np.unique(out)) == {1, 255}
        assert ndimage.label(m, structure=EIGHT)[1] == 1
        length = _length(m)
        assert lo <= length <= hi, (seed, length)
        assert 2.8 * length <= m.sum() <= 3.4 * length  # 3 px wide
        ys, xs = np.nonzero(m)
        assert ys.min() >= 100 + margin and ys.max() <= 149 - margin
        assert xs.min() >= 100 + margin and xs.max() <= 299 - margin


def test_cdsp_boundary_style_for_large_single_regions():
    """A rectangle covering 48 % of the image takes the boundary style with probability
    0.48 (a loop inside the 20-px eroded outline, longer than any path), else the path."""
    lab = np.full((160, 260), 255, np.uint8)
    lab[30:130, 30:230] = 1
    lengths = [_length(simulate_scribbles(lab, style="cdsp", seed=s) == 1) for s in range(12)]
    assert max(lengths) > 220 and min(lengths) < 200, lengths
    small = np.full((300, 400), 255, np.uint8)
    small[100:150, 100:300] = 1  # 8 % of the image: always the path
    lengths = [_length(simulate_scribbles(small, style="cdsp", seed=s) == 1) for s in range(6)]
    assert max(lengths) < 200


def test_one_pixel_wide_class_is_followed():
    lab = np.zeros((80, 200), np.uint8)
    cv2.line(lab, (5, 10), (195, 70), 3, 1, cv2.LINE_8)  # a 1-px diagonal class of ~190 px
    for style in ("s4", "cdsp"):
        out = simulate_scribbles(lab, style=style, seed=0)
        hit = (out == 3).sum()
        assert hit >= 100, style  # most of the line, no crossing (checked pixel-wise)
        assert ((out == lab) | (out == 255)).all()


def test_skeleton_style_is_the_synthetic_generator():
    lab = random_label_map(5)
    ref = skeleton_scribbles(lab, np.random.default_rng(7))
    assert (simulate_scribbles(lab, style="skeleton", seed=7) == ref).all()


def test_real_voc_ground_truth_gives_scribblesup_like_labels():
    """From the dense VOC ground truth of the fixture images, every style labels 1-6 % of
    the pixels (the real ScribbleSup PNGs: 3.42 % and 2.92 %) and hits every object of at
    least 300 px."""
    for iid in ("2007_000032", "2007_000033"):
        gt = read_label(str(FIXTURES / "real_voc" / "gt_png" / f"{iid}.png"))
        for style in STYLES:
            fr = [(simulate_scribbles(gt, style=style, seed=s) != 255).mean() for s in range(3)]
            assert 0.01 < np.mean(fr) < 0.06, (iid, style, fr)
            out = simulate_scribbles(gt, style=style, seed=0)
            for c in np.unique(gt[gt != 255]):
                comp, n = ndimage.label(gt == c, structure=EIGHT)
                for j in range(1, n + 1):
                    if (comp == j).sum() >= 300:
                        assert (out[comp == j] == c).any(), (iid, style, c, j)


def test_api_errors_and_versions():
    assert set(GENERATOR_VERSION) == set(STYLES)
    lab = np.zeros((10, 10), np.uint8)
    with pytest.raises(ValueError, match="unknown scribble style"):
        simulate_scribbles(lab, style="nope")
    with pytest.raises(ValueError, match="unknown s4 parameters"):
        simulate_scribbles(lab, style="s4", erosion=3)
    with pytest.raises(ValueError, match="2-D"):
        simulate_scribbles(np.zeros((2, 3, 4), np.uint8))
    assert image_seed(0, "a") == image_seed(0, "a") != image_seed(1, "a") != image_seed(0, "b")


def test_cdsp_split_curves_never_cross():
    """Regression: two synthetic train maps where the Bezier pieces, checked one by one but
    drawn joined, reached 1 px into another class (cdsp pieces are now drawn as checked)."""
    from dfr.data.synthetic import SyntheticSpec, _sizes, render_sample

    spec = SyntheticSpec()
    for i in (355, 356):
        rng = np.random.default_rng([spec["seed"], 0, i])
        _, lab = render_sample(rng, *_sizes(rng, spec))
        out = simulate_scribbles(lab, style="cdsp", seed=image_seed(0, f"train_{i:05d}"))
        assert ((out == lab) | (out == 255)).all()
        assert (out != 255).sum() > 100


# ------------------------------------------------------------------- sizes that scale


def well_resolved_scene(seed: int, f: int = 1, h: int = 192, w: int = 256) -> np.ndarray:
    """A scene drawn at f times (h, w): two stuff bands, four ellipses that do not overlap and
    an ignore disc, every region tens of px across at f = 1 (no slivers of a few px, which no
    pixel rule scales). The geometry is drawn at each size, not upsampled (nearest upsampling
    gives staircase outlines whose skeletons branch at every step)."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((h * f, w * f), np.uint8)
    lab[: f * (h // 5 + int(rng.integers(0, h // 10)))] = 1
    lab[f * (h - h // 5 - int(rng.integers(0, h // 10))) :] = 2
    for i, (cy, cx) in enumerate([(0.4, 0.25), (0.4, 0.72), (0.68, 0.3), (0.66, 0.75)]):
        axes = (f * int(rng.integers(w // 14, w // 7)), f * int(rng.integers(h // 14, h // 9)))
        cv2.ellipse(lab, (int(f * cx * w), int(f * cy * h)), axes, float(rng.uniform(0, 180)),
                    0, 360, 3 + i, -1)  # fmt: skip
    cv2.circle(lab, (f * w // 2, f * h // 2), f * h // 12, 255, -1)
    return lab


# per-class relative coverage at 4x / at 1x (mean over 6 seeds, classes >= 1000 px at 1x):
# every class within [lo, hi]. Measured on scenes 0-3 at the commit of this test: s4 0.68-1.11,
# s4_cityscapes 0.93-1.12, skeleton 0.68-1.52, cdsp 0.40-1.73 (its random leaf per region and
# its boundary draw move one class's coverage by a factor 2-3 between seeds; 6 seeds average
# that only partly). The whole map's labeled share: within 20 %.
SCALE_TOLERANCE = {"s4": (0.6, 1.67), "s4_cityscapes": (0.6, 1.67), "skeleton": (0.6, 1.67),
                   "cdsp": (0.33, 3.0)}  # fmt: skip


@pytest.mark.parametrize("style", STYLES)
def test_scale_auto_is_scale_invariant(style):
    """Property: the same scene drawn at 1x and at 4x, scale="auto" and the
    stroke width scaled with it (3 -> 12 px), gives scribbles of the same relative coverage per
    class (labeled px of a class / its px) within SCALE_TOLERANCE, and the same labeled share
    of the whole map within 20 %."""
    lo, hi = SCALE_TOLERANCE[style]
    for scene in (0, 1):
        small, big = well_resolved_scene(scene), well_resolved_scene(scene, 4)
        classes = [c for c in np.unique(small) if c != 255 and (small == c).sum() >= 1000]

        def coverage(lab, width):
            outs = [simulate_scribbles(lab, style=style, seed=s, scale="auto", width=width)
                    for s in range(6)]  # fmt: skip
            per_class = np.mean([[(o == c).sum() / (lab == c).sum() for c in classes]
                                 for o in outs], 0)  # fmt: skip
            return per_class, np.mean([(o != 255).mean() for o in outs])

        (c1, share1), (c4, share4) = coverage(small, 3), coverage(big, 12)
        ratio = c4 / c1
        assert ((ratio >= lo) & (ratio <= hi)).all(), (scene, np.round(ratio, 2))
        assert 0.8 <= share4 / share1 <= 1.25, (scene, share1, share4)


def test_auto_scale_reference_and_the_published_cityscapes_config():
    """s = 2 at 2048 x 1024: the generic s4 config scaled gives the Cityscapes config's
    erosion (40 px) and about its minimum area (320 px², published 300) and thickness (6,
    published 5); VOC-size images get s = 0.60 (a proportional rule cannot also keep them at
    s = 1: docs/scribble_faithfulness.md), and scale=1.0 keeps the generic values at any size."""
    from dfr.data.scribbles import S4_PRESETS
    from dfr.data.scribbles.params import auto_scale, resolve_scale

    assert auto_scale((1024, 2048)) == 2.0
    assert resolve_scale("auto", (1024, 2048)) == 2.0 and resolve_scale(1.0, (1024, 2048)) == 1
    generic, cityscapes = S4_PRESETS["s4"], S4_PRESETS["s4_cityscapes"]
    at_cityscapes = generic.scaled(auto_scale((1024, 2048)))
    assert at_cityscapes.max_erosion == cityscapes.max_erosion == 40
    assert at_cityscapes.min_area == 320 and abs(320 / cityscapes.min_area - 1) < 0.07
    assert at_cityscapes.line_thickness == 6 and cityscapes.line_thickness == 5
    assert (at_cityscapes.min_share, at_cityscapes.trim) == (generic.min_share, generic.trim)
    assert round(auto_scale((375, 500)), 2) == 0.60
    assert generic.scaled(1.0) is generic
    for bad in ("big", 0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="scale must be"):
            resolve_scale(bad, (10, 10))


def test_scale_one_keeps_todays_pixels_and_scale_s_scales_the_parameters():
    lab = MAPS[3]
    for style in STYLES:
        a = simulate_scribbles(lab, style=style, seed=4)
        assert (simulate_scribbles(lab, style=style, seed=4, scale=1.0) == a).all()
        assert (simulate_scribbles(lab, style=style, seed=4, scale="1") == a).all()
    # scale=s is the style's parameters scaled by s, at the reference size
    p = DEFAULT_PARAMS["cdsp"].scaled(0.5)
    assert (p.min_area, p.boundary_jitter, p.rdp_epsilon, p.border) == (1.5, 10, 1.0, 1)
    big = np.kron(lab, np.ones((2, 2), np.uint8))
    got = simulate_scribbles(big, style="s4", seed=1, scale=2.0)
    d = DEFAULT_PARAMS["s4"]
    lengths = ("min_erosion", "max_erosion", "extra_erosion", "line_thickness")
    manual = simulate_scribbles(big, style="s4", seed=1, min_area=d.min_area * 4,
                                **{k: getattr(d, k) * 2 for k in lengths})  # fmt: skip
    assert (got == manual).all()


def test_quadratic_takes_any_number_of_samples():
    """The curve sampler had a table for 100 samples only (KeyError for any other n)."""
    from dfr.data.scribbles.simulate_s4 import _quadratic

    pts = np.array([[0.0, 0.0], [5.0, 10.0], [0.0, 20.0]])
    for n in (2, 50, 100, 333):
        curve = _quadratic(pts, 1, n)
        assert curve.shape == (n, 2)
        assert np.allclose(curve[[0, -1], 1], [0, 20]) and np.allclose(curve[[0, -1], 0], 0)


# ------------------------------------------------------------ the published s4 generator

# Scribbles4All's s4ScribbleGenerator/configs/config.json and configCS.json as released (the
# keys that are parameters of the port; height_distortion, background_px_value,
# background_input_values, ignore_values and error_tolerance_px: docs/scribble_faithfulness.md)
PUBLISHED_S4 = {
    "s4": {"min_binary_erosion": 2, "max_binary_erosion": 20, "it_extra_erosion": 2,
           "min_erosion_area_share": 0.003, "max_erosion_area_share": 0.15, "patience": 20,
           "min_blob_area": 80, "line_thickness": 3, "scribble_scale": 0.9},
    "s4_cityscapes": {"min_binary_erosion": 2, "max_binary_erosion": 40, "it_extra_erosion": 5,
                      "min_erosion_area_share": 0.007, "max_erosion_area_share": 0.07,
                      "patience": 20, "min_blob_area": 300, "line_thickness": 5,
                      "scribble_scale": 0.95},
}  # fmt: skip
PUBLISHED_KEY = {"min_binary_erosion": "min_erosion", "max_binary_erosion": "max_erosion",
                 "it_extra_erosion": "extra_erosion", "min_erosion_area_share": "min_share",
                 "max_erosion_area_share": "max_share", "patience": "patience",
                 "min_blob_area": "min_area", "line_thickness": "line_thickness",
                 "scribble_scale": "trim"}  # fmt: skip


@pytest.mark.parametrize("preset", ["s4", "s4_cityscapes"])
def test_presets_are_the_published_configs(preset):
    from dfr.data.scribbles import S4_PRESETS

    p = S4_PRESETS[preset]
    assert DEFAULT_PARAMS[preset] is p
    for key, value in PUBLISHED_S4[preset].items():
        assert getattr(p, PUBLISHED_KEY[key]) == value, key
    # ours where the port differs by default (published: polylines, index trim, no fallback,
    # background branch on the published sets' unlabeled value, i.e. never labeled here)
    assert (p.drawing, p.trim_by, p.fallback, p.background_values) == ("raster", "length",
                                                                      True, ())  # fmt: skip


def _across(mask: np.ndarray) -> float:
    """Mean stroke width: pixels / skeleton length (a little above the width: the skeleton
    is shorter than the stroke by its round ends)."""
    return mask.sum() / max(_length(mask), 1)


def test_polylines_drawing_is_the_published_stroke():
    """drawing="polylines": cv2.polylines(thickness=line_thickness) of the truncated points,
    about 5 px across for thickness 3 (the raster width 3: 3 px), never crossing (every
    stroke is checked as drawn); scale="auto" scales its thickness."""
    lab = np.full((300, 400), 255, np.uint8)
    lab[60:240, 60:340] = 1
    for seed in range(3):
        raster = simulate_scribbles(lab, style="s4", seed=seed) == 1
        poly = simulate_scribbles(lab, style="s4", seed=seed, drawing="polylines") == 1
        assert 3.0 < _across(raster) < 3.7 and 5.0 < _across(poly) < 6.0, seed
        assert 1.5 < _across(poly) / _across(raster) < 1.9  # about 5/3 of the raster width 3
        thick = simulate_scribbles(lab, style="s4_cityscapes", seed=seed, drawing="polylines")
        assert 7.0 < _across(thick == 1) < 8.2  # thickness 5
    for i, m in enumerate(MAPS[:24]):
        out = simulate_scribbles(m, style="s4", seed=0, drawing="polylines", trim_by="index",
                                 fallback=False)  # fmt: skip
        labeled = out != 255
        assert (out[labeled] == m[labeled]).all(), i
    big = np.kron(lab, np.ones((4, 4), np.uint8))  # s = 0.51 x 4: thickness 3 -> 6
    poly = simulate_scribbles(big, style="s4", seed=0, drawing="polylines", scale="auto") == 1
    assert 7.0 < _across(poly) < 9.5


def test_trim_by_index_keeps_the_middle_samples():
    from dfr.data.scribbles.strokes import trim_polyline

    pts = np.stack([np.arange(100.0), np.zeros(100)], 1)
    # int(100 * (1 - 0.9) / 2) = int(4.999...) = 4, as in the published generator
    assert np.array_equal(trim_polyline(pts, 0.9, "index"), pts[4:96])
    assert np.allclose(trim_polyline(pts, 0.9, "length")[[0, -1], 0], [4.95, 94.05])


def test_background_branch_erodes_the_background_further():
    """background_values=(0,): the published background branch, max_erosion px more erosion
    of the background's pieces and only the largest remainder: the background scribble keeps
    farther from the objects; the objects' scribbles do not change."""
    lab = np.zeros((240, 320), np.uint8)
    cv2.circle(lab, (90, 120), 45, 1, -1)
    cv2.rectangle(lab, (190, 50), (280, 190), 2, -1)
    dist = cv2.distanceTransform((lab == 0).view(np.uint8), cv2.DIST_L1, 3)
    near, far = [], []
    for seed in range(6):
        plain = simulate_scribbles(lab, style="s4", seed=seed)
        branch = simulate_scribbles(lab, style="s4", seed=seed, background_values=(0,))
        near.append(dist[plain == 0].min())
        far.append(dist[branch == 0].min())
        assert (branch == 0).any()
        assert ((branch == lab) | (branch == 255)).all()
    # background: 80 % of the image -> erosion 20 px; the branch adds 20 px more
    assert min(far) >= 20 + 20 - 3 and min(near) > 20
    assert np.mean(far) > np.mean(near) + 5
