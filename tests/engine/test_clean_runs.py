"""Inputs and outputs a user meets: file names with spaces in split files, annotation shapes
far outside their image, valid JSON metrics, generated dataset folders readable by others and
no temporary folders left by a killed generator; two trainings into one OUTPUT_DIR (the
second is refused, naming the first), a lock left by a killed run taken over."""
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import DatasetCatalog
from PIL import Image
from helpers import CUSTOM_CLASSES, run_importer, write_random_image

from dfr_tools.custom_example import labelme_json

from dfr.data.scribbles import Scribble, rasterize


def test_image_names_with_spaces_work_from_import_to_records(custom_importer, tmp_path, capsys):
    hw = (30, 40)
    for k, name in enumerate(("my photo", "other one", "plain")):
        write_random_image(tmp_path / "images" / f"{name}.jpg", hw, k)
        labelme_json(tmp_path / "lm" / f"{name}.json", f"{name}.jpg", hw,
                     [("animal", "line", [(3, 4 + 5 * k), (30, 4 + 5 * k)])])  # fmt: skip
        (tmp_path / "masks").mkdir(exist_ok=True)
        Image.fromarray(np.full(hw, k, np.uint8)).save(tmp_path / "masks" / f"{name}.png")
    code, out = run_importer(custom_importer, capsys, "--name", "spaced", "--images", tmp_path / "images",
                     "--labelme", tmp_path / "lm", "--gt", tmp_path / "masks",
                     "--classes", *CUSTOM_CLASSES, "--out", tmp_path / "out")  # fmt: skip
    assert code == 0, out
    assert (tmp_path / "out" / "train.txt").read_text().splitlines() == [
        "my photo", "other one", "plain"]  # fmt: skip
    train = DatasetCatalog.get("spaced_train")
    assert [Path(r["file_name"]).name for r in train] == ["my photo.jpg", "other one.jpg",
                                                          "plain.jpg"]  # fmt: skip
    assert all(Path(r["sem_seg_file_name"]).is_file() for r in train)
    val = DatasetCatalog.get("spaced_val")
    assert [Path(r["sem_seg_file_name"]).name for r in val] == [
        "my photo.png", "other one.png", "plain.png"]  # fmt: skip


def test_split_reader_of_the_prepare_scripts_keeps_spaces(tmp_path):
    from dfr_tools.prepare.common import read_ids

    (tmp_path / "s.txt").write_text("my photo.jpg\n\n  2007_000032  \nplain\n")
    assert read_ids(tmp_path / "s.txt") == ["my photo", "2007_000032", "plain"]


@pytest.mark.parametrize("shape, expect", [
    # far outside on every point: dropped (it used to become a stroke along the border)
    ([(60, -20), (90, -40), (120, 80)], "dropped"),
    # mostly outside: dropped
    ([(5, 10), (10, 10), (200, 10)], "dropped"),
    # a click 1 px past the right border: clamped, as before
    ([(5, 12), (41, 12)], "clamped"),
    # mostly inside, leaving far to the right: clipped at the border, no border stroke
    ([(2, 20), (38, 20), (38, 29), (45, 29)], "clipped"),
])  # fmt: skip
def test_warn_mode_drops_shapes_mostly_outside_and_clamps_small_overshoots(
    custom_importer, tmp_path, capsys, shape, expect
):
    h, w = 30, 40
    write_random_image(tmp_path / "images" / "a.jpg", (h, w))
    keep = ("person", "line", [(3, 3), (30, 3)])
    labelme_json(tmp_path / "lm" / "a.json", "a.jpg", (h, w),
                 [keep, ("animal", "linestrip", shape)])  # fmt: skip
    code, out = run_importer(custom_importer, capsys, "--name", f"far_{expect}", "--images",
                     tmp_path / "images", "--labelme", tmp_path / "lm", "--classes", *CUSTOM_CLASSES,
                     "--out", tmp_path / "out", "--on-problem", "warn")  # fmt: skip
    assert code == 0, out
    said = {"dropped": ": shape dropped (", "clamped": ": clamped (within 2 px",
            "clipped": ": clipped to the image"}[expect]  # fmt: skip
    assert "NOTE [outside image] x1" in out and said in out, out
    got = np.asarray(Image.open(tmp_path / "out" / "scribbles" / "a.png"))
    person = rasterize([Scribble(2, np.asarray(keep[2], float))], h, w)
    if expect == "dropped":
        np.testing.assert_array_equal(got, person)
        return
    pts = np.asarray(shape, float)
    if expect == "clamped":
        pts = np.stack([np.clip(pts[:, 0], 0, w), np.clip(pts[:, 1], 0, h)], 1)
        ref = [Scribble(1, pts)]
    else:  # the last segment leaves through the right edge x = 40
        ref = [Scribble(1, np.asarray([(2, 20), (38, 20), (38, 29), (40, 29)], float))]
    expected = rasterize([Scribble(2, np.asarray(keep[2], float)), *ref], h, w)
    np.testing.assert_array_equal(got, expected)


