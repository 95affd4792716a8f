#!/usr/bin/env python
"""Submit projects/DFR/train_net.py to a SLURM cluster with submitit (pip install -e .[cluster]).

    python tools/submit_slurm.py --nodes 2 --gpus-per-node 8 --partition gpu --timeout-min 4320 \
        --config-file projects/DFR/configs/voc/dfr_swin_base_bs16_40k.yaml OUTPUT_DIR output/voc_b

Everything after the tool's own options goes to train_net.py unchanged (--config-file,
--eval-only, --resume, KEY VALUE overrides). One SLURM task per node; each task runs

    train_net.py --num-gpus G --num-machines N --machine-rank <node> \
        --dist-url tcp://<first node>:<port>

and Detectron2's launch() starts the G processes of its node. N, the rank, the first node's
host name and the job id (the port is derived from it) come from submitit.JobEnvironment, so the
same pickled job works on every node and after a requeue.

Preemption and time limits: SLURM sends USR2 before it stops the job (--signal-delay-s);
submitit calls TrainNetJob.checkpoint() on rank 0, which resubmits the same command with
--resume, and requeues the job. train_net.py --resume continues from <OUTPUT_DIR>/last_checkpoint
(model, optimizer, scheduler, iteration), so at most SOLVER.CHECKPOINT_PERIOD iterations are
redone. OUTPUT_DIR must be on a file system all nodes share.

--local runs the job on this machine with submitit's LocalExecutor instead, CUDA hidden: each of
the --nodes tasks stands for a node and starts --gpus-per-node CPU processes (gloo); used by
tests/tools/test_submit_slurm.py.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN_NET = REPO / "projects" / "DFR" / "train_net.py"


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise SystemExit(
            "tools/submit_slurm.py needs submitit: pip install -e .[cluster]  (or: pip install "
            "submitit)"
        ) from None
    return submitit


def port_for_job(job_id: str, base: int = 20000, span: int = 20000) -> int:
    """A TCP port for the rendez-vous, the same on every node of a job (and after a requeue,
    which keeps the job id), different between jobs that share a node."""
    return base + zlib.crc32(str(job_id).encode()) % span


def distributed_args(env, gpus_per_task: int, port: int = 0):
    """train_net.py's launch options for this task of the job described by `env` (a
    submitit.JobEnvironment: num_tasks, global_rank, hostnames, num_nodes, job_id)."""
    host = "127.0.0.1" if env.num_nodes == 1 else env.hostnames[0]
    port = port or port_for_job(env.job_id)
    return [
        "--num-gpus", str(gpus_per_task),
        "--num-machines", str(env.num_tasks),
        "--machine-rank", str(env.global_rank),
        "--dist-url", f"tcp://{host}:{port}",
    ]  # fmt: skip


class TrainNetJob:
    """The submitted callable: runs train_net.py for this task, requeues with --resume.

    train_net.py runs as a child process in its own process group, with USR2 ignored (the
    preemption signal is submitit's business, in this process); when this process ends —
    finished, requeued, cancelled — the whole group is stopped."""

    def __init__(self, train_args, gpus_per_task=1, port=0, python="", cwd="", script=""):
        self.train_args = [str(a) for a in train_args]
        self.gpus_per_task = int(gpus_per_task)
        self.port = int(port)
        self.python = python or sys.executable
        self.cwd = cwd or os.getcwd()  # relative paths in train_args are from here
        self.script = str(script or TRAIN_NET)

    def _replace(self, train_args):
        return TrainNetJob(train_args, self.gpus_per_task, self.port, self.python, self.cwd,
                           self.script)  # fmt: skip

    def command(self, env) -> list:
        launch = distributed_args(env, self.gpus_per_task, self.port)
        return [self.python, self.script, *launch, *self.train_args]

    def __call__(self):
        import submitit

        env = submitit.JobEnvironment()
        cmd = self.command(env)
        print(f"[submit_slurm] {env} pid {os.getpid()}: {' '.join(cmd)}", flush=True)
        proc = subprocess.Popen(
            cmd,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN),
        )
        try:
            code = proc.wait()
        finally:
            if proc.poll() is None:  # requeue / cancel / error in this process: stop training
                _stop_group(proc)
        if code != 0:
            raise RuntimeError(f"train_net.py exited with status {code} (rank "
                               f"{env.global_rank}): {' '.join(cmd)}")  # fmt: skip
        return code

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on preemption / timeout: the same job, resuming."""
        import submitit

        args = self.train_args if "--resume" in self.train_args else ["--resume", *self.train_args]
        print("[submit_slurm] preempted: requeued with --resume", flush=True)
        return submitit.helpers.DelayedSubmission(self._replace(args))


def _stop_group(proc, grace_s: float = 10.0):
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def submit(executor, job: TrainNetJob):
    """executor.submit(job), with this module pickled by value: the job then unpickles on the
    nodes without tools/ on their sys.path."""
    import cloudpickle

    mod = sys.modules[TrainNetJob.__module__]
    if mod.__name__ != "__main__":
        cloudpickle.register_pickle_by_value(mod)
    return executor.submit(job)


def parse_args(argv=None):
    from dfr.cli import HelpFormatter  # importing dfr silences detectron2's torch.jit warnings

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter,
        usage="%(prog)s [options] --config-file CFG [train_net.py options and KEY VALUE ...]",
    )  # fmt: skip
    p.add_argument("--nodes", type=int, default=1, help="N machines")
    p.add_argument("--gpus-per-node", type=int, default=8, help="G GPUs (processes) per node")
    p.add_argument("--cpus-per-task", type=int, default=0, help="default: 10 per GPU")
    p.add_argument("--mem-gb", type=int, default=0, help="memory per node (0: cluster default)")
    p.add_argument("--timeout-min", type=int, default=72 * 60, help="time limit of one run")
    p.add_argument("--partition", default="", help="SLURM partition")
    p.add_argument("--account", default="", help="SLURM account")
    p.add_argument("--qos", default="", help="SLURM QoS")
    p.add_argument("--constraint", default="", help="SLURM constraint (e.g. a GPU type)")
    p.add_argument("--slurm-extra", action="append", default=[], metavar="KEY=VALUE",
                   help="more sbatch options, e.g. --slurm-extra exclusive=true (repeatable)")
    p.add_argument("--signal-delay-s", type=int, default=120,
                   help="USR2 this long before the time limit (checkpoint + requeue)")
    p.add_argument("--max-timeouts", type=int, default=10,
                   help="requeues after reaching the time limit (preemptions: always requeued)")
    p.add_argument("--job-name", default="dfr")
    p.add_argument("--job-dir", default="output/slurm/%j",
                   help="submitit logs and pickles (%%j: the job id)")
    p.add_argument("--port", type=int, default=0, help="rendez-vous port (0: from the job id)")
    p.add_argument("--local", action="store_true",
                   help="submitit's LocalExecutor on this machine (--nodes tasks)")
    p.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    args, train_args = p.parse_known_args(argv)
    if "--config-file" not in " ".join(train_args):
        p.error("train_net.py needs --config-file")
    for flag in ("--num-gpus", "--num-machines", "--machine-rank", "--dist-url"):
        if any(a == flag or a.startswith(flag + "=") for a in train_args):
            p.error(f"{flag} is set from the job (use --nodes / --gpus-per-node)")
    return args, train_args  # fmt: skip


