"""Bad inputs, one parametrised case per row: each asserts the error type, that the
message names the file or the config key, and for dataset cases that no dataset file changed
(hash of every file under the dataset root before and after). The data is a miniature real
VOC tree built from tests/fixtures/real_voc.

Cases tested elsewhere: SIGTERM / Ctrl-C to the --num-gpus 2 launcher
(tests/engine/test_launch.py); "a fresh clone: every test runs" (test_tests_read_no_data_outside_
the_repository below, and the fixtures)."""
import contextlib
import io
import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REAL_VOC, REPO, load_script
from helpers import INSTANT, load_train_net, parse, tree_hash
from PIL import Image
from skimage.draw import line as sk_line

from dfr.data.datasets import VOC_TREE

TRAIN, VAL, EMPTY = "2007_000032", "2007_000033", "2008_000003"
# synthetic scribbles in the txt form for the prepare script: (class id, polyline)
TXT_SCRIBBLES = [(15, [(40, 30), (200, 120), (260, 120)]), (0, [(10, 250), (480, 250)])]


# ---------------------------------------------------------------------------- helpers
class CLIError(Exception):
    """A command-line tool's non-zero exit: ``rc`` and everything it printed."""

    def __init__(self, rc, output):
        super().__init__(f"exit status {rc}:\n{output}")
        self.rc = rc