def test_sem_seg_metrics_json_is_valid_json_with_null_for_undefined(tmp_path):
    """A class absent from the ground truth and never predicted has IoU NaN: Python's json
    wrote a bare NaN, which JSON readers reject."""
    from dfr.utils import json_safe

    res = {"mIoU": 50.0, "IoU-cat": float("nan"), "IoU-dog": 100.0, "ACC": [float("inf"), 1.0]}
    text = json.dumps(json_safe(res), allow_nan=False)
    assert json.loads(text) == {"mIoU": 50.0, "IoU-cat": None, "IoU-dog": 100.0,
                                "ACC": [None, 1.0]}  # fmt: skip


def test_trainer_test_writes_strict_json_when_an_iou_is_undefined(tmp_path):
    from detectron2.evaluation import DatasetEvaluator
    from helpers import register_tiny, setup_cfg

    from dfr.engine import Trainer

    class AbsentClass(DatasetEvaluator):  # SemSegEvaluator's result when a class is absent
        _output_dir = str(tmp_path / "eval")

        def evaluate(self):
            return {"sem_seg": {"mIoU": 40.0, "fwIoU": 60.0, "mACC": 50.0, "pACC": 70.0,
                                "IoU-a": 80.0, "IoU-b": float("nan")}}

    cfg = setup_cfg(tmp_path / "out", register_tiny(tmp_path / "ds"))
    Trainer.test(cfg, Trainer.build_model(cfg).eval(), [AbsentClass()])
    text = (tmp_path / "eval" / "sem_seg_metrics.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in {text}")) == {
        "mIoU": 40.0, "fwIoU": 60.0, "mACC": 50.0, "pACC": 70.0, "IoU-a": 80.0,
        "IoU-b": None}  # fmt: skip


def test_generated_synthetic_folders_are_readable_and_stale_temps_are_removed(tmp_path):
    from dfr.data.synthetic import SyntheticSpec, ensure_synthetic

    spec = SyntheticSpec(dirname="perm_tiny", num_train=2, num_val=1, min_size=32,
                         max_size=32, seed=1)  # fmt: skip
    stale = tmp_path / ".perm_tiny.tmp-killed"  # what a kill during generation left
    (stale / "images").mkdir(parents=True)
    old = os.umask(0o022)
    try:
        out = Path(ensure_synthetic(str(tmp_path), spec))
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert not stale.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".perm_tiny.tmp-")] == []


def test_docs_list_the_allowed_range_of_every_dfr_key():
    from helpers import REPO

    from dfr.config import get_dfr_cfg
    from dfr.engine.checks import ranges_markdown

    table = ranges_markdown()
    page = (REPO / "docs" / "GETTING_STARTED.md").read_text()
    assert table in page, "docs/GETTING_STARTED.md: regenerate the table with checks.ranges_markdown()"
    for key in get_dfr_cfg().MODEL.DFR:
        assert f"| `MODEL.DFR.{key}` |" in table, key


