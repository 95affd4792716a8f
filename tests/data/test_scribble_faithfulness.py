"""dfr.data.scribbles.faithfulness: statistics of a hand-made case with known values, the
comparison table, and tools/scribble_stats.py against the dense ground truth."""

import numpy as np
import pytest

from dfr.data.classes import VOC_CLASSES
from dfr.data.scribbles.faithfulness import (
    compare_report,
    faithfulness_table,
    scribble_image_stats,
    summarize,
)

from helpers import REAL_VOC, load_script


def _case():
    """40 x 60: class 0 left, class 1 right with a 10 x 10 class-2 square; three 1-px
    scribbles: class 0 (20 px), class 1 (20 px), class 1 crossing 5 px into the square."""
    dense = np.zeros((40, 60), np.uint8)
    dense[:, 30:] = 1
    dense[5:15, 40:50] = 2
    scr = np.full_like(dense, 255)
    scr[20, 5:25] = 0
    scr[30, 35:55] = 1
    scr[10, 35:45] = 1
    return scr, dense


def test_known_statistics():
    scr, dense = _case()
    r = scribble_image_stats(scr, dense, num_classes=3, boundary_px=5)
    assert r["labeled"] == 50 and r["size"] == 2400
    assert r["pixels"].tolist() == [20, 30, 0]
    assert r["scribbles"] == 3 and sorted(r["lengths"]) == [10, 20, 20]
    assert r["objects"] == 3 and r["objects_hit"] == 2  # the class-2 square is not hit
    assert r["crossing_scribbles"] == 1 and r["crossing_pixels"] == 5
    assert r["on_ignore"] == 0
    # within 5 px of a class change: col 24 (class 0), col 35 (class 1), the whole crossing one
    assert r["near_boundary"] == 1 + 1 + 10
    s = summarize([r])
    assert s["labeled_share"] == pytest.approx(50 / 2400)
    assert s["objects_hit_share"] == pytest.approx(2 / 3)
    assert s["length_median"] == 20 and s["near_boundary_share"] == pytest.approx(12 / 50)
    assert s["class_share"].tolist() == pytest.approx([0.4, 0.6, 0.0])


def test_ignore_and_no_dense():
    scr, dense = _case()
    dense[20, 5:10] = 255  # 5 scribble pixels on dense ignore: not crossings
    r = scribble_image_stats(scr, dense, num_classes=3)
    assert r["on_ignore"] == 5 and r["crossing_pixels"] == 5
    bare = scribble_image_stats(scr, None, num_classes=3)
    assert bare["objects"] is None and bare["near_boundary"] is None and bare["scribbles"] == 3
    s = summarize([bare])
    assert s["objects_hit_share"] is None and s["labeled_share"] == pytest.approx(50 / 2400)
    with pytest.raises(ValueError, match="shapes differ"):
        scribble_image_stats(scr, dense[:10], num_classes=3)


def test_table_ratios_to_reference():
    scr, dense = _case()
    a = summarize([scribble_image_stats(scr, dense, num_classes=3)])
    half = scr.copy()
    half[30, 35:55] = 255
    half[10, 35:45] = 255  # only the class-0 scribble: 20 px, 1 of 3 objects
    b = summarize([scribble_image_stats(half, dense, num_classes=3)])
    md = faithfulness_table({"real": a, "sim": b}, "real", ["zero", "one", "two"])
    assert md[2].startswith("| real | 1 | 2.08 % (1.00x) | 3.0 |")
    assert "| sim | 1 | 0.83 % (0.40x) | 1.0 |" in md[3]
    assert "33 % of 3 (0.50x)" in md[3] and "| 0 (0) |" in md[3]
    assert "| sim | 100.0 % | 0.0 % | 0.60 |" in md  # class shares and their TV distance


