"""dfr.data.scribbles on tiny hand-written annotations: drawing rules, forms, bad inputs."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from skimage.draw import line as sk_line

from dfr.data import scribbles as sio
from dfr.data.classes import CONTEXT59_CLASSES


def xml_bytes(polygons, size=(40, 30)):
    """polygons: list of (tag, [(x, y), ...]) -> ScribbleSup-style XML bytes."""
    out = [
        f"<annotation><filename>x.jpg</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size>"
    ]
    for tag, pts in polygons:
        out.append(f"<polygon><tag>{tag}</tag>")
        out += [f"<point><X>{x}</X><Y>{y}</Y></point>" for x, y in pts]
        out.append("</polygon>")
    out.append("</annotation>")
    return "".join(out).encode()


def draw(polys, h=30, w=40, **kw):
    return sio.rasterize(sio.parse_scribble_xml(xml_bytes(polys), source="t.xml"), h, w, **kw)


def test_horizontal_3px_line_exact_pixels():
    lab = draw([("cat", [(5, 10), (20, 10)])])
    ys, xs = np.nonzero(lab != 255)
    assert set(np.unique(lab)) == {8, 255}
    # centre within 1.5 px of the segment: rows 9..11 over x 4..21 (the caps add one column)
    expect = {
        (y, x)
        for y in range(30)
        for x in range(40)
        if max(5 - x, x - 20, 0) ** 2 + (y - 10) ** 2 <= 2.25
    }
    assert len(expect) == 3 * 18
    assert set(zip(ys.tolist(), xs.tolist())) == expect


def test_1px_lines_are_bresenham():
    lab = draw([("dog", [(1, 2), (30, 17), (35, 3)])], line_width=1)
    ref = np.full((30, 40), 255, np.uint8)
    for (x0, y0), (x1, y1) in [((1, 2), (30, 17)), ((30, 17), (35, 3))]:
        r, c = sk_line(y0, x0, y1, x1)
        ref[r, c] = 12
    np.testing.assert_array_equal(lab, ref)


def test_file_order_later_overwrites():
    lab = draw([("cat", [(0, 10), (39, 10)]), ("dog", [(20, 0), (20, 29)])])
    assert lab[10, 20] == 12 and lab[10, 5] == 8 and lab[5, 20] == 12


def test_single_and_repeated_points_draw_radius1_dot():
    single = draw([("bird", [(10, 10)])])
    repeated = draw([("bird", [(10, 10)] * 7)])
    np.testing.assert_array_equal(single, repeated)
    ys, xs = np.nonzero(single != 255)
    assert set(zip(ys.tolist(), xs.tolist())) == {(10, 10), (9, 10), (11, 10), (10, 9), (10, 11)}
    assert (single[single != 255] == 3).all()
    assert (draw([("bird", [(10, 10)] * 3)], point_radius=None) == 255).all()  # rloss behaviour


def test_far_outside_coordinates_are_clamped():
    lab = draw([("cat", [(-5000, 4), (90000, 4)]), ("dog", [(7, -(10**6)), (7, -(10**6))])])
    assert (lab[3:6, :] == 8).all()  # a full-width 3-px band
    assert lab[0, 7] == 12 and lab[1, 7] == 12  # the far point became a dot at the top edge


def test_empty_polygon_skipped_and_counted():
    ss = sio.parse_scribble_xml(
        xml_bytes([("cat", []), ("dog", [(1, 1), (5, 5)]), ("sky", [])]), source="e.xml"
    )
    assert ss.num_empty == 2 and len(ss) == 1 and ss.scribbles[0].class_id == 12


def test_unknown_tag_error_names_file_and_tag():
    with pytest.raises(sio.UnknownTagError, match=r"bad\.xml.*'unicorn'"):
        sio.parse_scribble_xml(xml_bytes([("unicorn", [(1, 1), (2, 2)])]), source="bad.xml")


def test_malformed_xml_error_names_file(tmp_path):
    p = tmp_path / "2007_000001.xml"
    p.write_bytes(xml_bytes([("cat", [(1, 1), (2, 2)])])[:-20])
    with pytest.raises(sio.ScribbleFormatError, match=r"2007_000001\.xml: malformed XML"):
        sio.parse_scribble_xml(p)
    bad_point = xml_bytes([("cat", [(1, 1), ("abc", 2)])])
    with pytest.raises(sio.ScribbleFormatError, match=r"p\.xml: polygon #0 \(cat\)"):
        sio.parse_scribble_xml(bad_point, source="p.xml")


def test_context_tag_maps():
    tm60, tm59 = sio.context_tag_map(60, all_names=["sheep", "accordion"]), sio.context_tag_map(59)
    assert tm60("sheep") == CONTEXT59_CLASSES.index("sheep") + 1
    assert tm59("sheep") == CONTEXT59_CLASSES.index("sheep")
    assert tm60("plane") == 1 and tm60("Dining Table") == CONTEXT59_CLASSES.index("table") + 1
    assert tm60("accordion") == 0 and tm60("background") == 0  # outside the 59 -> background
    assert tm59("background") is None
    with pytest.raises(sio.UnknownTagError, match="f.xml.*'accordion'"):
        tm59("accordion", "f.xml")  # not told it is a Context class
    assert sio.context_tag_map(59, unknown="ignore")("accordion") is None
    ss = sio.parse_scribble_xml(
        xml_bytes([("accordion", [(1, 1), (3, 3)]), ("sky", [(1, 5), (9, 5)])]),
        sio.context_tag_map(59, unknown="ignore"),
        source="c.xml",
    )
    assert ss.ignored == ["accordion"] and [s.class_id for s in ss] == [
        CONTEXT59_CLASSES.index("sky")
    ]


def test_txt_form_and_errors():
    ss = sio.parse_scribble_txt(b"15,1,1,10,1\n\n0,3,3,3,3,3,3\n", source="a.txt")
    assert [s.class_id for s in ss] == [15, 0] and ss.scribbles[1].points.shape == (3, 2)
    with pytest.raises(sio.ScribbleFormatError, match=r"b\.txt:1: odd number"):
        sio.parse_scribble_txt(b"15,1,1,10\n", source="b.txt")
    with pytest.raises(sio.ScribbleFormatError, match=r"c\.txt:2: class id 21"):
        sio.parse_scribble_txt(b"1,1,1\n21,1,1\n", source="c.txt")


def test_sources_folder_zip_png(tmp_path):
    xml = xml_bytes([("cat", [(2, 3), (12, 3)])])
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "2007_000001.xml").write_bytes(xml)
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as z:
        z.writestr("scribbles/test_2007_000001.xml", xml)
        z.writestr("__MACOSX/._2007_000001.xml", b"junk")
    ref = None
    for path in (tmp_path / "x", tmp_path / "x.zip"):
        src = sio.open_scribble_source(path)
        assert src.kind == "xml" and src.ids() == ["2007_000001"]
        lab, ss = src.load("2007_000001", 20, 25)
        assert lab.shape == (20, 25) and len(ss) == 1
        ref = lab if ref is None else ref
        np.testing.assert_array_equal(lab, ref)
    # ready PNGs, palette mode included, folder and zip
    (tmp_path / "p").mkdir()
    im = Image.fromarray(ref, mode="L").convert("P")
    im.save(tmp_path / "p" / "2007_000001.png")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    with zipfile.ZipFile(tmp_path / "p.zip", "w") as z:
        z.writestr("pascal_2012_scribble/2007_000001.png", buf.getvalue())
    for path in (tmp_path / "p", tmp_path / "p.zip"):
        src = sio.open_scribble_source(path)
        lab, ss = src.load("2007_000001", 20, 25)
        assert src.kind == "png" and ss is None
        np.testing.assert_array_equal(lab, ref)
        with pytest.raises(sio.ScribbleError, match=r"2007_000001\.png: label size"):
            src.load("2007_000001", 21, 25)
    Image.fromarray(np.stack([ref] * 3, -1)).save(tmp_path / "rgb.png")
    from dfr.data.labels import LabelMapError, read_label

    with pytest.raises(LabelMapError, match="rgb.png: mode 'RGB'; expected a single-channel"):
        read_label(tmp_path / "rgb.png")


def test_image_id_from_name():
    assert sio.image_id_from_name("a/test_2008_003147.xml") == "2008_003147"
    assert sio.image_id_from_name("2007_009897_scribble.txt") == "2007_009897"
    assert sio.image_id_from_name("foo_scribble.txt") == "foo"


def test_segment_drawing_equals_the_distance_rule_per_pixel():
    """_draw_segments (batched windows for short segments, one box for long ones, clipped)
    against a brute-force loop over every pixel and segment in float64."""
    from dfr.data.scribbles.rasterize import _draw_segments

    rng = np.random.default_rng(0)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(5, 60, 2))
        pts = rng.uniform(-30, 90, (int(rng.integers(2, 12)), 2))  # short, long, outside
        for radius in (1.0, 1.5, 2.5):
            got = np.full((h, w), 255, np.uint8)
            _draw_segments(got, pts[:-1], pts[1:], 7, radius)
            want = np.full((h, w), 255, np.uint8)
            for y in range(h):
                for x in range(w):
                    for p, q in zip(pts[:-1], pts[1:]):
                        d = q - p
                        t = np.clip(((x - p[0]) * d[0] + (y - p[1]) * d[1]) / (d @ d), 0, 1)
                        if (x - p[0] - t * d[0]) ** 2 + (y - p[1] - t * d[1]) ** 2 <= radius**2:
                            want[y, x] = 7
                            break
            np.testing.assert_array_equal(got, want)
