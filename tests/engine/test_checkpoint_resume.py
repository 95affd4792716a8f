"""DFRCheckpointer: `last_checkpoint` never names an incomplete file (a missing, empty or
dangling tag falls back to the newest complete model_*.pth with a WARNING); a checkpoint of
another number of classes is an error unless MODEL.SKIP_MISMATCHED_WEIGHTS; every entry point
builds the checkpointer from the config; a full disk during a save is named as such; a run
refused by its checks or its checkpoint leaves an existing OUTPUT_DIR as it was."""
import errno
import io
import os
import shutil
import traceback

import pytest
import torch
from helpers import CONFIGS, REPO, TINY_MODEL_OPTS, logged, tiny_model


@pytest.fixture
def dfr_log():
    with logged("dfr.engine.checkpoint") as log:
        yield log


def _linear(seed):
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2)


def _saved(tmp_path, *steps):
    from dfr.engine import DFRCheckpointer

    for s in steps:
        DFRCheckpointer(_linear(s), save_dir=str(tmp_path)).save(f"model_{s:07d}")
    return tmp_path


def test_a_kill_between_rename_and_tag_leaves_a_tag_naming_a_complete_file(tmp_path, monkeypatch):
    """The write goes to model_X.partial.pth, is renamed, then tagged: no moment exists at
    which `last_checkpoint` names the .partial file (it used to, until the re-tag)."""
    from dfr.engine import DFRCheckpointer

    _saved(tmp_path, 1)
    ck = DFRCheckpointer(_linear(3), save_dir=str(tmp_path))
    real_replace = os.replace

    def replace_then_die(src, dst):
        real_replace(src, dst)
        assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
        raise KeyboardInterrupt  # killed after the rename, before the tag

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        ck.save("model_0000003")
    monkeypatch.setattr(os, "replace", real_replace)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    assert DFRCheckpointer(_linear(0), save_dir=str(tmp_path)).get_checkpoint_file() == str(
        tmp_path / "model_0000001.pth")  # fmt: skip


@pytest.mark.parametrize("tag", [None, "", "model_0000005.partial.pth", "model_0000009.pth"])
def test_missing_empty_or_dangling_tag_resumes_from_the_newest_complete_file(
    tmp_path, dfr_log, tag
):
    from dfr.engine import DFRCheckpointer

    _saved(tmp_path, 2, 4)
    (tmp_path / "model_0000005.partial.pth").write_bytes(b"PK\x03\x04 half")  # a killed write
    (tmp_path / "last_checkpoint").unlink()
    if tag is not None:
        (tmp_path / "last_checkpoint").write_text(tag)
    model = _linear(0)
    ck = DFRCheckpointer(model, save_dir=str(tmp_path))
    assert ck.has_checkpoint()
    ck.resume_or_load("", resume=True)
    assert torch.equal(model.weight, _linear(4).weight)  # model_0000004, not 2, not the partial
    assert "model_0000004.pth" in dfr_log.text
    assert dfr_log.text.count("using the newest complete checkpoint") == 1  # resolved once
    assert ("is missing" if tag is None else "is empty" if tag == "" else repr(tag)) in dfr_log.text


def test_a_valid_tag_is_followed_without_warning(tmp_path, dfr_log):
    from dfr.engine import DFRCheckpointer

    _saved(tmp_path, 2, 4)
    (tmp_path / "last_checkpoint").write_text("model_0000002.pth")  # an older one, on purpose
    model = _linear(0)
    DFRCheckpointer(model, save_dir=str(tmp_path)).resume_or_load("", resume=True)
    assert torch.equal(model.weight, _linear(2).weight)
    assert "last_checkpoint" not in dfr_log.text


def test_no_checkpoint_at_all_loads_model_weights(tmp_path):
    from dfr.engine import DFRCheckpointer

    ck = DFRCheckpointer(_linear(0), save_dir=str(tmp_path))
    assert not ck.has_checkpoint() and ck.get_checkpoint_file() == ""


def _checkpoint_of_classes(tmp_path, num_classes):
    model = tiny_model("MODEL.SEM_SEG_HEAD.NUM_CLASSES", num_classes, seed=5)
    path = tmp_path / f"model_{num_classes}cls.pth"
    torch.save({"model": model.state_dict(), "iteration": 10}, path)
    return path, model


def _cfg(*opts):
    from dfr.config import get_dfr_cfg

    return get_dfr_cfg(CONFIGS / "Base-DFR.yaml", TINY_MODEL_OPTS + list(opts))


