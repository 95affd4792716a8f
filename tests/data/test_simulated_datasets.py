"""Scribbles simulated from any registered dense dataset (dfr.data.datasets.simulated): the
name `<source>_sim_<style>` trains through train_net.py with no Python registration, the
simulated maps are cached with a manifest (reused while it matches, regenerated otherwise),
the metadata is the source's, and a simulated label never differs from the dense one."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, logged
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from dfr.data import register_scribble_dataset, register_simulated_scribbles
from dfr.data.datasets import simulated
from dfr.data.scribbles import simulate as sim_module

CLASSES = ["background", "disc", "square", "stripe"]
QUICK = REPO / "projects/DFR/configs/quick_schedules"
INSTANT = QUICK / "dfr_swin_tiny_custom_instant_test.yaml"
SYNTHETIC = QUICK / "dfr_swin_tiny_synthetic_instant_test.yaml"
# The style the end-to-end runs use (the published Scribbles4All style).
STYLE = "s4"


def dense_map(rng, h=64, w=64):
    """Background + a disc, a square and a stripe at random places, a few 255 pixels."""
    lab = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    cy, cx, r = rng.integers(16, h - 16), rng.integers(16, w - 16), rng.integers(8, 14)
    lab[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
    y0, x0 = rng.integers(0, h - 20), rng.integers(0, w - 20)
    lab[y0 : y0 + 18, x0 : x0 + 18] = 2
    x1 = rng.integers(0, w - 10)
    lab[:, x1 : x1 + 8] = 3
    lab[:2, :2] = 255
    return lab


def write_dense_set(root: Path, n: int = 4, seed: int = 0):
    """<root>/images/<id>.png (RGB: class colour + noise) and <root>/labels/<id>.png (dense)."""
    rng = np.random.default_rng(seed)
    colors = np.array([[30, 30, 30], [200, 40, 40], [40, 200, 40], [40, 40, 200]], np.int16)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for k in range(n):
        lab = dense_map(rng)
        img = colors[np.minimum(lab, 3)] + rng.integers(-20, 21, lab.shape + (3,))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / f"im{k}.png")
        Image.fromarray(lab, mode="L").save(root / "labels" / f"im{k}.png")
    return root


@pytest.fixture
def dense_source(tmp_path, request):
    """A dense dataset registered in Python: `<name>_train` = the dense labels."""
    root = write_dense_set(tmp_path / "dense")
    name = f"simtest_{request.node.name.replace('[', '_').replace(']', '')}_{os.getpid()}"
    register_scribble_dataset(name, root / "images", root / "labels", CLASSES, replace=True)
    return f"{name}_train"


def _mtimes(folder: Path):
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def test_simulated_labels_agree_with_the_dense_ones_and_metadata_is_copied(tmp_path, dense_source):
    root = tmp_path / "sim"
    name = register_simulated_scribbles(dense_source, style="skeleton", seed=0, root=str(root))
    assert name == f"{dense_source}_sim_skeleton"
    recs = DatasetCatalog.get(name)
    src = DatasetCatalog.get(dense_source)
    assert [r["file_name"] for r in recs] == [r["file_name"] for r in src]
    folder = root / dense_source / "skeleton_seed0"
    labeled_total = 0
    for r, s in zip(recs, src):
        assert Path(r["sem_seg_file_name"]).parent == folder
        sim = np.asarray(Image.open(r["sem_seg_file_name"]))
        dense = np.asarray(Image.open(s["sem_seg_file_name"]))
        assert sim.shape == dense.shape and sim.dtype == np.uint8
        labeled = sim != 255
        assert np.array_equal(sim[labeled], dense[labeled])  # never another class
        assert not labeled[dense == 255].any()
        assert 0 < labeled.mean() < 0.5  # scribbles, not the dense map
        labeled_total += labeled.sum()
    assert labeled_total > 0
    man = json.loads((folder / "manifest.json").read_text())
    assert man["style"] == "skeleton" and man["seed"] == 0 and man["source"] == dense_source
    assert man["num_records"] == 4
    assert man["generator_version"] == sim_module.GENERATOR_VERSION["skeleton"]
    # metadata: the source's, plus where it came from
    meta, smeta = MetadataCatalog.get(name), MetadataCatalog.get(dense_source)
    assert meta.stuff_classes == CLASSES == smeta.stuff_classes
    assert meta.stuff_colors == smeta.stuff_colors
    assert (meta.ignore_label, meta.evaluator_type, meta.background_id) == (255, "sem_seg", 0)
    assert (meta.simulated_from, meta.scribble_style, meta.scribble_seed) == (
        dense_source, "skeleton", 0)  # fmt: skip
    # files are readable by the world as any dataset (not mkdtemp's 0700)
    assert folder.stat().st_mode & 0o055 == 0o055 & ~_umask()


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_manifest_reuse_and_regeneration(tmp_path, dense_source, monkeypatch):
    root = tmp_path / "sim"
    name = register_simulated_scribbles(dense_source, style="skeleton", seed=0, root=str(root))
    DatasetCatalog.get(name)
    folder = root / dense_source / "skeleton_seed0"
    first = _mtimes(folder)
    labels0 = [np.asarray(Image.open(folder / n)) for n in sorted(first) if n != "manifest.json"]
    # a second load (same manifest) rewrites nothing
    DatasetCatalog.get(name)
    assert _mtimes(folder) == first
    # another seed: another folder, other scribbles; the first stays as it was
    register_simulated_scribbles(dense_source, style="skeleton", seed=1, root=str(root))
    recs1 = DatasetCatalog.get(name)
    assert all(Path(r["sem_seg_file_name"]).parent.name == "skeleton_seed1" for r in recs1)
    labels1 = [np.asarray(Image.open(r["sem_seg_file_name"])) for r in recs1]
    assert any(not np.array_equal(a, b) for a, b in zip(labels0, labels1))
    assert _mtimes(folder) == first
    # the same seed again: the same scribbles (deterministic), still no rewrite
    register_simulated_scribbles(dense_source, style="skeleton", seed=0, root=str(root))
    again = [np.asarray(Image.open(r["sem_seg_file_name"])) for r in DatasetCatalog.get(name)]
    assert all(np.array_equal(a, b) for a, b in zip(labels0, again))
    assert _mtimes(folder) == first
    # a new generator version: the folder is regenerated (new manifest, rewritten files)
    monkeypatch.setitem(sim_module.GENERATOR_VERSION, "skeleton", "test-bump")
    DatasetCatalog.get(name)
    man = json.loads((folder / "manifest.json").read_text())
    assert man["generator_version"] == "test-bump"
    assert all(_mtimes(folder)[n] != first[n] for n in first)
    # a damaged set (a file missing) is regenerated too
    victim = sorted(folder.glob("*.png"))[0]
    victim.unlink()
    DatasetCatalog.get(name)
    assert victim.is_file()
    # nothing temporary is left next to the sets (hidden .lock files of the generator lock)
    left = sorted(p.name for p in (root / dense_source).iterdir() if p.suffix != ".lock")
    assert left == ["skeleton_seed0", "skeleton_seed1"]
    # nothing of the generation is left in the set: no partial marker, no temporary file
    assert sorted(p.name for p in folder.iterdir() if p.suffix != ".png") == ["manifest.json"]


def _bytes(folder: Path):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_workers_give_the_same_bytes_and_a_stopped_run_resumes(tmp_path, dense_source,
                                                               monkeypatch):  # fmt: skip
    """DATASETS.DFR.SIMULATION_WORKERS: 1 and 3 worker processes write the same bytes. A run
    stopped after two maps keeps them (no manifest yet: the manifest is written last), and the
    next load simulates only the missing ones; a folder of another identity is replaced."""
    one = tmp_path / "one"
    name = register_simulated_scribbles(dense_source, style="s4", root=str(one), workers=1)
    DatasetCatalog.get(name)
    three = tmp_path / "three"
    register_simulated_scribbles(dense_source, style="s4", root=str(three), workers=3)
    DatasetCatalog.get(name)
    ref = _bytes(one / dense_source / "s4_seed0")
    assert len(ref) == 4 and _bytes(three / dense_source / "s4_seed0") == ref
    # stop after two maps
    calls = []
    real = simulated._simulate_one

    def stop_after_two(task):
        if len(calls) == 2:
            raise KeyboardInterrupt("stopped")
        calls.append(task[2])
        return real(task)

    monkeypatch.setattr(simulated, "_simulate_one", stop_after_two)
    root = tmp_path / "resumed"
    register_simulated_scribbles(dense_source, style="s4", root=str(root), workers=1)
    with pytest.raises(KeyboardInterrupt):
        DatasetCatalog.get(name)
    folder = root / dense_source / "s4_seed0"
    assert sorted(_bytes(folder)) == sorted(calls) and not (folder / "manifest.json").exists()
    assert json.loads((folder / ".partial.json").read_text())["style"] == "s4"
    kept = _mtimes(folder)
    monkeypatch.setattr(simulated, "_simulate_one", lambda task: (calls.append(task[2]),
                                                                   real(task))[1])  # fmt: skip
    DatasetCatalog.get(name)
    assert len(calls) == 4 and len(set(calls)) == 4  # the two missing ones only
    assert all(_mtimes(folder)[n] == kept[n] for n in calls[:2])
    assert _bytes(folder) == ref and (folder / "manifest.json").exists()
    assert not (folder / ".partial.json").exists()
    # a partial folder of another identity (another generator version) is not resumed
    (folder / "manifest.json").unlink()
    partial = json.loads((folder / ".partial.json").read_text() if False else "{}")
    (folder / ".partial.json").write_text(json.dumps(dict(partial, generator_version="old")))
    calls.clear()
    DatasetCatalog.get(name)
    assert len(calls) == 4 and _bytes(folder) == ref


def test_scale_gives_its_own_set_from_the_config(tmp_path, dense_source, monkeypatch):
    """DATASETS.DFR.SIMULATION_SCALE auto: the set's folder and manifest say so, its maps are
    simulated with scale="auto"; a bad value names the key."""
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "d2"))  # the config's default root
    from dfr.config import get_dfr_cfg
    from dfr.data.datasets.simulated import register_simulated_from_cfg
    from dfr.data.scribbles import image_seed, simulate_scribbles

    name = f"{dense_source}_sim_s4"
    cfg = get_dfr_cfg(opts=["DATASETS.TRAIN", f"('{name}',)", "DATASETS.DFR.SIMULATION_SCALE",
                            "auto", "DATASETS.DFR.SIMULATION_WORKERS", "2"])  # fmt: skip
    assert register_simulated_from_cfg(cfg) == [name]
    recs = DatasetCatalog.get(name)
    folder = Path(recs[0]["sem_seg_file_name"]).parent
    assert folder == tmp_path / "d2" / "simulated" / dense_source / "s4_auto_seed0"
    assert json.loads((folder / "manifest.json").read_text())["scale"] == "auto"
    assert MetadataCatalog.get(name).scribble_scale == "auto"
    for rec, src in zip(recs, DatasetCatalog.get(dense_source)):
        want = simulate_scribbles(np.asarray(Image.open(src["sem_seg_file_name"])), style="s4",
                                  seed=image_seed(0, simulated.image_key(src)), scale="auto")
        assert np.array_equal(np.asarray(Image.open(rec["sem_seg_file_name"])), want)
    cfg.DATASETS.DFR.SIMULATION_SCALE = "big"
    with pytest.raises(ValueError, match="DATASETS.DFR.SIMULATION_SCALE: scale must be"):
        register_simulated_from_cfg(cfg)


def test_style_change_gives_its_own_set(tmp_path, dense_source):
    root = tmp_path / "sim"
    a = register_simulated_scribbles(dense_source, style="skeleton", root=str(root))
    b = register_simulated_scribbles(dense_source, style="s4", root=str(root))
    assert (a, b) == (f"{dense_source}_sim_skeleton", f"{dense_source}_sim_s4")
    DatasetCatalog.get(a), DatasetCatalog.get(b)
    man = json.loads((root / dense_source / "s4_seed0" / "manifest.json").read_text())
    assert man["style"] == "s4"
    assert man["generator_version"] == sim_module.GENERATOR_VERSION["s4"]


def test_errors_name_the_dataset_and_the_styles(dense_source):
    with pytest.raises(KeyError, match="no_such_dense_set"):
        register_simulated_scribbles("no_such_dense_set", style="skeleton")
    styles = "s4, s4_cityscapes, cdsp, skeleton"
    with pytest.raises(ValueError, match=f"unknown scribble style 'bogus'.*{styles}"):
        register_simulated_scribbles(dense_source, style="bogus")
    from dfr.config import get_dfr_cfg
    from dfr.data import register_datasets_from_cfg

    def register(*opts):
        return register_datasets_from_cfg(get_dfr_cfg(SYNTHETIC, list(opts)))

    with pytest.raises(ValueError, match=r"DATASETS.TRAIN: 'nope_sim_s4': source dataset 'nope'"):
        register("DATASETS.TRAIN", "('nope_sim_s4',)")
    with pytest.raises(ValueError, match=r"DATASETS.TEST: .*unknown scribble style 'xyz'"):
        register("DATASETS.TRAIN", f"('{dense_source}',)",
                 "DATASETS.TEST", f"('{dense_source}_sim_xyz',)")  # fmt: skip
    # a known name is registered by the same call, and only once
    got = register("DATASETS.TRAIN", f"('{dense_source}_sim_cdsp',)")
    assert got == [f"{dense_source}_sim_cdsp"]
    assert register("DATASETS.TRAIN", f"('{dense_source}_sim_cdsp',)") == []
    assert MetadataCatalog.get(got[0]).scribble_style == "cdsp"
    # DATASETS.DFR.SIMULATION_SEED picks the simulated set (re-registered for another seed)
    opts = ("DATASETS.TRAIN", f"('{dense_source}_sim_cdsp',)", "DATASETS.DFR.SIMULATION_SEED")
    assert register(*opts, "3") == got
    assert MetadataCatalog.get(got[0]).scribble_seed == 3
    assert MetadataCatalog.get(got[0]).sem_seg_root.endswith("cdsp_seed3")
    assert register(*opts, "0") == got and MetadataCatalog.get(got[0]).scribble_seed == 0


def test_a_source_without_dense_labels_is_refused(tmp_path):
    name = f"simtest_nolabels_{os.getpid()}"
    DatasetCatalog.register(name, lambda: [{"file_name": "a.jpg", "height": 4, "width": 4}])
    MetadataCatalog.get(name).set(stuff_classes=["a"], ignore_label=255)
    sim = register_simulated_scribbles(name, style="skeleton", root=str(tmp_path))
    with pytest.raises(ValueError, match=rf"dataset '{name}' cannot be the source.*sem_seg_file"):
        DatasetCatalog.get(sim)


def test_a_sparse_source_is_refused_unless_opted_in(tmp_path, dense_source):
    """The density rule (>= 50 % of the pixels labeled) and its opt-in: scribbles of the
    dense set are a source only with allow_sparse_source; nothing is written when refused."""
    sim = register_simulated_scribbles(dense_source, style=STYLE, root=str(tmp_path / "a"))
    scribble_name = f"{dense_source}_scribbles"
    DatasetCatalog.register(scribble_name, lambda: DatasetCatalog.get(sim))
    MetadataCatalog.get(scribble_name).set(stuff_classes=CLASSES, ignore_label=255)
    refused = register_simulated_scribbles(scribble_name, style=STYLE, root=str(tmp_path / "b"))
    with pytest.raises(ValueError, match=rf"'{scribble_name}' cannot be the source.*not dense: "
                       r"\d+\.\d % of the pixels of 4 .*at least 50 %"):  # fmt: skip
        DatasetCatalog.get(refused)
    assert not (tmp_path / "b").exists()
    # metadata that says scribbles (simulated_from): refused when registered
    with pytest.raises(ValueError, match=r"it is a scribble set \(simulated_from="):
        register_simulated_scribbles(sim, style=STYLE, root=str(tmp_path / "c"))
    allowed = register_simulated_scribbles(scribble_name, style=STYLE, root=str(tmp_path / "b"),
                                           allow_sparse_source=True)  # fmt: skip
    recs = DatasetCatalog.get(allowed)
    sparse = np.mean([(np.asarray(Image.open(r["sem_seg_file_name"])) != 255).mean() for r in recs])
    assert len(recs) == 4 and 0 < sparse < simulated.MIN_SOURCE_LABELED


def test_per_image_seed():
    from dfr.data.scribbles.simulate import image_seed

    assert simulated.image_key({"image_id": 7, "file_name": "x/a.jpg"}) == "7"
    assert simulated.image_key({"file_name": "x/aachen_000000_000019_leftImg8bit.png"}) == (
        "aachen_000000_000019_leftImg8bit")  # fmt: skip
    assert image_seed(1, "a") != image_seed(0, "a") != image_seed(0, "b")
    assert simulated.parse_simulated_name("ade20k_sem_seg_train_sim_s4") == (
        "ade20k_sem_seg_train", "s4")  # fmt: skip
    assert simulated.parse_simulated_name("voc_2012_val_sem_seg") is None


def test_sim_name_trains_20_iterations_via_train_net_from_the_command_line(tmp_path):
    """A dense dataset known to the config (DATASETS.DFR.CUSTOM: its dataset.json, dense labels
    as the "scribbles"), `<name>_train_sim_s4` in DATASETS.TRAIN, nothing registered in
    Python: 20 iterations, evaluation on the dense set, the simulated maps on disk."""
    data = write_dense_set(tmp_path / "mydense")
    (data / "dataset.json").write_text(json.dumps({
        "name": "mydense", "image_root": "images", "scribble_root": "labels",
        "gt_root": "labels", "classes": CLASSES}))  # fmt: skip
    d2 = tmp_path / "d2root"
    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "projects/DFR/train_net.py"), "--config-file", str(INSTANT),
           "DATASETS.DFR.CUSTOM", f"('{data}',)",
           "DATASETS.TRAIN", f"('mydense_train_sim_{STYLE}',)",
           "DATASETS.TEST", "('mydense_val',)",
           "SOLVER.MAX_ITER", "20", "SOLVER.CHECKPOINT_PERIOD", "20", "TEST.EVAL_PERIOD", "20",
           "INPUT.DFR.RESIZE_SCALE", "[64, 64]", "MODEL.DEVICE", "cpu",
           "OUTPUT_DIR", str(out)]  # fmt: skip
    env = dict(os.environ, DETECTRON2_DATASETS=str(d2), OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    folder = d2 / "simulated" / "mydense_train" / f"{STYLE}_seed0"
    man = json.loads((folder / "manifest.json").read_text())
    assert (man["source"], man["style"], man["num_records"]) == ("mydense_train", STYLE, 4)
    assert len(list(folder.glob("*.png"))) == 4
    rows = [json.loads(x) for x in (out / "metrics.json").read_text().splitlines()]
    losses = {r["iteration"]: r["total_loss"] for r in rows if "total_loss" in r}
    assert max(losses) == 19 and all(np.isfinite(v) for v in losses.values())
    metrics = json.loads((out / "inference" / "mydense_val" / "sem_seg_metrics.json").read_text())
    assert 0.0 <= metrics["mIoU"] <= 100.0 and "IoU-disc" in metrics


@pytest.mark.parametrize(
    "rel,classes,crop,scale,batch,iters,mode,train",
    [("ade20k/dfr_swin_base_ade20k_sim_s4_bs16_160k.yaml", 150, (512, 512), [2048, 512], 16,
      160000, "whole", "ade20k_sem_seg_train_sim_s4"),
     ("ade20k/dfr_swin_base_ade20k_s4_bs16_160k.yaml", 150, (512, 512), [2048, 512], 16,
      160000, "whole", "ade20k_sem_seg_train_s4"),
     ("cityscapes/dfr_swin_base_cityscapes_sim_s4_bs8_80k.yaml", 19, (512, 1024), [2048, 1024],
      8, 80000, "slide", "cityscapes_fine_sem_seg_train_sim_s4"),
     ("cityscapes/dfr_swin_base_cityscapes_s4_bs8_80k.yaml", 19, (512, 1024), [2048, 1024],
      8, 80000, "slide", "cityscapes_fine_sem_seg_train_s4")],
)  # fmt: skip
def test_ade20k_and_cityscapes_configs(rel, classes, crop, scale, batch, iters, mode, train):
    """The paper's recipe with mmseg's dataset settings; the training name resolves (simulated
    names are registered from the config alone, reading nothing) and its metadata has as many
    classes as the head; evaluation on the dense val set."""
    from dfr.config import get_dfr_cfg
    from dfr.data import register_datasets_from_cfg

    cfg = get_dfr_cfg(REPO / "projects/DFR/configs" / rel)
    d = cfg.MODEL
    assert (d.SEM_SEG_HEAD.NUM_CLASSES, d.DFR.BACKGROUND_ID) == (classes, -1)
    assert (d.SWIN.SIZE, d.SWIN.WINDOW_SIZE, cfg.SOLVER.BASE_LR) == ("B", 12, pytest.approx(3e-5))
    assert (d.DFR.LAMBDA_DFR, d.DFR.LAMBDA_FEAT) == (0.01, 0.001)
    assert tuple(cfg.INPUT.CROP.SIZE) == crop and cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA == 0.75
    assert list(cfg.INPUT.DFR.RESIZE_SCALE) == scale and cfg.INPUT.DFR.TEST_RESIZE
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_ITER, cfg.TEST.MODE) == (batch, iters, mode)
    if mode == "slide":
        assert list(cfg.TEST.SLIDE.CROP_SIZE) == [1024, 1024]
        assert list(cfg.TEST.SLIDE.STRIDE) == [768, 768]
    assert cfg.DATASETS.TRAIN == (train,)
    register_datasets_from_cfg(cfg)
    for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
        assert name in DatasetCatalog.list(), name
        assert len(MetadataCatalog.get(name).stuff_classes) == classes, name
    assert cfg.DATASETS.TEST == (("ade20k_sem_seg_val",) if classes == 150
                                 else ("cityscapes_fine_sem_seg_val",))  # fmt: skip


def _write_cityscapes(img_dir: Path, gt_dir: Path, rng):
    """Two images of Detectron2's Cityscapes layout; labelTrainIds = the dense labels."""
    for city, key in (("aachen", "aachen_000000_000019"), ("bochum", "bochum_000000_000313")):
        (img_dir / city).mkdir(parents=True)
        (gt_dir / city).mkdir(parents=True)
        lab = dense_map(rng, 48, 96)
        lab[lab == 3] = 13  # car
        Image.fromarray(rng.integers(0, 255, lab.shape + (3,), dtype=np.uint8)).save(
            img_dir / city / f"{key}_leftImg8bit.png")  # fmt: skip
        Image.fromarray(lab, mode="L").save(gt_dir / city / f"{key}_gtFine_labelTrainIds.png")
        for other in ("instanceIds", "labelIds"):  # the loader checks that they exist
            Image.fromarray(lab, mode="L").save(gt_dir / city / f"{key}_gtFine_{other}.png")
        (gt_dir / city / f"{key}_gtFine_polygons.json").write_text(
            json.dumps({"imgHeight": 48, "imgWidth": 96, "objects": []}))  # fmt: skip


