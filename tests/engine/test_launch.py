"""dfr.engine.launch: a signal to the parent of a multi-process run stops every worker, a
worker that dies stops the others, and workers die with their parent.
The processes are found through /proc (Linux)."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import INSTANT, REPO, TRAIN_NET

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _stat(pid):
    """(state, ppid) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _alive(pid):
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")  # a zombie has stopped running


def _descendants(pid):
    children = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st is not None:
                children.setdefault(st[1], []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _wait_until(cond, timeout, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def _start(argv, env, ignore_sigint=False):
    def pre():
        os.setsid()
        if ignore_sigint:  # what a shell does to a background job (`cmd &`)
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=pre)  # fmt: skip


def _cleanup(proc, pids):
    for p in [proc.pid, *pids]:
        if _alive(p):
            os.kill(p, signal.SIGKILL)
    proc.wait(timeout=30)


def test_sigterm_to_train_net_num_gpus_2_stops_every_worker_and_checkpoints(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "ds"), OMP_NUM_THREADS="1")
    argv = [sys.executable, str(TRAIN_NET), "--num-gpus", "2", "--config-file", str(INSTANT),
            "SOLVER.MAX_ITER", "100000", "SOLVER.CHECKPOINT_PERIOD", "3",
            "DATALOADER.NUM_WORKERS", "1", "OUTPUT_DIR", str(out)]  # fmt: skip
    proc = _start(argv, env)
    workers = []
    try:
        # training runs: checkpoints are being written
        started = _wait_until(lambda: len(list(out.glob("model_*.pth"))) >= 1, 120)
        assert started and proc.poll() is None, proc.stdout.read()[-3000:]
        workers = _descendants(proc.pid)
        assert len(workers) >= 2, workers  # 2 trainers (+ their data loader workers, tracker)
        os.kill(proc.pid, signal.SIGTERM)
        t0 = time.monotonic()
        assert _wait_until(lambda: not any(_alive(p) for p in workers), 15), [
            p for p in workers if _alive(p)
        ]
        stopped_after = time.monotonic() - t0
        ckpts = {p.name: p.stat().st_mtime_ns for p in out.glob("model_*.pth")}
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM
        time.sleep(2)
        assert {p.name: p.stat().st_mtime_ns for p in out.glob("model_*.pth")} == ckpts
        assert stopped_after < 15
        assert "SIGTERM: stopping the workers" in proc.stdout.read()
    finally:
        _cleanup(proc, workers)


_TOY = """
import os, sys, time
sys.path.insert(0, {repo!r} + "/projects/DFR")
from dfr.engine import launch

def main(mode, folder):
    from detectron2.utils import comm
    rank = comm.get_rank()
    open(os.path.join(folder, f"rank{{rank}}.pid"), "w").write(str(os.getpid()))
    if mode == "done":  # finished its work: at interpreter exit no process group may be left
        import atexit
        import torch.distributed as dist

        def record():
            with open(os.path.join(folder, f"rank{{rank}}.exit"), "w") as f:
                f.write(str(dist.is_initialized()))

        atexit.register(record)
        return
    if mode == "fail" and rank == 1:
        while not os.path.exists(os.path.join(folder, "rank0.pid")):
            time.sleep(0.1)
        raise RuntimeError("rank 1 failed on purpose")
    while True:
        time.sleep(0.2)

if __name__ == "__main__":
    # fork: the workers need not import torch and detectron2 again (seconds per test); "done"
    # needs spawn: a forked child leaves by os._exit, without the interpreter exit under test
    launch(main, 2, dist_url="auto", args=(sys.argv[1], sys.argv[2]), grace=3,
           start_method="spawn" if sys.argv[1] == "done" else "fork")
"""


def test_workers_that_finished_end_their_process_groups_before_interpreter_exit(tmp_path):
    """Left to interpreter exit, gloo's threads were still joinable when their objects were
    destroyed: 'terminate called without an active exception', SIGABRT, a failed launch after
    training and evaluation had finished (about one CI run in four)."""
    proc, workers = _toy(tmp_path, "done")
    try:
        assert proc.wait(timeout=60) == 0
        log = proc.stdout.read()
        assert "terminate called" not in log
        assert [(tmp_path / f"rank{r}.exit").read_text() for r in (0, 1)] == ["False"] * 2, log
    finally:
        _cleanup(proc, workers)