def build_executor(args, submitit):
    if args.local:
        # CUDA hidden (gpus_per_node=0): every task is a "node" of CPU processes over gloo.
        ex = submitit.LocalExecutor(folder=args.job_dir, max_num_timeout=args.max_timeouts)
        ex.update_parameters(
            timeout_min=args.timeout_min,
            tasks_per_node=args.nodes,
            gpus_per_node=0,
            signal_delay_s=args.signal_delay_s,
        )
        return ex
    ex = submitit.AutoExecutor(folder=args.job_dir, slurm_max_num_timeout=args.max_timeouts)
    extra = dict(kv.split("=", 1) for kv in args.slurm_extra)
    kw = {k: v for k, v in (("slurm_partition", args.partition), ("slurm_account", args.account),
                            ("slurm_qos", args.qos), ("slurm_constraint", args.constraint)) if v}
    if args.mem_gb:
        kw["mem_gb"] = args.mem_gb
    ex.update_parameters(
        name=args.job_name,
        nodes=args.nodes,
        tasks_per_node=1,  # Detectron2's launch() starts the GPU processes of each node
        gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task or 10 * args.gpus_per_node,
        timeout_min=args.timeout_min,
        slurm_signal_delay_s=args.signal_delay_s,
        slurm_additional_parameters=extra,
        **kw,
    )  # fmt: skip
    return ex


def main(argv=None):
    args, train_args = parse_args(argv)
    submitit = _import_submitit()
    ex = build_executor(args, submitit)
    job = submit(ex, TrainNetJob(train_args, args.gpus_per_node, args.port))
    print(f"submitted job {job.job_id}: logs {re.sub('%j', str(job.job_id), args.job_dir)}")
    if args.wait:
        print(f"result: {job.results()}")
    return job


if __name__ == "__main__":
    main()