def _write_ade20k(img_dir: Path, gt_dir: Path, rng):
    """Two images of Detectron2's ADE20K layout (annotations_detectron2: ids 0..149, 255)."""
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    for k in range(2):
        lab = dense_map(rng, 64, 48)
        lab[lab == 2] = 149
        Image.fromarray(rng.integers(0, 255, lab.shape + (3,), dtype=np.uint8)).save(
            img_dir / f"ADE_train_0000000{k + 1}.jpg")  # fmt: skip
        Image.fromarray(lab, mode="L").save(gt_dir / f"ADE_train_0000000{k + 1}.png")


@pytest.fixture
def builtins_under():
    """move(root, source): Detectron2's builtin ADE20K / Cityscapes sets registered again
    under `root` (Detectron2 resolved $DETECTRON2_DATASETS at import); the originals come back
    after the test."""
    from detectron2.data.datasets import builtin

    saved, prefixes = {}, []

    def move(root: Path, source: str):
        prefix, register = (("cityscapes_fine_", builtin.register_all_cityscapes)
                            if source.startswith("cityscapes")
                            else ("ade20k_sem_seg_", builtin.register_all_ade20k))  # fmt: skip
        prefixes.append(prefix)
        for name in [n for n in DatasetCatalog.list() if n.startswith(prefix)]:
            saved[name] = (DatasetCatalog[name], MetadataCatalog.get(name))
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register(str(root))

    yield move
    for name in [n for n in DatasetCatalog.list() if n.startswith(tuple(prefixes))]:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    for name, (func, meta) in saved.items():
        DatasetCatalog[name], MetadataCatalog[name] = func, meta


