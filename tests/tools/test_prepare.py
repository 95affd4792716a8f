"""datasets/prepare_*.py on tiny VOC+SBD and Context trees written here (no downloads)."""


import numpy as np
import pytest
import scipy.io
from PIL import Image

from helpers import load_script

from dfr.data.classes import CONTEXT59_CLASSES, voc_palette


def load_dataset_script(name):
    return load_script(f"datasets/{name}.py")


def jpeg(path, h, w, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=90)


def xml(path, polygons):
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(
        f"<polygon><tag>{t}</tag>"
        + "".join(f"<point><X>{x}</X><Y>{y}</Y></point>" for x, y in pts)
        + "</polygon>"
        for t, pts in polygons
    )
    path.write_text(
        f"<annotation><size><width>1</width><height>1</height></size>{body}</annotation>"
    )


def ids_file(path, ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


H, W = 24, 32
VOC_TRAIN, VOC_VAL, SBD_TRAIN, SBD_VAL, TEST = (
    "2007_000001",
    "2007_000002",
    "2008_000001",
    "2008_000002",
    "2008_000010",
)
TRAIN_AUG = sorted([VOC_TRAIN, SBD_TRAIN, SBD_VAL])
SCRIBBLES = [
    ("cat", [(2, 5), (20, 5)]),
    ("background", [(25, 0), (25, 23)]),
    ("dog", [(8, 18)] * 4),
]


@pytest.fixture
def voc_tree(tmp_path):
    voc, sbd, scr = (
        tmp_path / "VOCdevkit/VOC2012",
        tmp_path / "benchmark_RELEASE/dataset",
        tmp_path / "pascal_2012",
    )
    for k, iid in enumerate([VOC_TRAIN, VOC_VAL, TEST, SBD_TRAIN, SBD_VAL]):
        jpeg(voc / "JPEGImages" / f"{iid}.jpg", H, W, seed=k)
    pal = voc_palette().reshape(-1).tolist()
    for iid, v in ((VOC_TRAIN, 15), (VOC_VAL, 3)):
        seg = np.zeros((H, W), np.uint8)
        seg[5:15, 5:20], seg[4, 4:21] = v, 255
        im = Image.fromarray(seg, mode="P")
        im.putpalette(pal)
        (voc / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        im.save(voc / "SegmentationClass" / f"{iid}.png")
    ids_file(voc / "ImageSets/Segmentation/train.txt", [VOC_TRAIN])
    ids_file(voc / "ImageSets/Segmentation/val.txt", [VOC_VAL])
    ids_file(voc / "ImageSets/Segmentation/test.txt", [TEST])
    for iid, v in ((SBD_TRAIN, 7), (SBD_VAL, 20), (VOC_VAL, 1)):  # VOC val also in SBD: excluded
        seg = np.zeros((H, W), np.uint8)
        seg[10:20, 2:12] = v
        (sbd / "cls").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(
            sbd / "cls" / f"{iid}.mat",
            {
                "GTcls": {
                    "Segmentation": seg,
                    "Boundaries": np.zeros((20, 1), object),
                    "CategoriesPresent": np.array([v]),
                }
            },
        )
    ids_file(sbd / "train.txt", [SBD_TRAIN, VOC_VAL])
    ids_file(sbd / "val.txt", [SBD_VAL])
    for iid in TRAIN_AUG:
        xml(scr / f"{iid}.xml", SCRIBBLES)
    out = tmp_path / "datasets/VOC2012"
    args = [
        "--voc-root",
        str(voc),
        "--sbd-root",
        str(sbd),
        "--scribbles",
        str(scr),
        "--out",
        str(out),
        "--expected-counts",
        "train_aug=3,val=1,test=1",
    ]
    return args, out, scr


def read(p):
    return np.asarray(Image.open(p))


def test_prepare_voc_outputs(voc_tree, capsys):
    args, out, _ = voc_tree
    assert load_dataset_script("prepare_voc_scribble").main(args) == 0, capsys.readouterr().out
    seg_sets = out / "ImageSets/Segmentation"
    assert (seg_sets / "train_aug.txt").read_text().split() == TRAIN_AUG
    assert (seg_sets / "val.txt").read_text().split() == [VOC_VAL]
    assert (seg_sets / "test.txt").read_text().split() == [TEST]
    for iid in TRAIN_AUG + [VOC_VAL, TEST]:
        assert (out / "JPEGImages" / f"{iid}.jpg").is_file()
    # dense: SBD .mat -> ids; VOC palette PNG -> indices (VOC wins over SBD for the val image)
    assert read(out / f"SegmentationClassAug/{SBD_TRAIN}.png")[15, 5] == 7
    assert read(out / f"SegmentationClassAug/{SBD_VAL}.png")[15, 5] == 20
    val = read(out / f"SegmentationClassAug/{VOC_VAL}.png")
    assert val[10, 10] == 3 and val[4, 10] == 255 and val[15, 3] == 0
    assert not (out / f"pascal_2012_scribble/{VOC_VAL}.png").exists()
    # scribbles: class ids where the polylines pass, 255 elsewhere
    lab = read(out / f"pascal_2012_scribble/{SBD_TRAIN}.png")
    assert lab.shape == (H, W) and lab.dtype == np.uint8
    assert (lab[4:7, 2:21] == 8).all() and (lab[:, 24:27] == 0).all()
    assert (
        lab[18, 8] == 12 and lab[17, 8] == 12 and lab[17, 7] == 255
    )  # the single point: a radius-1 dot
    drawn = np.zeros((H, W), bool)
    drawn[3:8, 1:22] = drawn[:, 24:27] = drawn[17:20, 7:10] = True
    assert (lab[~drawn] == 255).all()
    report = capsys.readouterr().out
    assert "OK: 0 problem(s)" in report and "single-point scribbles drawn as dots" in report


def test_prepared_voc_tree_is_what_registration_reads(voc_tree, monkeypatch):
    from detectron2.data import DatasetCatalog

    args, out, _ = voc_tree
    assert load_dataset_script("prepare_voc_scribble").main(args) == 0
    monkeypatch.setenv("DETECTRON2_DATASETS", str(out.parent))
    scr = DatasetCatalog.get("voc_2012_train_aug_scribble")
    assert [r["image_id"] for r in scr] == TRAIN_AUG
    assert scr[0]["sem_seg_file_name"] == str(out / "pascal_2012_scribble" / f"{TRAIN_AUG[0]}.png")
    assert (scr[0]["height"], scr[0]["width"]) == (H, W)
    assert len(DatasetCatalog.get("voc_2012_train_aug_full")) == 3
    assert [r["image_id"] for r in DatasetCatalog.get("voc_2012_val_sem_seg")] == [VOC_VAL]
    assert [r["image_id"] for r in DatasetCatalog.get("voc_2012_test")] == [TEST]


def test_prepare_voc_counts_mismatch_fails_clearly(voc_tree, capsys):
    args, out, _ = voc_tree
    rc = load_dataset_script("prepare_voc_scribble").main(
        args[:-2]
    )  # default counts 10,582 / 1,449 / 1,456
    msg = capsys.readouterr().out
    assert (
        rc == 1
        and "split train_aug has 3 images, expected 10582" in msg
        and "--no-verify-counts" in msg
    )
    assert load_dataset_script("prepare_voc_scribble").main(args[:-2] + ["--no-verify-counts"]) == 0


def test_prepare_voc_idempotent(voc_tree, capsys):
    args, out, _ = voc_tree
    mod = load_dataset_script("prepare_voc_scribble")
    assert mod.main(args) == 0
    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    assert mod.main(args) == 0
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before  # nothing rewritten
    assert mod.main(args + ["--force"]) == 0
    assert {p: p.read_bytes() for p in files} == {p: v[0] for p, v in before.items()}


def test_prepare_voc_reports_unusable_files(voc_tree, capsys):
    args, out, scr = voc_tree
    (scr / f"{SBD_VAL}.xml").unlink()
    xml(scr / f"{VOC_TRAIN}.xml", [("unicorn", [(1, 1), (3, 3)])])
    assert load_dataset_script("prepare_voc_scribble").main(args) == 1
    msg = capsys.readouterr().out
    assert f"{SBD_VAL}: not in" in msg and "missing scribble" in msg
    assert f"{VOC_TRAIN}.xml: unknown scribble tag 'unicorn'" in msg
    assert (out / f"pascal_2012_scribble/{SBD_TRAIN}.png").is_file()  # the rest still converted


def test_prepare_context(tmp_path, capsys, monkeypatch):
    voc, ctx = tmp_path / "VOCdevkit/VOC2010", tmp_path / "trainval"
    names = ["accordion"] + CONTEXT59_CLASSES[:49] + ["diningtable"] + CONTEXT59_CLASSES[50:]
    (tmp_path / "labels.txt").write_text("".join(f"{i + 1}: {n}\n" for i, n in enumerate(names)))
    ids = {"train": ["2008_000002", "2008_000003"], "val": ["2008_000005"]}
    for split, split_ids in ids.items():
        ids_file(voc / f"ImageSets/Main/{split}.txt", split_ids)
        for iid in split_ids:
            jpeg(voc / "JPEGImages" / f"{iid}.jpg", H, W)
            lm = np.zeros((H, W), np.uint16)
            lm[:, :8] = 1  # accordion: outside the 59 -> background
            lm[:, 8:16] = names.index("sky") + 1
            lm[:, 16:24] = names.index("diningtable") + 1  # = Context "table"
            ctx.mkdir(exist_ok=True)
            scipy.io.savemat(ctx / f"{iid}.mat", {"LabelMap": lm})
            xml(
                tmp_path / "ctx_xml" / f"{iid}.xml",
                [
                    ("sky", [(1, 2), (30, 2)]),
                    ("accordion", [(1, 10), (30, 10)]),
                    ("sheep", [(5, 20), (6, 20)]),
                ],
            )
    out = tmp_path / "PascalContext"
    args = [
        "--voc2010-root",
        str(voc),
        "--context-root",
        str(ctx),
        "--scribbles",
        str(tmp_path / "ctx_xml"),
        "--out",
        str(out),
        "--expected-counts",
        "train=2,val=1",
    ]
    mod = load_dataset_script("prepare_context_scribble")
    assert mod.main(args) == 0, capsys.readouterr().out
    sky, table, sheep = (CONTEXT59_CLASSES.index(n) for n in ("sky", "table", "sheep"))
    d60, d59 = read(out / "SegmentationClassContext60/2008_000005.png"), read(
        out / "SegmentationClassContext59/2008_000005.png"
    )
    assert d60[0, 0] == 0 and d60[0, 10] == sky + 1 and d60[0, 20] == table + 1 and d60[0, 30] == 0
    assert d59[0, 0] == 255 and d59[0, 10] == sky and d59[0, 20] == table
    s60, s59 = read(out / "scribble_context60/2008_000002.png"), read(
        out / "scribble_context59/2008_000002.png"
    )
    assert (
        s60[2, 15] == sky + 1
        and s60[10, 15] == 0
        and s60[20, 5] == sheep + 1
        and s60[15, 15] == 255
    )
    assert s59[2, 15] == sky and s59[10, 15] == 255 and s59[20, 5] == sheep
    assert not (out / "scribble_context60/2008_000005.png").exists()  # val: dense GT only
    assert (out / "ImageSets/train.txt").read_text().split() == ids["train"]
    assert mod.main(args) == 0  # idempotent
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))  # the tree registration reads
    from detectron2.data import DatasetCatalog

    for n in (59, 60):
        assert len(DatasetCatalog.get(f"context_{n}_train_scribble")) == 2
        assert [r["image_id"] for r in DatasetCatalog.get(f"context_{n}_val_sem_seg")] == ids["val"]
    rc = mod.main(args[:-2])
    assert rc == 1 and "split train has 2 images, expected 4998" in capsys.readouterr().out


def test_scribble_stats_tool(voc_tree, tmp_path, capsys):
    args, out, scr = voc_tree
    assert load_dataset_script("prepare_voc_scribble").main(args) == 0
    stats = load_script("tools/scribble_stats.py")
    labs = [read(out / f"pascal_2012_scribble/{i}.png") for i in TRAIN_AUG]
    frac = 100 * np.mean([(lab != 255).mean() for lab in labs])
    assert (
        stats.main(["--labels", str(out / "pascal_2012_scribble"), "--out", str(tmp_path / "s")])
        == 0
    )
    md = (tmp_path / "s/scribble_stats.md").read_text()
    assert f"{len(TRAIN_AUG)} images; labeled pixels per image: mean {frac:.2f} %" in md
    assert "| 8 | cat | 3 |" in md and "scribbles per image: mean 3.00" in md  # 3 separate blobs
    assert (tmp_path / "s/scribble_stats.png").stat().st_size > 1000
    # from the XMLs directly: the polyline count, and the same pixels
    assert (
        stats.main(
            [
                "--labels",
                str(scr),
                "--images",
                str(out / "JPEGImages"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 0
    )
    assert f"mean {frac:.2f} %" in (tmp_path / "x/scribble_stats.md").read_text()
