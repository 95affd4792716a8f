"""An example of "your own data" for the README's own-scribbles steps, written from the
repository's fixture tests/fixtures/custom/ (six half-size PASCAL VOC 2012 photos, four classes:
background, animal, person, vehicle; origin in tests/fixtures/custom/make_fixture.py):

    <root>/images/<id>.jpg             the six photos
    <root>/masks/<id>.png              dense labels of two of them (validation)
    <root>/labelme/<id>.json           real ScribbleSup scribbles of two photos as LabelMe 5
                                       `linestrip` shapes
    <root>/cvat/annotations.xml        those of the two others as a "CVAT for images 1.1" export
                                       (`polyline` shapes)

`datasets/prepare_custom_scribbles.py --example <root>` calls `write_example`; the tests use
the two writers for their own annotation files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import List, Sequence, Tuple
from xml.sax.saxutils import quoteattr

from dfr.data.images import image_hw

EXAMPLE_CLASSES = ["background", "animal", "person", "vehicle"]
# projects/DFR/dfr/data/datasets/ -> the repository root (an editable install / a checkout)
FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "custom"

__all__ = ["EXAMPLE_CLASSES", "cvat_xml", "labelme_json", "write_example"]


def labelme_json(path, image_name: str, hw: Tuple[int, int], shapes) -> None:
    """shapes: [(label, shape_type, points)] -> a LabelMe 5 JSON file next to ../images/."""
    d = {
        "version": "5.4.1",
        "flags": {},
        "shapes": [{"label": lab, "points": [list(map(float, p)) for p in pts],
                    "group_id": None, "description": "", "shape_type": t, "flags": {}}
                   for lab, t, pts in shapes],  # fmt: skip
        "imagePath": f"../images/{image_name}",
        "imageData": None,
        "imageHeight": hw[0],
        "imageWidth": hw[1],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(d, indent=1))


def cvat_xml(path, images, labels: Sequence[str] = EXAMPLE_CLASSES) -> None:
    """images: [(name, (h, w), [(tag, label, points, z_order)])] -> CVAT for images 1.1 XML."""
    out = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>",
           "  <meta><task><name>t</name><mode>annotation</mode><labels>"]  # fmt: skip
    out += [f"    <label><name>{n}</name><type>any</type></label>" for n in labels]
    out += ["  </labels></task></meta>"]
    for k, (name, (h, w), shapes) in enumerate(images):
        out.append(f'  <image id="{k}" name={quoteattr(name)} width="{w}" height="{h}">')
        for tag, lab, pts, z in shapes:
            p = ";".join(f"{x:.2f},{y:.2f}" for x, y in pts)
            out.append(f'    <{tag} label={quoteattr(lab)} source="manual" occluded="0" '
                       f'points="{p}" z_order="{z}"></{tag}>')  # fmt: skip
        out.append("  </image>")
    out.append("</annotations>")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(out) + "\n")


def write_example(root, fixture=FIXTURE) -> List[str]:
    """Write the example folder `root` (see the module docstring); returns the ids of the
    scribbled images. Refuses to write into an existing non-empty folder."""
    root, fixture = Path(root), Path(fixture)
    if not (fixture / "scribbles.json").is_file():
        raise FileNotFoundError(f"{fixture}/scribbles.json not found: the example is written "
                                "from the repository's tests/fixtures/custom (a checkout)")  # fmt: skip
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists and is not empty; give a new folder")
    shutil.copytree(fixture / "images", root / "images")
    shutil.copytree(fixture / "masks", root / "masks")
    scribbles = json.loads((fixture / "scribbles.json").read_text())
    ids = sorted(scribbles)
    cvat = []
    for k, i in enumerate(ids):
        h, w = image_hw(root / "images" / f"{i}.jpg")
        if k < 2:
            shapes = [(c, "linestrip", pts) for c, pts in scribbles[i]]
            labelme_json(root / "labelme" / f"{i}.json", f"{i}.jpg", (h, w), shapes)
        else:
            cvat.append((f"{i}.jpg", (h, w), [("polyline", c, p, 0) for c, p in scribbles[i]]))
    cvat_xml(root / "cvat" / "annotations.xml", cvat)
    return ids