def test_demo_refuses_a_nonsense_model_key_before_building_anything(tmp_path):
    from helpers import CONFIGS, load_script

    from dfr.engine import StartupCheckError

    write_random_image(tmp_path / "in" / "a.jpg", (20, 24))
    demo = load_script("projects/DFR/demo/demo.py", "dfr_demo_checks")
    with pytest.raises(StartupCheckError, match=r"MODEL.DFR.GAMMA = 1.5: expected a number in"):
        demo.main(["--config-file", str(CONFIGS / "quick_schedules/"
                                        "dfr_swin_tiny_synthetic_instant_test.yaml"),
                   "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                   "--opts", "MODEL.DFR.GAMMA", "1.5"])  # fmt: skip
    assert not (tmp_path / "out").exists()


_TRAINING = """
import os, sys, time
sys.path.insert(0, {tests!r})
from helpers import load_train_net, parse, register_tiny
register_tiny({root!r}, {prefix!r})
import torch
torch.set_num_threads(1)
from dfr.engine import Trainer

wait_for = os.environ.get("WAIT_FOR")
if wait_for:  # hold the run at the start of training (after its checks) until the file exists
    train = Trainer.train

    def held(self):
        open(wait_for + ".ready", "w").close()
        while not os.path.exists(wait_for):
            time.sleep(0.05)
        return train(self)

    Trainer.train = held
load_train_net().main(parse(sys.argv[1:]))
"""


def _training(tmp_path, out, **env):
    """A train_net.py process training the tiny set into `out` (4 iterations)."""
    from helpers import DETERMINISTIC_OPTS, INSTANT, REPO, dataset_opts

    root, prefix = tmp_path / "ds", "concurrent"
    script = tmp_path / "training.py"
    script.write_text(textwrap.dedent(_TRAINING).format(tests=str(REPO / "tests"), root=str(root),
                                                        prefix=prefix))  # fmt: skip
    argv = ["--config-file", str(INSTANT), *DETERMINISTIC_OPTS, *dataset_opts(prefix),
            "SOLVER.MAX_ITER", "4", "OUTPUT_DIR", str(out)]  # fmt: skip
    return subprocess.Popen([sys.executable, str(script), *argv], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, OMP_NUM_THREADS="1", **env))  # fmt: skip


def _lock_of(out: Path):
    try:
        return json.loads((out / "run.lock").read_text())
    except (OSError, ValueError):
        return None


def test_a_second_training_into_the_same_output_dir_is_refused_naming_the_first(tmp_path):
    """Two trainings into one OUTPUT_DIR used to run together: both wrote
    model_*.partial.pth under one name (one died with FileNotFoundError), mixed their
    checkpoints, interleaved metrics.json / log.txt, and last_checkpoint named the other's
    file. The second is refused at start naming the folder and the first run's process, and
    writes nothing; the first finishes as if alone."""
    from helpers import tree_hash

    out = tmp_path / "run"
    go = tmp_path / "go"
    first = _training(tmp_path, out, WAIT_FOR=str(go))
    try:
        deadline = time.monotonic() + 240
        while not Path(f"{go}.ready").exists():  # the first run is at its first iteration
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the first training never started"
            time.sleep(0.1)
        assert _lock_of(out)["pid"] == first.pid
        assert _lock_of(out)["host"] == socket.gethostname()
        before = tree_hash(out)
        second = _training(tmp_path, out)
        log = second.communicate(timeout=240)[0]
        assert second.returncode == 1, log[-3000:]
        last = log.strip().splitlines()[-1]
        assert last.startswith("dfr.engine.rundir.OutputDirBusyError: OUTPUT_DIR "), last
        for s in (str(out), f"pid {first.pid} on host {socket.gethostname()}"):
            assert s in last, (s, last)
        assert tree_hash(out) == before  # the second run wrote nothing
        go.touch()
        log = first.communicate(timeout=240)[0]
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, log[-3000:]
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    names = sorted(p.name for p in out.iterdir())
    assert "run.lock" not in names and not [n for n in names if "partial" in n], names
    iters = [json.loads(line)["iteration"] for line in (out / "metrics.json").read_text().splitlines()]
    assert iters == sorted(iters) and len(iters) == len(set(iters)), iters  # one run's rows
    assert (out / "log.txt").read_text().count("Starting training from iteration 0") == 1


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(tmp_path):
    from helpers import DETERMINISTIC_OPTS, INSTANT, dataset_opts, load_train_net, logged, parse
    from helpers import register_tiny

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.lock").write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(),
                                              "started": "2024-01-01T00:00:00",
                                              "argv": ["train_net.py"]}))  # fmt: skip
    prefix = register_tiny(tmp_path / "ds")
    argv = ["--config-file", str(INSTANT), *DETERMINISTIC_OPTS, *dataset_opts(prefix),
            "SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(out)]  # fmt: skip
    with logged("dfr") as log:
        load_train_net().main(parse(argv))
    took = [m for m in log.messages if "taking over" in m]
    assert len(took) == 1 and f"pid {gone.pid} on host {socket.gethostname()}" in took[0], took
    assert (out / "model_final.pth").is_file() and not (out / "run.lock").exists()
    text = (out / "log.txt").read_text()
    assert "taking over" in text  # in the run's log too
    # the next run of the same process logs to its own folder only
    argv[argv.index("OUTPUT_DIR") + 1] = str(tmp_path / "next")
    load_train_net().main(parse(argv))
    assert (out / "log.txt").read_text() == text
    assert str(tmp_path / "next") in (tmp_path / "next" / "log.txt").read_text()


def test_a_refused_run_removes_the_folder_it_created(tmp_path):
    """A new OUTPUT_DIR refused by the start-up checks is not left behind (empty, or with a
    lock file): nothing is written before the checks pass."""
    from helpers import DETERMINISTIC_OPTS, INSTANT, dataset_opts, load_train_net, parse
    from helpers import register_tiny

    from dfr.engine import StartupCheckError

    prefix = register_tiny(tmp_path / "ds")
    out = tmp_path / "new" / "run"
    argv = ["--config-file", str(INSTANT), *DETERMINISTIC_OPTS, *dataset_opts(prefix),
            "SOLVER.BASE_LR", "-1.0", "OUTPUT_DIR", str(out)]  # fmt: skip
    with pytest.raises(StartupCheckError, match="SOLVER.BASE_LR = -1.0"):
        load_train_net().main(parse(argv))
    assert not (tmp_path / "new").exists()