def test_real_voc_against_simulations():
    """The fixture's ScribbleSup maps against one s4 simulation of the same ground truth:
    ScribbleSup crosses class boundaries (2 scribbles, 50 px), the simulation never does."""
    from dfr.data.labels import read_label

    ids = ("2007_000032", "2007_000033")
    scr = {i: read_label(str(REAL_VOC / "scribble_png" / f"{i}.png")) for i in ids}
    md = compare_report(
        scr, VOC_CLASSES, dense_dir=str(REAL_VOC / "gt_png"), styles=["s4"], seeds=1
    )
    text = "\n".join(md)
    assert "| real | 2 | 3.17 % (1.00x) | 4.5 | 31.9 % | 90 % of 10 (1.00x) |" in text
    assert "| 2 (50) | 891 |" in text  # crossings and pixels on the VOC ignore band
    row = next(line for line in md if line.startswith("| s4 | 2 |"))
    assert row.endswith("| 0 (0) | 0 |")


def test_scribble_stats_tool_compares_with_simulations(tmp_path, capsys):
    tool = load_script("tools/scribble_stats.py")
    args = ["--labels", str(REAL_VOC / "scribble_png"), "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="--styles needs --dense"):
        tool.main(args + ["--styles", "s4"])
    dense = ["--dense", str(REAL_VOC / "gt_png"), "--styles", "s4,cdsp", "--seeds", "1"]
    assert tool.main(args + dense + ["--name", "ScribbleSup"]) == 0
    md = (tmp_path / "scribble_stats.md").read_text()
    assert "## Scribbles against the dense ground truth" in md and "| ScribbleSup | 2 |" in md
    for style in ("s4", "cdsp"):
        row = next(line for line in md.splitlines() if line.startswith(f"| {style} | 2 |"))
        assert "100 % of 10" in row and row.endswith("| 0 (0) | 0 |")
    assert "| ScribbleSup | 2 | 3.17 %" in capsys.readouterr().out


def test_class_coverage_against_exact_distances():
    """Dense pixels of each class within cover_px of a scribble pixel of that class: equal to
    an exact Euclidean count; the class-0 stroke (1 x 20 px) reaches a 7 x 20 band plus two
    caps of 11 px at 3 px. The class-2 square has no scribble: 0."""
    scr, dense = _case()
    yy, xx = np.mgrid[:40, :60]

    def exact(radius):
        want = []
        for c in range(3):
            pts = np.argwhere(scr == c)
            if len(pts) == 0:
                want.append(0)
                continue
            d2 = ((yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2).min(-1)
            want.append(int(((dense == c) & (d2 <= radius**2)).sum()))
        return want

    # at 6 px the class-0 stroke (ending at x = 24) reaches class-1 pixels (x = 30): not counted
    wide = scribble_image_stats(scr, dense, num_classes=3, cover_px=6)
    assert wide["covered"].tolist() == exact(6)
    r = scribble_image_stats(scr, dense, num_classes=3, cover_px=3)
    want = exact(3)
    assert r["covered"].tolist() == want and want[0] == 7 * 20 + 2 * 11
    assert r["class_pixels"].tolist() == [1200, 1100, 100]
    s = summarize([r, r])
    assert s["class_coverage"] == pytest.approx(np.mean([want[0] / 1200, want[1] / 1100, 0.0]))
    md = faithfulness_table({"a": s, "b": s}, "a")
    assert f"| {100 * s['class_coverage']:.1f} % (1.00x) |" in md[3]


def test_scribble_stats_names_the_synthetic_classes(tmp_path):
    from PIL import Image

    tool = load_script("tools/scribble_stats.py")
    (tmp_path / "labels").mkdir()
    lab = np.full((20, 30), 255, np.uint8)
    lab[2, 2:12], lab[8, 2:12], lab[14, 2:12] = 0, 1, 3
    Image.fromarray(lab).save(tmp_path / "labels" / "a.png")
    out = tmp_path / "out"
    assert tool.main(["--labels", str(tmp_path / "labels"), "--classes", "synthetic",
                      "--out", str(out)]) == 0
    md = (out / "scribble_stats.md").read_text()
    assert "| 1 | disc |" in md and "| 3 | triangle |" in md and "aeroplane" not in md
