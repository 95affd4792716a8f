"""`launch`: Detectron2's `detectron2.engine.launch` with a process lifetime that holds.

Detectron2 spawns one worker per process (`torch.multiprocessing.start_processes`) and waits.
Its parent has no signal handling, and the only link from a worker to its parent is torch's
PR_SET_PDEATHSIG = SIGINT, which a process started in the background by a shell ignores. So a
SIGTERM / SIGINT to the parent left every worker training and writing checkpoints. Here:

- the parent handles SIGTERM, SIGINT (and SIGHUP unless it is ignored, as under nohup): it
  sends SIGTERM to every worker, waits up to `grace` seconds, SIGKILLs what is left, and
  exits with 128 + the signal number;
- each worker asks the kernel for SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG on
  Linux, via ctypes; elsewhere a thread that polls `os.getppid()`), and exits at once if the
  parent is already gone when it starts; SIGINT raises KeyboardInterrupt in the workers again
  and ends the worker with status 130, which counts as a failure (next point);
- a worker that exits with an error (or is killed) stops the others: torch's
  `ProcessContext.join(grace_period=...)` sends them SIGTERM, then SIGKILL, and the parent
  raises the worker's error.

- a worker that finished its work ends its process groups in order: a barrier (no rank tears
  gloo down while another still talks to it), then `destroy_process_group()`; then it runs the
  atexit handlers, flushes its streams and leaves with `os._exit(0)`, without the interpreter's
  finalization. Left to that finalization, a finished worker sometimes aborted with
  "terminate called without an active exception" (SIGABRT, a failed launch after training and
  evaluation had finished), also after the groups were destroyed: most likely gloo objects still
  referenced from Python (Detectron2 keeps the local process group in a module global; a trainer
  in a reference cycle keeps its DDP reducer's), destroyed with their C++ threads joinable.

A single process (world size 1) runs `main_func` in the parent, as Detectron2 does.
Process-group setup is Detectron2's own `_distributed_worker` (the launch logic around it is
adapted from detectron2/engine/launch.py, Apache-2.0).
"""
import atexit
import ctypes
import functools
import logging
import os
import signal
import sys
import threading
import time

import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine.launch import DEFAULT_TIMEOUT, _distributed_worker, _find_free_port

__all__ = ["launch", "close_process_groups", "exit_finished_worker", "DEFAULT_TIMEOUT"]

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent_pid: int):
    """Make this process die when `parent_pid` (the launcher) dies."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        except (OSError, AttributeError):
            _watch_parent(parent_pid)
    else:
        _watch_parent(parent_pid)
    if os.getppid() != parent_pid:  # the launcher died before the line above took effect
        os._exit(1)


def _watch_parent(parent_pid: int, period: float = 1.0):
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(period)
        os._exit(1)

    threading.Thread(target=watch, name="dfr-parent-watchdog", daemon=True).start()


def close_process_groups():
    """End this process's process groups in order (barrier, then destroy); a no-op when none
    is initialised. Call it once the work of every rank is done."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_world_size() > 1:
        dist.barrier()
    dist.destroy_process_group()


def _run_then_close(main_func, *args):
    main_func(*args)
    close_process_groups()
    exit_finished_worker()


def exit_finished_worker(code: int = 0):
    """End a worker whose work is done: atexit handlers (logging's flush, multiprocessing's
    clean-up of its children, the user's), the standard streams flushed, then `os._exit`,
    skipping the interpreter finalization during which leftover gloo objects abort."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _worker(local_rank, parent_pid, main_func, *rest):
    _die_with_parent(parent_pid)
    # A shell's background job starts with SIGINT ignored; Ctrl-C / kill -INT must work here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "SIGHUP") and callable(signal.getsignal(signal.SIGHUP)):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # the parent's handler, under fork
    try:
        _distributed_worker(local_rank, functools.partial(_run_then_close, main_func), *rest)
    except KeyboardInterrupt:  # torch's wrapper would exit 0 and leave the others waiting
        raise SystemExit(128 + signal.SIGINT) from None


class _Stop(Exception):
    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop_workers(context, grace: float):
    procs = [p for p in context.processes if p.is_alive()]
    for p in procs:
        p.terminate()  # SIGTERM: workers keep the default action (exit at once)
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            logger.warning(f"worker {p.pid} ignored SIGTERM for {grace:.0f} s: SIGKILL")
            p.kill()
            p.join()


def launch(
    main_func,
    num_gpus_per_machine,
    num_machines=1,
    machine_rank=0,
    dist_url=None,
    args=(),
    timeout=DEFAULT_TIMEOUT,
    grace: float = 10.0,
    start_method: str = "spawn",
):
    """Same arguments as `detectron2.engine.launch`; `grace`: seconds the workers get to exit
    after SIGTERM (from the parent's signal handler, or after another worker failed) before
    SIGKILL. `start_method`: "spawn" (Detectron2's; safe with CUDA and threads); "fork" starts
    CPU workers without re-importing everything (the tests use it)."""
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        return main_func(*args)
    if dist_url == "auto":
        assert num_machines == 1, "dist_url=auto not supported in multi-machine jobs."
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// is not a reliable init_method in multi-machine jobs. Prefer tcp://")

    def on_signal(signum, frame):
        raise _Stop(signum)

    handled = [signal.SIGTERM, signal.SIGINT]
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:
        handled.append(signal.SIGHUP)
    if threading.current_thread() is not threading.main_thread():
        handled = []  # only the main thread may install handlers; failures still stop all
    previous = {s: signal.signal(s, on_signal) for s in handled}
    context = None
    try:
        context = mp.start_processes(
            _worker,
            nprocs=num_gpus_per_machine,
            args=(os.getpid(), main_func, world_size, num_gpus_per_machine, machine_rank,
                  dist_url, args, timeout),  # fmt: skip
            daemon=False,
            join=False,
            start_method=start_method,
        )
        while not context.join(timeout=0.5, grace_period=grace):
            pass
    except _Stop as stop:
        for s in handled:  # a second signal during the clean-up must not interrupt it
            signal.signal(s, signal.SIG_IGN)
        print(f"[dfr launch] {stop}: stopping the workers", file=sys.stderr, flush=True)
        if context is not None:
            _stop_workers(context, grace)
        raise SystemExit(128 + stop.signum) from None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