def run_cli(main, argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse errors
            rc = e.code
    if rc:
        raise CLIError(rc, out.getvalue())
    return out.getvalue()


def prepared_voc(root: Path, empty_scribble=False) -> Path:
    """$DETECTRON2_DATASETS tree as prepare_voc_scribble.py writes it: train_aug = [TRAIN]
    (+ EMPTY, whose scribble has no labeled pixel), val = [VAL]."""
    t = {k: root / v for k, v in VOC_TREE.items() if isinstance(v, str)}
    for d in ("images", "dense", "scribble"):
        t[d].mkdir(parents=True)
    train = [TRAIN] + ([EMPTY] if empty_scribble else [])
    for iid in (TRAIN, VAL):
        shutil.copy(REAL_VOC / "jpg" / f"{iid}.jpg", t["images"])
        shutil.copy(REAL_VOC / "gt_png" / f"{iid}.png", t["dense"])
    shutil.copy(REAL_VOC / "scribble_png" / f"{TRAIN}.png", t["scribble"])
    if empty_scribble:
        shutil.copy(REAL_VOC / "jpg" / f"{EMPTY}.jpg", t["images"])
        w, h = Image.open(REAL_VOC / "jpg" / f"{EMPTY}.jpg").size
        Image.fromarray(np.full((h, w), 255, np.uint8)).save(t["scribble"] / f"{EMPTY}.png")
        Image.fromarray(np.zeros((h, w), np.uint8)).save(t["dense"] / f"{EMPTY}.png")
    splits = {k: root / v for k, v in VOC_TREE["splits"].items()}
    splits["train_aug"].parent.mkdir(parents=True, exist_ok=True)
    splits["train_aug"].write_text("".join(f"{i}\n" for i in train))
    splits["val"].write_text(f"{VAL}\n")
    return root


def voc_argv(out, *opts, eval_only=False):
    return ([*(["--eval-only"] if eval_only else []), "--config-file", INSTANT,
             "DATASETS.TRAIN", "('voc_2012_train_aug_scribble',)",
             "DATASETS.TEST", "('voc_2012_val_sem_seg',)", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", 21,
             "OUTPUT_DIR", out, *opts])  # fmt: skip


def voc_inputs(root: Path) -> list:
    """VOCdevkit + SBD + txt scribbles for prepare_voc_scribble.py: train_aug = [TRAIN],
    val = [VAL]; returns its argv."""
    voc, sbd, scr = root / "VOCdevkit/VOC2012", root / "sbd", root / "scribbles"
    for d in (voc / "JPEGImages", voc / "SegmentationClass", voc / "ImageSets/Segmentation",
              sbd, scr):  # fmt: skip
        d.mkdir(parents=True)
    for iid in (TRAIN, VAL):
        shutil.copy(REAL_VOC / "jpg" / f"{iid}.jpg", voc / "JPEGImages")
        shutil.copy(REAL_VOC / "gt_png" / f"{iid}.png", voc / "SegmentationClass")
    (voc / "ImageSets/Segmentation/train.txt").write_text(f"{TRAIN}\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text(f"{VAL}\n")
    (sbd / "train.txt").write_text("")
    (sbd / "val.txt").write_text("")
    lines = [",".join(str(v) for v in [c, *np.ravel(pts)]) for c, pts in TXT_SCRIBBLES]
    (scr / f"{TRAIN}_scribble.txt").write_text("\n".join(lines) + "\n")
    return ["--voc-root", str(voc), "--sbd-root", str(sbd), "--scribbles", str(scr),
            "--out", str(root / "out/VOC2012"),
            "--expected-counts", "train_aug=1,val=1"]  # fmt: skip


def trainer(cfg):
    from dfr.engine import Trainer

    return Trainer(cfg)


def mapper():
    from dfr.config import get_dfr_cfg
    from dfr.data import ScribbleDatasetMapper

    cfg = get_dfr_cfg(INSTANT, ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", 21])
    return ScribbleDatasetMapper(cfg, is_train=True)


def real_record(tmp, iid=TRAIN, label=None):
    img = tmp / f"{iid}.jpg"
    shutil.copy(REAL_VOC / "jpg" / f"{iid}.jpg", img)
    lab = tmp / f"{iid}.png"
    if label is None:
        shutil.copy(REAL_VOC / "scribble_png" / f"{iid}.png", lab)
    else:
        Image.fromarray(label).save(lab)
    w, h = Image.open(img).size
    return {"file_name": str(img), "sem_seg_file_name": str(lab), "height": h, "width": w,
            "image_id": iid}  # fmt: skip


class Evil:
    """Unpickling this creates a file: what a checkpoint from the internet could do."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# ---------------------------------------------------------------------------- the rows
# Each case(tmp_path, monkeypatch) returns (call, root whose files must not change, or None,
# strings the message must contain). Expected error types are in CASES.


def case_unsafe_checkpoint(tmp, mp, ext):
    from dfr.modeling.backbone.weights import load_checkpoint_file

    Evil.marker = tmp / "pwned.txt"
    path = tmp / f"weights{ext}"
    obj = {"model": {"w": torch.zeros(2)}, "extra": Evil()}
    if ext == ".pkl":
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj, path)

    def call():
        try:
            load_checkpoint_file(str(path))
        finally:
            assert not Evil.marker.exists(), "unpickling ran code from the checkpoint"

    return call, None, [str(path), "MODEL.ALLOW_UNSAFE_CHECKPOINT"]


def case_num_classes(tmp, mp):
    mp.setenv("DETECTRON2_DATASETS", str(prepared_voc(tmp / "ds")))
    cfg = load_train_net().setup(parse(voc_argv(tmp / "run", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", 60)))
    return (lambda: trainer(cfg)), tmp / "ds", ["MODEL.SEM_SEG_HEAD.NUM_CLASSES = 60",
                                                  "voc_2012_train_aug_scribble", "21 classes"]


def case_background_id(tmp, mp):
    mp.setenv("DETECTRON2_DATASETS", str(prepared_voc(tmp / "ds")))
    cfg = load_train_net().setup(parse(voc_argv(tmp / "run", "MODEL.DFR.BACKGROUND_ID", -1)))
    return (lambda: trainer(cfg)), tmp / "ds", ["MODEL.DFR.BACKGROUND_ID = -1",
                                                  "voc_2012_train_aug_scribble",
                                                  "background = class 0"]


def case_ignore_value(tmp, mp):
    mp.setenv("DETECTRON2_DATASETS", str(prepared_voc(tmp / "ds")))
    cfg = load_train_net().setup(parse(voc_argv(tmp / "run", "MODEL.SEM_SEG_HEAD.IGNORE_VALUE",
                                                0)))  # fmt: skip
    return (lambda: trainer(cfg)), tmp / "ds", ["MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 0",
                                                  "unlabeled pixels with 255"]


def case_val_gt_value(tmp, mp):
    root = prepared_voc(tmp / "ds")
    gt = root / VOC_TREE["dense"] / f"{VAL}.png"
    lab = np.asarray(Image.open(gt)).copy()
    lab[5, 7] = 42
    Image.fromarray(lab).save(gt)
    mp.setenv("DETECTRON2_DATASETS", str(root))
    tn = load_train_net()
    argv = voc_argv(tmp / "run", "MODEL.WEIGHTS", "", eval_only=True)
    return (lambda: tn.main(parse(argv))), root, [str(gt), "values [42]", "--skip-checks"]


def case_train_label_value(tmp, mp):
    root = prepared_voc(tmp / "ds")
    scr = root / VOC_TREE["scribble"] / f"{TRAIN}.png"
    lab = np.asarray(Image.open(scr)).copy()
    lab[0, 0], lab[0, 1] = 21, 254
    Image.fromarray(lab).save(scr)
    mp.setenv("DETECTRON2_DATASETS", str(root))
    cfg = load_train_net().setup(parse(voc_argv(tmp / "run")))
    return (lambda: trainer(cfg)), root, [str(scr), "values [21, 254]"]


def case_label_size_scan(tmp, mp):
    root = prepared_voc(tmp / "ds")
    gt = root / VOC_TREE["dense"] / f"{VAL}.png"
    lab = np.asarray(Image.open(gt))
    Image.fromarray(lab[:, :-3]).save(gt)
    mp.setenv("DETECTRON2_DATASETS", str(root))
    cfg = load_train_net().setup(parse(voc_argv(tmp / "run")))
    w, h = Image.open(root / VOC_TREE["images"] / f"{VAL}.jpg").size
    return (lambda: trainer(cfg)), root, [str(gt), f"label is {w - 3}x{h}", f"image is {w}x{h}"]


def case_batch_size(tmp, mp, value):
    mp.setenv("DETECTRON2_DATASETS", str(prepared_voc(tmp / "ds")))
    cfg = load_train_net().setup(parse(voc_argv(tmp / "run", "SOLVER.IMS_PER_BATCH", value)))
    if value > 0:  # 3 images over 2 processes
        mp.setattr("detectron2.utils.comm.get_world_size", lambda: 2)
    return (lambda: trainer(cfg)), tmp / "ds", [f"SOLVER.IMS_PER_BATCH = {value}",
                                                  "positive multiple"]


def case_config_value(tmp, mp, key, value, allowed):
    mp.setenv("DETECTRON2_DATASETS", str(prepared_voc(tmp / "ds")))
    cfg = load_train_net().setup(parse(voc_argv(tmp / "run", key, value)))
    return (lambda: trainer(cfg)), tmp / "ds", [f"{key} = {value}", f"expected {allowed}"]


CONFIG_VALUES = [  # key, nonsense value, the allowed range the message states
    ("MODEL.DFR.SIGMA_RGB", 0.0, "a number > 0"),
    ("MODEL.DFR.SIGMA_XY", 0.0, "a number > 0"),
    ("MODEL.DFR.SIGMA_FEAT", -50.0, "a number > 0"),
    ("MODEL.DFR.GAMMA", 1.5, "a number in (0, 1]"),
    ("MODEL.DFR.GAMMA", -0.1, "a number in (0, 1]"),
    ("MODEL.DFR.RADIUS", 0, "an integer ≥ 1"),
    ("MODEL.DFR.RADIUS", -1, "an integer ≥ 1"),
    ("MODEL.DFR.LOSS_STRIDE", 0, "an integer ≥ 1"),
    ("MODEL.DFR.LAMBDA_DFR", -0.01, "a number ≥ 0"),
    ("MODEL.DFR.LAMBDA_FEAT", -0.001, "a number ≥ 0"),
    ("SOLVER.MAX_ITER", 0, "an integer ≥ 1"),
]


def _train_net_call(tmp, mp, argv, eval_only=False):
    """train_net.py's main on the miniature VOC tree, whole: the hash covers the dataset
    and OUTPUT_DIR (tmp/run, which must not be created)."""
    mp.setenv("DETECTRON2_DATASETS", str(prepared_voc(tmp / "ds")))
    tn = load_train_net()
    return lambda: tn.main(parse(voc_argv(tmp / "run", *argv, eval_only=eval_only)))


def case_sim_from_scribble_set(tmp, mp):
    """Row 5: `<scribble set>_sim_s4`: its maps are ~3 % labeled, refused when loaded (by the
    start-up scan), before anything is simulated."""
    call = _train_net_call(tmp, mp, ["DATASETS.TRAIN", "('voc_2012_train_aug_scribble_sim_s4',)"])
    return call, tmp, ["'voc_2012_train_aug_scribble'", "voc_2012_train_aug_scribble_sim_s4",
                       "not dense", "% of the pixels", "at least 50 %",
                       "DATASETS.DFR.SIMULATE_FROM_SPARSE"]  # fmt: skip


def case_sim_from_released_scribbles(tmp, mp):
    """Row 5: a set whose metadata says scribbles (s4Pascal) is refused when registered."""
    call = _train_net_call(tmp, mp, ["DATASETS.TRAIN", "('voc_2012_train_aug_s4_sim_s4',)"])
    return call, tmp, ["DATASETS.TRAIN", "'voc_2012_train_aug_s4'", "scribble set",
                       "scribble_source='s4Pascal'", "DATASETS.DFR.SIMULATE_FROM_SPARSE"]


def case_sim_from_detection_set(tmp, mp):
    """Row 6: a detection set (records without sem_seg_file_name, thing_classes only): the
    error names that cause, not the stuff_classes of the `_sim_` name."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    name = f"badinput_detection_{tmp.name}"
    img = tmp / "det.jpg"
    shutil.copy(REAL_VOC / "jpg" / f"{TRAIN}.jpg", img)
    DatasetCatalog.register(name, lambda: [{"file_name": str(img), "image_id": 1, "height": 281,
                                            "width": 500, "annotations": []}])  # fmt: skip
    MetadataCatalog.get(name).set(thing_classes=["person"], evaluator_type="coco")
    call = _train_net_call(tmp, mp, ["DATASETS.TRAIN", f"('{name}_sim_s4',)"])
    return call, tmp, ["DATASETS.TRAIN", f"{name!r} cannot be the source", "no dense "
                       "sem_seg_file_name", "detection", str(img)]  # fmt: skip


def case_dense_set_missing(tmp, mp, config, prefix, missing, prepare):
    """Row 8: an ADE20K / Cityscapes config without the dataset: Detectron2's names,
    registered again under an empty $DETECTRON2_DATASETS (Detectron2 resolves it at import),
    guarded as dfr.data registers them."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import builtin as d2

    from dfr.data.datasets.builtin import guard_detectron2_sem_seg

    root = tmp / "d2"
    root.mkdir()
    for catalog in (DatasetCatalog, MetadataCatalog):  # both restored after the test
        mp.setattr(catalog, "data", {k: v for k, v in catalog.data.items()
                                     if not k.startswith(prefix)})  # fmt: skip
    (d2.register_all_ade20k if prefix.startswith("ade") else d2.register_all_cityscapes)(str(root))
    guard_detectron2_sem_seg()
    mp.setenv("DETECTRON2_DATASETS", str(root))
    tn = load_train_net()
    argv = ["--config-file", REPO / "projects/DFR/configs" / config, "OUTPUT_DIR", tmp / "run"]
    return (lambda: tn.main(parse(argv))), tmp, [str(root / missing), "not found", prepare]


def case_eval_memory(tmp, mp):
    """Row 3: --eval-only over a set whose largest image cannot fit TEST.MEMORY_LIMIT_MB:
    refused by the start-up scan naming it and the size that would fit, before the model."""
    call = _train_net_call(tmp, mp, ["TEST.MEMORY_LIMIT_MB", 1, "MODEL.WEIGHTS", ""],
                           eval_only=True)  # fmt: skip
    gt = tmp / "ds" / VOC_TREE["dense"] / f"{VAL}.png"
    return call, tmp, [str(gt), "'voc_2012_val_sem_seg'", "21 classes", "needs about",
                       "TEST.MEMORY_LIMIT_MB = 1", "It would fit at"]


def case_prepare_truncated_jpeg(tmp, mp):
    argv = voc_inputs(tmp / "in")
    jpg = tmp / "in/VOCdevkit/VOC2012/JPEGImages" / f"{VAL}.jpg"
    data = jpg.read_bytes()
    jpg.write_bytes(data[: len(data) * 2 // 3])  # the header is intact: only a decode fails
    main = load_script("datasets/prepare_voc_scribble.py").main
    assert "OK: 0 problem(s)" in run_cli(main, argv + ["--fast"])  # headers only: not seen
    return (lambda: run_cli(main, argv)), tmp / "in/VOCdevkit", [f"{jpg}", "unreadable image"]


def case_prepare_rerun_other_options(tmp, mp):
    argv = voc_inputs(tmp)
    main = load_script("datasets/prepare_voc_scribble.py").main
    run_cli(main, argv)
    return (lambda: run_cli(main, argv + ["--line-width", "1"])), tmp, [
        "--line-width 3.0 (now 1.0)", "--force", str(tmp / "out/VOC2012")]


def case_shorten_unknown_variant(tmp, mp):
    mp.setenv("DETECTRON2_DATASETS", str(prepared_voc(tmp / "ds")))
    main = load_script("tools/shorten_scribbles.py").main
    return (lambda: run_cli(main, ["--voc-variant", "len45"])), tmp / "ds", [
        "--voc-variant 'len45'", "len30", "drop50"]


def case_txt_negative_class(tmp, mp):
    from dfr.data import scribbles as sio

    path = tmp / f"{EMPTY}_scribble.txt"
    text = (REAL_VOC / "scribble_txt" / f"{EMPTY}_scribble.txt").read_text().splitlines()
    text[1] = "-3," + text[1].split(",", 1)[1]
    path.write_text("\n".join(text) + "\n")
    return (lambda: sio.parse_scribble_txt(path, num_classes=None)), tmp, [
        f"{path}:2", "class id -3"]


def case_corrupt_image_mapping(tmp, mp):
    rec = real_record(tmp)
    data = Path(rec["file_name"]).read_bytes()
    Path(rec["file_name"]).write_bytes(data[:2000])
    m = mapper()
    return (lambda: m(rec)), tmp, [rec["file_name"]]


def case_label_size_mapping(tmp, mp):
    lab = np.asarray(Image.open(REAL_VOC / "scribble_png" / f"{TRAIN}.png"))[:-1]
    rec = real_record(tmp, label=lab)
    m = mapper()
    return (lambda: m(rec)), tmp, [rec["sem_seg_file_name"]]


def case_label_values_mapping(tmp, mp):
    lab = np.asarray(Image.open(REAL_VOC / "scribble_png" / f"{TRAIN}.png")).copy()
    lab[10, 10] = 33
    rec = real_record(tmp, label=lab)
    m = mapper()
    return (lambda: m(rec)), tmp, [rec["sem_seg_file_name"], "33"]


def case_malformed_xml(tmp, mp):
    from dfr.data import scribbles as sio

    path = tmp / "test_2008_003147.xml"
    data = (REAL_VOC / "xml" / path.name).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return (lambda: sio.parse_scribble_xml(path, sio.context_tag_map(60))), tmp, [
        str(path), "malformed XML"]


def case_unknown_tag(tmp, mp):
    from dfr.data import scribbles as sio

    path = tmp / "test_2008_003147.xml"
    shutil.copy(REAL_VOC / "xml" / path.name, path)  # a Context file read with the VOC tags
    return (lambda: sio.parse_scribble_xml(path, sio.voc_tag_map())), tmp, [
        str(path), "unknown scribble tag 'grass'"]


def case_truncated_checkpoint(tmp, mp):
    from dfr.engine import DFRCheckpointer

    model = torch.nn.Linear(3, 2)
    path = tmp / "model_final.pth"
    torch.save({"model": model.state_dict(), "iteration": 7}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return (lambda: DFRCheckpointer(model).load(str(path))), tmp, [
        str(path), "truncated or corrupt"]


def _import(name):
    def get():
        from dfr.data import scribbles as scribble_io
        from dfr.engine import CheckpointReadError, StartupCheckError
        from dfr.modeling.backbone.weights import UnsafeCheckpointError

        return {"CheckpointReadError": CheckpointReadError, "StartupCheckError": StartupCheckError,
                "UnsafeCheckpointError": UnsafeCheckpointError,
                "ScribbleFormatError": scribble_io.ScribbleFormatError,
                "UnknownTagError": scribble_io.UnknownTagError}[name]  # fmt: skip

    return get


CASES = {
    # refused inputs: checkpoints, start-up checks, prepare scripts, scribble files
    "unsafe .pth checkpoint": (lambda t, m: case_unsafe_checkpoint(t, m, ".pth"),
                               _import("UnsafeCheckpointError"), None),
    "unsafe .pkl checkpoint": (lambda t, m: case_unsafe_checkpoint(t, m, ".pkl"),
                               _import("UnsafeCheckpointError"), None),
    "NUM_CLASSES 60 on VOC": (case_num_classes, _import("StartupCheckError"), None),
    "BACKGROUND_ID -1 on VOC": (case_background_id, _import("StartupCheckError"), None),
    "IGNORE_VALUE 0 on VOC": (case_ignore_value, _import("StartupCheckError"), None),
    "val ground-truth value 42": (case_val_gt_value, _import("StartupCheckError"), None),
    "truncated JPEG, prepare default mode": (case_prepare_truncated_jpeg, CLIError, 1),
    "prepare re-run with --line-width 1": (case_prepare_rerun_other_options, CLIError, 2),
    "IMS_PER_BATCH 0": (lambda t, m: case_batch_size(t, m, 0), _import("StartupCheckError"), None),
    "IMS_PER_BATCH -2": (lambda t, m: case_batch_size(t, m, -2), _import("StartupCheckError"),
                         None),
    "IMS_PER_BATCH 3 on 2 processes": (lambda t, m: case_batch_size(t, m, 3),
                                       _import("StartupCheckError"), None),
    "shorten --voc-variant len45": (case_shorten_unknown_variant, CLIError, 2),
    "txt scribble negative class id": (case_txt_negative_class, _import("ScribbleFormatError"),
                                       None),
    # the start-up scan's other findings and errors while mapping
    "train label values 21, 254 (scan)": (case_train_label_value, _import("StartupCheckError"),
                                          None),
    "val label size (scan)": (case_label_size_scan, _import("StartupCheckError"), None),
    "corrupt image during mapping": (case_corrupt_image_mapping, ValueError, None),
    "wrong label size during mapping": (case_label_size_mapping, ValueError, None),
    "wrong label values during mapping": (case_label_values_mapping, ValueError, None),
    "malformed XML": (case_malformed_xml, _import("ScribbleFormatError"), None),
    "unknown tag": (case_unknown_tag, _import("UnknownTagError"), None),
    "truncated checkpoint": (case_truncated_checkpoint, _import("CheckpointReadError"), None),
    # simulated scribbles: the source must be dense
    "sim_s4 of a scribble set": (case_sim_from_scribble_set, ValueError, None),
    "sim_s4 of released scribbles": (case_sim_from_released_scribbles, ValueError, None),
    "sim_s4 of a detection set": (case_sim_from_detection_set, _import("StartupCheckError"), None),
    "--eval-only, image over TEST.MEMORY_LIMIT_MB": (case_eval_memory, MemoryError, None),
    # Detectron2's dense sets missing: what is missing and how to prepare it
    "ADE20K config, no dataset": (lambda t, m: case_dense_set_missing(
        t, m, "ade20k/dfr_swin_base_ade20k_sim_s4_bs16_160k.yaml", "ade20k_sem_seg_",
        "ADEChallengeData2016/images/training", "prepare_ade20k_sem_seg.py"),
        FileNotFoundError, None),
    "Cityscapes config, no dataset": (lambda t, m: case_dense_set_missing(
        t, m, "cityscapes/dfr_swin_base_cityscapes_sim_s4_bs8_80k.yaml", "cityscapes_fine_",
        "cityscapes/leftImg8bit/train", "createTrainIdLabelImgs"), FileNotFoundError, None),
    **{f"{k} {v}": (lambda t, m, k=k, v=v, a=a: case_config_value(t, m, k, v, a),
                    _import("StartupCheckError"), None) for k, v, a in CONFIG_VALUES},
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path, monkeypatch):
    make, error, rc = CASES[name]
    error = error if isinstance(error, type) else error()
    call, root, names = make(tmp_path, monkeypatch)
    before = tree_hash(root) if root is not None else None
    with pytest.raises(error) as e:
        call()
    msg = str(e.value)
    for s in names:
        assert s in msg, (s, msg)
    if rc is not None:
        assert e.value.rc == rc, msg
    if root is not None:
        assert tree_hash(root) == before, "a dataset file changed"


def test_training_images_without_labeled_pixels_are_counted_in_a_warning(tmp_path, monkeypatch):
    from dfr.engine import run_startup_checks

    root = prepared_voc(tmp_path / "ds", empty_scribble=True)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    cfg = load_train_net().setup(parse(voc_argv(tmp_path / "run")))
    before = tree_hash(root)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("dfr.engine.checks")
    logger.addHandler(handler)
    try:
        run_startup_checks(cfg)
        run_startup_checks(cfg, scan=False)  # --skip-checks: no scan, no warning
    finally:
        logger.removeHandler(handler)
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "1 of 2 training images have no labeled pixel" in warnings[0]
    assert f"{EMPTY}.png" in warnings[0] and TRAIN not in warnings[0]
    assert tree_hash(root) == before


def test_prepare_force_rewrites_with_the_new_options_and_records_them(tmp_path):
    """The way out of the re-run row: --force rewrites every scribble with the new line
    width (1 px = Bresenham lines, computed here with skimage) and records it."""
    import json

    argv = voc_inputs(tmp_path)
    main = load_script("datasets/prepare_voc_scribble.py").main
    run_cli(main, argv)
    out = tmp_path / "out/VOC2012"
    png = out / "pascal_2012_scribble" / f"{TRAIN}.png"
    wide = np.asarray(Image.open(png))
    assert "OK: 0 problem(s)" in run_cli(main, argv + ["--line-width", "1", "--force"])
    thin = np.asarray(Image.open(png))
    h, w = thin.shape
    ref = np.full((h, w), 255, np.uint8)
    for c, pts in TXT_SCRIBBLES:
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
            r, cc = sk_line(y0, x0, y1, x1)
            ref[r, cc] = c
    np.testing.assert_array_equal(thin, ref)
    assert (wide != 255).sum() > 2.5 * (thin != 255).sum()
    manifest = json.loads((out / "prepare_manifest.json").read_text())
    assert manifest["options"]["--line-width"] == 1.0 and manifest["complete"] is True
    assert "OK: 0 problem(s)" in run_cli(main, argv + ["--line-width", "1"])  # same options


def test_tests_read_no_data_outside_the_repository():
    """A fresh clone (no ../shared beside it) runs every test: the real samples are fixtures."""
    from helpers import FIXTURES

    assert REAL_VOC.is_relative_to(REPO) and (FIXTURES / "README.md").is_file()
    for f in ("jpg/2007_000032.jpg", "gt_png/2007_000033.png", "xml/test_2008_003147.xml",
              "scribble_txt/2008_000003_scribble.txt"):  # fmt: skip
        assert (REAL_VOC / f).is_file(), f
    outside = ["shared" + "/real_voc", 'parent / "' + 'shared"']  # (not matching this file)
    for test in (REPO / "tests").rglob("test*.py"):
        text = test.read_text()
        assert not any(s in text for s in outside), test.name