def test_a_checkpoint_of_another_number_of_classes_is_refused_naming_keys_and_counts(tmp_path):
    from dfr.engine import CheckpointMismatchError, DFRCheckpointer

    path, _ = _checkpoint_of_classes(tmp_path, 3)
    cfg = _cfg()  # 5 classes
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as e:
        DFRCheckpointer.from_config(cfg, model, save_dir="").load(str(path))
    msg = str(e.value)
    for s in (str(path), "trained for 3 classes", "predicts 5", "sem_seg_head.predictor.weight",
              "aux_head.predictor.weight", "MODEL.SKIP_MISMATCHED_WEIGHTS True"):  # fmt: skip
        assert s in msg, (s, msg)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_finetune_other_classes_loads_everything_but_the_classifiers(tmp_path):
    from dfr.engine import DFRCheckpointer

    path, src = _checkpoint_of_classes(tmp_path, 3)
    cfg = _cfg("MODEL.SKIP_MISMATCHED_WEIGHTS", True)
    model = tiny_model(seed=9)
    fresh = model.state_dict()["sem_seg_head.predictor.weight"].clone()
    DFRCheckpointer.from_config(cfg, model, save_dir="").load(str(path))
    own, theirs = model.state_dict(), src.state_dict()
    same = [k for k, v in theirs.items() if not k.endswith(".predictor.weight")
            and not k.endswith(".predictor.bias")]  # fmt: skip
    assert len(same) > 50 and all(torch.equal(own[k], theirs[k]) for k in same)
    assert torch.equal(own["sem_seg_head.predictor.weight"], fresh)  # kept its new init


def test_eval_only_with_a_checkpoint_of_other_classes_fails_before_evaluating(tmp_path):
    """train_net.py --eval-only used to warn "Skip loading parameter" and evaluate a random
    classifier (exit 0)."""
    from helpers import DETERMINISTIC_OPTS, INSTANT, dataset_opts, load_train_net, parse
    from helpers import register_tiny

    from dfr.engine import CheckpointMismatchError

    path, _ = _checkpoint_of_classes(tmp_path, 3)
    prefix = register_tiny(tmp_path / "ds")

    argv = ["--eval-only", "--config-file", INSTANT, *DETERMINISTIC_OPTS, *dataset_opts(prefix),
            "MODEL.WEIGHTS", str(path), "OUTPUT_DIR", str(tmp_path / "out")]  # fmt: skip
    with pytest.raises(CheckpointMismatchError, match="trained for 3 classes, this model predicts 4"):
        load_train_net().main(parse(argv))
    assert not (tmp_path / "out" / "inference").exists()


def test_every_entry_point_builds_the_checkpointer_from_the_config():
    """MODEL.ALLOW_UNSAFE_CHECKPOINT / MODEL.SKIP_MISMATCHED_WEIGHTS reach every loader: no
    entry point constructs DFRCheckpointer by hand."""
    files = [REPO / "projects/DFR/train_net.py", REPO / "projects/DFR/demo/demo.py",
             *sorted((REPO / "tools").glob("*.py")),
             *sorted((REPO / "projects/DFR/dfr").rglob("*.py"))]  # fmt: skip
    by_hand = [str(f.relative_to(REPO)) for f in files
               if "DFRCheckpointer(" in f.read_text() and f.name != "checkpoint.py"]  # fmt: skip
    assert by_hand == []


def test_demo_reports_unreadable_images_by_name_writes_the_rest_and_exits_1(tmp_path):
    """A truncated JPEG used to abort the whole run; other files were skipped silently."""
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem in ("good1", "good2", "bad"):
        Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(
            folder / f"{stem}.jpg", quality=95)  # fmt: skip
    data = (folder / "bad.jpg").read_bytes()
    (folder / "bad.jpg").write_bytes(data[: len(data) // 2])  # header intact, decode fails
    (folder / "notes.txt").write_text("not an image")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "anim.gif")
    instant = CONFIGS / "quick_schedules/dfr_swin_tiny_synthetic_instant_test.yaml"
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "projects/DFR/demo/demo.py"),
                           "--config-file", str(instant), "--input", str(folder),
                           "--output", str(out)], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log
    assert f"{folder / 'bad.jpg'}: cannot read the image" in log
    assert "anim.gif" in log and "notes.txt" in log  # reported, not silently skipped
    assert sorted(p.name for p in out.iterdir()) == [
        "good1_label.png", "good1_overlay.png", "good2_label.png", "good2_overlay.png"]