@pytest.mark.parametrize("source", ["cityscapes_fine_sem_seg_train", "ade20k_sem_seg_train"])
def test_detectron2_builtin_sources(source, tmp_path, builtins_under):
    """Detectron2's own ADE20K / Cityscapes names as sources: their records (labelTrainIds PNGs
    for Cityscapes) are read as they are; classes, evaluator type and ignore label copied."""
    builtins_under(tmp_path / "datasets", source)
    meta = MetadataCatalog.get(source)
    img_dir, gt_dir = ((meta.image_dir, meta.gt_dir) if source.startswith("cityscapes")
                       else (meta.image_root, meta.sem_seg_root))  # fmt: skip
    assert Path(img_dir).is_relative_to(tmp_path)
    write = _write_cityscapes if source.startswith("cityscapes") else _write_ade20k
    write(Path(img_dir), Path(gt_dir), np.random.default_rng(1))
    name = register_simulated_scribbles(source, style=STYLE, root=str(tmp_path / "sim"))
    recs, src = DatasetCatalog.get(name), DatasetCatalog.get(source)
    assert len(recs) == len(src) == 2
    for r, s in zip(recs, src):
        sim, dense = np.asarray(Image.open(r["sem_seg_file_name"])), read_dense(s)
        assert sim.shape == dense.shape and (sim != 255).any()
        assert np.array_equal(sim[sim != 255], dense[sim != 255])
    m = MetadataCatalog.get(name)
    assert m.stuff_classes == meta.stuff_classes and m.ignore_label == 255
    assert m.evaluator_type == meta.evaluator_type and "gt_dir" not in m.as_dict()
    assert len(m.stuff_classes) == (19 if source.startswith("cityscapes") else 150)