def _toy(tmp_path, mode, **kw):
    script = tmp_path / "toy.py"
    script.write_text(textwrap.dedent(_TOY).format(repo=str(REPO)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = _start([sys.executable, str(script), mode, str(tmp_path)], env, **kw)
    pidfiles = [tmp_path / f"rank{r}.pid" for r in (0, 1)]
    ok = _wait_until(lambda: all(f.exists() and f.read_text() for f in pidfiles), 120)
    return proc, [int(f.read_text()) for f in pidfiles] if ok else []


def test_workers_stop_on_sigint_to_a_parent_started_with_sigint_ignored(tmp_path):
    """A shell starts a background job with SIGINT ignored: torch's own PDEATHSIG=SIGINT did
    nothing there, and the parent ignored `kill -INT` too."""
    proc, workers = _toy(tmp_path, "sleep", ignore_sigint=True)
    try:
        assert len(workers) == 2 and proc.poll() is None, proc.stdout.read()[-3000:]
        os.kill(proc.pid, signal.SIGINT)
        assert _wait_until(lambda: not any(_alive(p) for p in workers), 15)
        assert proc.wait(timeout=15) == 128 + signal.SIGINT
    finally:
        _cleanup(proc, workers)


def test_a_worker_dies_with_its_parent_when_the_parent_is_killed(tmp_path):
    """SIGKILL to the parent leaves it no chance to clean up: the worker's PDEATHSIG does.
    (fork instead of spawn: the same call the launcher's workers make, in a second.)"""
    from dfr.engine.launch import _die_with_parent

    pidfile = tmp_path / "worker.pid"
    parent = os.fork()
    if parent == 0:  # the "launcher"
        try:
            me = os.getpid()
            if os.fork() == 0:  # its "worker"
                _die_with_parent(me)
                pidfile.write_text(str(os.getpid()))
                time.sleep(60)
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        assert _wait_until(lambda: pidfile.exists() and pidfile.read_text(), 10)
        worker = int(pidfile.read_text())
        assert _alive(worker)
        os.kill(parent, signal.SIGKILL)
        os.waitpid(parent, 0)
        assert _wait_until(lambda: not _alive(worker), 5)
    finally:
        for p in (parent, locals().get("worker")):
            if p and _alive(p):
                os.kill(p, signal.SIGKILL)


def test_a_worker_that_fails_stops_the_other_and_the_parent_reports_it(tmp_path):
    proc, workers = _toy(tmp_path, "fail")
    try:
        assert len(workers) == 2, proc.stdout.read()[-3000:]
        assert proc.wait(timeout=30) == 1  # grace 3 s, then SIGKILL
        assert not _alive(workers[0])
        assert "rank 1 failed on purpose" in proc.stdout.read()
    finally:
        _cleanup(proc, workers)


def test_a_finished_worker_leaves_without_interpreter_finalization(tmp_path):
    """`exit_finished_worker`: atexit handlers run and buffered output is flushed, but nothing
    of the interpreter's finalization does (there leftover gloo objects aborted the worker); a
    non-daemon thread, which a normal exit would wait for, is cut off."""
    done, late = tmp_path / "atexit.txt", tmp_path / "late.txt"
    code = f"""
import atexit, sys, threading, time
sys.path.insert(0, {str(REPO / "projects" / "DFR")!r})
from dfr.engine.launch import exit_finished_worker
atexit.register(lambda: open({str(done)!r}, "w").write("ran"))
threading.Thread(target=lambda: (time.sleep(1.0), open({str(late)!r}, "w").write("x"))).start()
print("buffered", end="")
exit_finished_worker(3)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout) == (3, "buffered"), r.stderr[-2000:]
    assert done.read_text() == "ran"
    time.sleep(1.5)
    assert not late.exists()