class _FullDisk(io.RawIOBase):
    """A file that takes `room` bytes, then fails as a full disk does (ENOSPC)."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def writable(self):
        return True

    def write(self, b):
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(b)
        return self.f.write(b)


def _disk_fills_up(monkeypatch, saves_that_fit=0, room=100):
    """torch.save: the first `saves_that_fit` calls write normally, the later ones hit a full
    disk after `room` bytes (torch then raises its zip writer's "unexpected pos" RuntimeError,
    with the OSError only in the chain, as on a real full disk)."""
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) > saves_that_fit:
            f = _FullDisk(f, room)
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_full_disk_during_a_save_is_named_with_the_file_and_what_was_kept(tmp_path, monkeypatch):
    from dfr.engine import CheckpointWriteError, DFRCheckpointer

    _saved(tmp_path, 1)
    _disk_fills_up(monkeypatch)
    with pytest.raises(CheckpointWriteError) as e:
        DFRCheckpointer(_linear(2), save_dir=str(tmp_path)).save("model_0000002")
    last = traceback.format_exception_only(e.value)[-1]  # what a user reads last
    for s in ("no space left on the device of OUTPUT_DIR",
              str(tmp_path), str(tmp_path / "model_0000002.pth"), "partial file was removed",
              "last_checkpoint still names model_0000001.pth", "--resume"):  # fmt: skip
        assert s in last, (s, last)
    assert e.value.errno == errno.ENOSPC and "unexpected pos" in str(e.value.__cause__)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000001.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"


def test_a_full_disk_during_training_stops_it_naming_the_cause(tmp_path, monkeypatch):
    """The training loop's periodic checkpoint (Detectron2's hook) re-raises the same error."""
    from helpers import register_tiny, setup_cfg

    from dfr.engine import CheckpointWriteError, Trainer

    cfg = setup_cfg(tmp_path / "run", register_tiny(tmp_path / "ds"), "SOLVER.MAX_ITER", 6,
                    "SOLVER.CHECKPOINT_PERIOD", 2)  # fmt: skip
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    _disk_fills_up(monkeypatch, saves_that_fit=1)  # model_0000001 fits, model_0000003 not
    with pytest.raises(CheckpointWriteError, match=r"model_0000003.pth: no space left on the "
                       r"device of OUTPUT_DIR .*last_checkpoint still names model_0000001.pth"):
        trainer.train()
    assert (tmp_path / "run" / "last_checkpoint").read_text() == "model_0000001.pth"
    assert not list((tmp_path / "run").glob("*partial*"))


def test_temporary_checkpoint_names_are_unique_per_process(tmp_path, monkeypatch):
    import socket

    from fvcore.common.checkpoint import Checkpointer

    from dfr.engine import DFRCheckpointer

    names, real = [], Checkpointer.save
    monkeypatch.setattr(Checkpointer, "save", lambda self, name, **kw: (
        names.append(name), real(self, name, **kw))[1])  # fmt: skip
    DFRCheckpointer(_linear(1), save_dir=str(tmp_path)).save("model_0000001")
    assert names == [f"model_0000001.partial-{socket.gethostname()}-{os.getpid()}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000001.pth"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny training (config.yaml, model_final.pth, log.txt, metrics.json) and
    the argv builder of its command line."""
    from helpers import DETERMINISTIC_OPTS, INSTANT, dataset_opts, load_train_net, parse
    from helpers import register_tiny

    root = tmp_path_factory.mktemp("finished")
    prefix = register_tiny(root / "ds")

    def argv(out, *opts, flags=()):
        return [*flags, "--config-file", str(INSTANT), *DETERMINISTIC_OPTS,
                *dataset_opts(prefix), "OUTPUT_DIR", str(out), *map(str, opts)]  # fmt: skip

    load_train_net().main(parse(argv(root / "run", "SOLVER.MAX_ITER", 2)))
    return root / "run", argv


@pytest.mark.parametrize("case", ["start-up check", "--resume: another head",
                                  "--eval-only: another head"])  # fmt: skip
def test_a_refused_run_changes_nothing_in_an_existing_output_dir(finished_run, tmp_path, case):
    """The folder of a finished run, then a run into it that its checks refuse: config.yaml
    (which describes model_final.pth), log.txt, metrics.json and every other file stay as
    they were, and no lock is left (config.yaml used to be rewritten first)."""
    from helpers import load_train_net, parse
    from helpers import tree_hash

    from dfr.engine import CheckpointMismatchError, StartupCheckError

    run, argv = finished_run
    out = tmp_path / "run"
    shutil.copytree(run, out)
    other_head = ["MODEL.UPERNET.CHANNELS", 8]
    args, error, said = {
        "start-up check": (argv(out, "SOLVER.MAX_ITER", 0), StartupCheckError,
                           "SOLVER.MAX_ITER = 0"),
        "--resume: another head": (argv(out, *other_head, flags=["--resume"]),
                                   CheckpointMismatchError, f"{out / 'model_final.pth'}"),
        "--eval-only: another head": (argv(out, *other_head, "MODEL.WEIGHTS",
                                           out / "model_final.pth", flags=["--eval-only"]),
                                      CheckpointMismatchError, f"{out / 'model_final.pth'}"),
    }[case]  # fmt: skip
    before = tree_hash(out)
    assert {"config.yaml", "model_final.pth", "log.txt", "metrics.json"} <= set(before)
    with pytest.raises(error) as e:
        load_train_net().main(parse(args))
    assert said in str(e.value)
    assert tree_hash(out) == before