def read_dense(record):
    return np.asarray(Image.open(record["sem_seg_file_name"]))


def test_pixels_that_contradict_the_dense_label_are_left_unlabeled(tmp_path, dense_source,
                                                                   monkeypatch):  # fmt: skip
    """A generator that labels a pixel with another class: the written map leaves it unlabeled,
    the manifest counts it, a warning names the file; the manifest still identifies the set."""
    real = simulated.simulate_scribbles

    def sloppy(label, **kw):
        out = real(label, **kw)
        out[2, 2] = (label[2, 2] + 1) % 4  # another class
        out[40, 40] = label[40, 40]  # a correct extra pixel stays
        return out

    monkeypatch.setattr(simulated, "simulate_scribbles", sloppy)
    name = register_simulated_scribbles(dense_source, style="skeleton", root=str(tmp_path))
    with logged(simulated.__name__) as log:
        recs = DatasetCatalog.get(name)
    warned = log.text
    for r, s in zip(recs, DatasetCatalog.get(dense_source)):
        sim, dense = np.asarray(Image.open(r["sem_seg_file_name"])), read_dense(s)
        assert sim[2, 2] == 255 and sim[40, 40] == dense[40, 40]
        assert np.array_equal(sim[sim != 255], dense[sim != 255])
    folder = tmp_path / dense_source / "skeleton_seed0"
    assert json.loads((folder / "manifest.json").read_text())["masked_pixels"] == 4
    assert "4 skeleton scribble pixels disagreed" in warned and "im0.png" in warned
    before = _mtimes(folder)
    DatasetCatalog.get(name)  # reused: the count does not make the manifest differ
    assert _mtimes(folder) == before


