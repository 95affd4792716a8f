"""tools/submit_slurm.py: launch options derived from the job environment, requeue with --resume
on preemption, and real runs with submitit's LocalExecutor (2 tasks = 2 "nodes" on CPU, gloo).
Skipped only when submitit is not installed (it is in requirements.txt)."""
import os
import signal
import textwrap
import time
from types import SimpleNamespace

import pytest

submitit = pytest.importorskip("submitit")

from helpers import REPO, load_script  # noqa: E402

INSTANT = REPO / "projects/DFR/configs/quick_schedules/dfr_swin_tiny_synthetic_instant_test.yaml"


def _load_tool():
    return load_script("tools/submit_slurm.py")


@pytest.fixture(scope="module")
def tool():
    return _load_tool()


def _env(**kw):
    base = dict(num_tasks=1, global_rank=0, num_nodes=1, hostnames=["node-a"], job_id="4242")
    return SimpleNamespace(**{**base, **kw})


def _opt(argv, flag):
    return argv[argv.index(flag) + 1]


def test_launch_options_come_from_the_job_environment(tool):
    job = tool.TrainNetJob(["--config-file", "c.yaml", "OUTPUT_DIR", "out"], gpus_per_task=8)
    env = _env(num_tasks=4, global_rank=2, num_nodes=4, hostnames=["gpu-17", "gpu-18", "gpu-3",
                                                                    "gpu-4"])  # fmt: skip
    cmd = job.command(env)
    assert cmd[1] == str(tool.TRAIN_NET)
    assert _opt(cmd, "--num-gpus") == "8"
    assert _opt(cmd, "--num-machines") == "4"
    assert _opt(cmd, "--machine-rank") == "2"
    port = tool.port_for_job("4242")
    assert _opt(cmd, "--dist-url") == f"tcp://gpu-17:{port}"  # the first node of the job
    assert cmd[-4:] == ["--config-file", "c.yaml", "OUTPUT_DIR", "out"]
    # every node of the job (and a requeued run: same id) meets at the same port
    assert tool.port_for_job("4242") == port and 20000 <= port < 40000
    assert tool.port_for_job("4243") != port
    # one node: localhost; an explicit --port wins
    one = tool.TrainNetJob(["--config-file", "c.yaml"], gpus_per_task=2, port=29500)
    assert _opt(one.command(_env()), "--dist-url") == "tcp://127.0.0.1:29500"


def test_checkpoint_requeues_the_same_command_with_resume(tool):
    job = tool.TrainNetJob(["--config-file", "c.yaml", "SOLVER.MAX_ITER", "10"], 4, cwd="/w")
    delayed = job.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    again = delayed.function
    assert again.train_args == ["--resume", "--config-file", "c.yaml", "SOLVER.MAX_ITER", "10"]
    assert (again.gpus_per_task, again.cwd, again.script) == (4, "/w", job.script)
    # a second preemption does not add a second --resume
    assert again.checkpoint().function.train_args == again.train_args


def test_command_line_checks(tool, capsys):
    with pytest.raises(SystemExit):
        tool.parse_args(["--nodes", "2", "SOLVER.MAX_ITER", "10"])
    assert "needs --config-file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args(["--config-file", "c.yaml", "--num-machines", "2"])
    assert "--num-machines is set from the job" in capsys.readouterr().err
    args, rest = tool.parse_args(["--nodes", "2", "--gpus-per-node", "4", "--partition", "p",
                                  "--config-file", "c.yaml", "--resume", "OUTPUT_DIR", "o"])
    assert (args.nodes, args.gpus_per_node, args.partition) == (2, 4, "p")
    assert rest == ["--config-file", "c.yaml", "--resume", "OUTPUT_DIR", "o"]