def test_concurrent_loads_generate_once(tmp_path, dense_source, monkeypatch):
    """Two loaders at once (as the processes of a distributed launch): one generates under the
    set's lock, the other waits and reuses it; both get the same records."""
    import threading
    import time

    calls = []
    real = simulated.simulate_scribbles

    def slow(label, **kw):
        calls.append(1)
        time.sleep(0.05)
        return real(label, **kw)

    monkeypatch.setattr(simulated, "simulate_scribbles", slow)
    got = {}

    def load(k):
        got[k] = simulated.load_simulated_scribbles(dense_source, "skeleton", 0, str(tmp_path),
                                                    workers=1)  # counted in this process

    threads = [threading.Thread(target=load, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 4  # 4 images, simulated once
    assert got[0] == got[1] and len(got[0]) == 4


def test_shortened_and_dropped_variants_of_a_simulated_set(tmp_path, dense_source, monkeypatch):
    """`<style>_len<p>` / `_drop<p>` (Fig. 3 on simulated scribbles): the base style's maps,
    shortened / with scribbles dropped by dfr.data.scribbles.transform_label_root, cached next
    to the base set with their own manifest; never a pixel the base set does not label."""
    from dfr.data.scribbles import scribble_components

    assert simulated.split_style("s4") == ("s4", None)
    assert simulated.split_style("s4_len30") == ("s4", ("length", 0.3))
    assert simulated.split_style("cdsp_drop50") == ("cdsp", ("drop", 0.5))
    assert simulated.parse_simulated_name("x_train_sim_s4_len30") == ("x_train", "s4_len30")
    with pytest.raises(ValueError, match="unknown scribble style 's5_len30'"):
        register_simulated_scribbles(dense_source, style="s5_len30")
    with pytest.raises(ValueError, match="above 100"):
        register_simulated_scribbles(dense_source, style="s4_len130")
    root = tmp_path / "sim"
    base = DatasetCatalog.get(register_simulated_scribbles(dense_source, style="s4",
                                                           root=str(root)))  # fmt: skip
    base_maps = [np.asarray(Image.open(r["sem_seg_file_name"])) for r in base]
    for style in ("s4_len30", "s4_drop50"):
        name = register_simulated_scribbles(dense_source, style=style, root=str(root))
        assert name == f"{dense_source}_sim_{style}"
        recs = DatasetCatalog.get(name)
        folder = root / dense_source / f"{style}_seed0"
        assert all(Path(r["sem_seg_file_name"]).parent == folder for r in recs)
        assert MetadataCatalog.get(name).scribble_style == style
        man = json.loads((folder / "manifest.json").read_text())
        assert (man["style"], man["base_style"]) == (style, "s4")
        assert man["generator_version"] == sim_module.GENERATOR_VERSION["s4"]
        maps = [np.asarray(Image.open(r["sem_seg_file_name"])) for r in recs]
        for m, b in zip(maps, base_maps):
            assert np.all((m == 255) | (m == b))  # a subset of the base scribbles
        if style == "s4_len30":
            assert 0 < sum((m != 255).sum() for m in maps) < 0.6 * sum(
                (b != 255).sum() for b in base_maps)  # fmt: skip
        else:
            n = [len(list(scribble_components(x))) for x in (*maps, *base_maps)]
            kept, total = sum(n[: len(maps)]), sum(n[len(maps) :])
            assert man["transform_stats"]["dropped"] == total - kept > 0
        # reused while the manifest matches; regenerated with the base set
        first = _mtimes(folder)
        DatasetCatalog.get(name)
        assert _mtimes(folder) == first
    monkeypatch.setitem(sim_module.GENERATOR_VERSION, "s4", "test-bump")
    DatasetCatalog.get(f"{dense_source}_sim_s4_len30")
    man = json.loads((root / dense_source / "s4_len30_seed0" / "manifest.json").read_text())
    assert man["generator_version"] == "test-bump"
    base_man = json.loads((root / dense_source / "s4_seed0" / "manifest.json").read_text())
    assert base_man["generator_version"] == "test-bump"