# A stand-in for train_net.py (no torch import: the requeue test takes seconds). Rank 0 writes
# rank0.stopped when it is stopped; rank 1 then exits with an error, as a gloo peer does.
STUB = textwrap.dedent(
    """
    import os, signal, sys, time
    argv = sys.argv[1:]
    rank = argv[argv.index("--machine-rank") + 1]
    out = os.environ["STUB_OUT"]
    with open(os.path.join(out, "calls.txt"), "a") as f:
        f.write(" ".join(argv) + "\\n")
    if "--resume" in argv:
        sys.exit(0)
    stopped = os.path.join(out, "rank0.stopped")
    if rank == "0":
        signal.signal(signal.SIGTERM, lambda *a: (open(stopped, "w").close(), sys.exit(143)))
        open(os.path.join(out, "rank0.running"), "w").close()
        time.sleep(120)
    else:
        open(os.path.join(out, "rank1.running"), "w").close()
        while not os.path.exists(stopped):
            time.sleep(0.05)
        sys.exit(1)
    """
)


def _wait_for(cond, timeout, what):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _task_pids(job, n):
    pids = []
    for k in range(n):
        text = job.task(k).stdout() or ""
        pids += [int(line.split(" pid ")[1].split(":")[0]) for line in text.splitlines()
                 if line.startswith("[submit_slurm]") and " pid " in line]  # fmt: skip
    return pids


def test_preempted_job_is_requeued_and_resumes(tool, tmp_path, monkeypatch):
    stub = tmp_path / "stub_train_net.py"
    stub.write_text(STUB)
    monkeypatch.setenv("STUB_OUT", str(tmp_path))
    ex = submitit.LocalExecutor(folder=tmp_path / "jobs" / "%j", max_num_timeout=2)
    ex.update_parameters(tasks_per_node=2, timeout_min=2, gpus_per_node=0)  # a hang fails fast
    job = tool.submit(ex, tool.TrainNetJob(["--config-file", "c.yaml"], 1, script=stub))
    try:
        running = [tmp_path / f"rank{k}.running" for k in range(2)]
        _wait_for(lambda: all(p.exists() for p in running) and len(_task_pids(job, 2)) == 2,
                  60, "both tasks to start")  # fmt: skip
        for pid in _task_pids(job, 2):  # SLURM signals every task of the job
            os.kill(pid, signal.SIGUSR2)
        assert job.results() == [0, 0]
    finally:
        job.cancel()
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    first, resumed = calls[:2], calls[2:]
    assert len(resumed) == 2, calls
    assert all("--resume" not in c for c in first) and all("--resume" in c for c in resumed)
    assert sorted(_opt(c.split(), "--machine-rank") for c in resumed) == ["0", "1"]
    log0 = job.task(0).stdout()
    assert "preempted: requeued with --resume" in log0
    assert "Requeued job" in (job.task(0).stderr() or "") + log0


def test_two_task_local_job_trains_over_gloo(tool, tmp_path, monkeypatch):
    """The real train_net.py: 2 tasks x 1 CPU process, 2 iterations, no evaluation."""
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    out = tmp_path / "run"
    t0 = time.time()
    job = tool.main([
        "--local", "--nodes", "2", "--gpus-per-node", "1", "--timeout-min", "5",
        "--job-dir", str(tmp_path / "jobs" / "%j"),
        "--config-file", str(INSTANT), "SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "100",
        "DATASETS.TEST", "()", "DATASETS.TRAIN", "('synthetic_tiny_scribble_train',)",
        "OUTPUT_DIR", str(out),
    ])  # fmt: skip
    try:
        assert job.results() == [0, 0]
    finally:
        job.cancel()
    print(f"2-task local job: {time.time() - t0:.1f} s")
    cmds = [line for k in range(2) for line in job.task(k).stdout().splitlines()
            if line.startswith("[submit_slurm]")]  # fmt: skip
    assert sorted(_opt(c.split(), "--machine-rank") for c in cmds) == ["0", "1"]
    assert all(_opt(c.split(), "--num-machines") == "2" for c in cmds)
    assert len({_opt(c.split(), "--dist-url") for c in cmds}) == 1
    log = (out / "log.txt").read_text()
    assert "World size: 2" in log
    assert (out / "model_final.pth").is_file() and (out / "last_checkpoint").is_file()
