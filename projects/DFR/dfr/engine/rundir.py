"""OUTPUT_DIR of a run: one run at a time, and nothing written before the run's checks pass.

Detectron2's `default_setup` writes `config.yaml` and opens `log.txt` first thing, and its
writers open `metrics.json` when the trainer is built; a run refused afterwards (start-up
checks, a checkpoint of another model) had already replaced the config of the run whose
`model_final.pth` sits beside it. Two runs into one folder wrote checkpoints under the same
temporary names, interleaved `metrics.json` and `log.txt`, and tagged each other's files.

`prepare_run(cfg, args)` (train_net.py's setup) instead:

1. takes the folder's lock, ``OUTPUT_DIR/run.lock`` (pid, host, start time, command; held
   with ``flock`` for the life of the process, so the kernel releases it when the process
   dies). A folder locked by a running process is refused with ``OutputDirBusyError`` naming
   the folder and that process; a lock left by a process that is gone is taken over with a
   WARNING. On a multi-process run the main process takes it and every process raises the
   same error.
2. logs what `default_setup` logs (environment, arguments, the config) to the console, and
   keeps the records in memory;
3. writes nothing else: `commit_run(cfg)` -- called once the checks and the checkpoint load
   have passed (train_net.py's main; `Trainer.train` calls it too) -- writes `config.yaml`,
   opens `log.txt` (``log.txt.rank<r>`` on the other processes) with the records so far.
   `close_run(cfg)` releases the lock; a run closed before its commit removes the lock and
   the folder it created, so a refused run leaves OUTPUT_DIR as it found it.
"""
import atexit
import errno
import json
import logging
import os
import socket
import sys
import time
from typing import Dict, List, Optional

import torch
from detectron2.utils import comm
from detectron2.utils.collect_env import collect_env_info
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger

__all__ = ["LOCK_FILE", "OutputDirBusyError", "RunLock", "RunDirectory", "prepare_run",
           "active_run", "commit_run", "close_run"]  # fmt: skip

logger = logging.getLogger(__name__)
LOCK_FILE = "run.lock"
_LOGGERS = ("detectron2", "fvcore", "dfr")  # the loggers train_net.py's runs write to log.txt
_PLAIN = logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s",
                           datefmt="%m/%d %H:%M:%S")  # Detectron2's log.txt format


class OutputDirBusyError(RuntimeError):
    """OUTPUT_DIR is in use by a running process (named in the message)."""


def _describe(info: Dict) -> str:
    cmd = " ".join(info.get("argv", []))
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started "
            f"{info.get('started', '?')}" + (f" ({cmd})" if cmd else ""))  # fmt: skip


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True  # someone else's process, or unreadable: assume it runs
    return True


class RunLock:
    """``<output_dir>/run.lock``: created (with the folder, if needed) and held with an
    exclusive ``flock`` until `release`; the file says who holds it. Re-entrant within a
    process (the same folder locked twice is one lock)."""

    _held: Dict[str, "RunLock"] = {}  # folder -> the lock this process holds on it

    def __init__(self, output_dir: str):
        self.dir = os.path.abspath(os.path.expanduser(output_dir))
        self.path = os.path.join(self.dir, LOCK_FILE)
        self.fd: Optional[int] = None
        self.created: Optional[str] = None  # the topmost folder this lock created
        self.count = 0

    @classmethod
    def acquire(cls, output_dir: str) -> "RunLock":
        lock = cls(output_dir)
        held = cls._held.get(lock.dir)
        if held is not None:
            held.count += 1
            return held
        lock._acquire()
        lock.count = 1
        cls._held[lock.dir] = lock
        return lock

    def _info(self) -> Dict:
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": list(sys.argv)}  # fmt: skip

    @staticmethod
    def _read(fd: int) -> Dict:
        os.lseek(fd, 0, os.SEEK_SET)
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        try:
            info = json.loads(data.decode() or "{}")
        except (ValueError, UnicodeDecodeError):
            return {"unreadable": data[:200].decode(errors="replace")}
        return info if isinstance(info, dict) else {}

    def _busy(self, info: Dict) -> OutputDirBusyError:
        return OutputDirBusyError(
            f"OUTPUT_DIR {self.dir} is in use by another run: {_describe(info)} holds "
            f"{self.path}. Two runs in one folder overwrite each other's checkpoints, "
            "metrics.json and log.txt: wait for that run to end, stop it, or choose another "
            "OUTPUT_DIR."
        )

    def _acquire(self):
        top = self.dir
        while not os.path.exists(os.path.dirname(top)) and os.path.dirname(top) != top:
            top = os.path.dirname(top)
        if not os.path.isdir(self.dir):
            os.makedirs(self.dir, exist_ok=True)
            self.created = top
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (BlockingIOError, PermissionError):
                info = self._read(fd)
                os.close(fd)
                raise self._busy(info) from None
            except (ImportError, OSError) as e:  # no flock here (filesystem, platform)
                if isinstance(e, OSError) and e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP,
                                                              errno.EINVAL, errno.ENOSYS):
                    os.close(fd)
                    raise
                old = self._read(fd)
                if old.get("pid") and (old.get("host") != socket.gethostname()
                                       or _pid_alive(old["pid"])):  # fmt: skip
                    os.close(fd)
                    raise self._busy(old) from None
            # the holder may have removed the file between our open and flock: retry
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            old = self._read(fd)
            if old:
                logger.warning(f"OUTPUT_DIR {self.dir}: taking over {self.path} of a run that is "
                               f"no longer running ({_describe(old)})")  # fmt: skip
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(self._info(), indent=1) + "\n").encode())
            os.fsync(fd)
            self.fd = fd
            atexit.register(self.release, force=True)
            return
        raise OSError(f"could not lock {self.path}: it keeps being replaced")

    def release(self, remove_created: bool = False, force: bool = False):
        """Give the lock up (the last of its re-entrant holders, or `force`): the file is
        removed; with `remove_created` so are the folders it created, when empty."""
        if self.fd is None:
            return
        self.count -= 1
        if self.count > 0 and not force:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None
        RunLock._held.pop(self.dir, None)
        if remove_created and self.created:
            d = self.dir
            while True:
                try:
                    os.rmdir(d)
                except OSError:
                    break
                if d == self.created:
                    break
                d = os.path.dirname(d)


class _Buffer(logging.Handler):
    """The records a logger handled before the run's log file exists."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


_streams: Dict[str, object] = {}


def _log_stream(filename: str):
    if filename not in _streams:
        os.makedirs(os.path.dirname(filename) or ".", exist_ok=True)
        _streams[filename] = open(filename, "a")
        atexit.register(_streams[filename].close)
    return _streams[filename]


class RunDirectory:
    """The lock, the console logging and the deferred writes of one run (module docstring)."""

    def __init__(self, cfg, args=None):
        self.cfg, self.args = cfg, args
        self.dir = cfg.OUTPUT_DIR
        self.lock: Optional[RunLock] = None
        self.committed = False
        self.buffers: Dict[str, _Buffer] = {}

    def open(self):
        rank = comm.get_rank()
        for name in _LOGGERS:  # console only (rank 0); files at commit
            setup_logger(None, distributed_rank=rank, name=name)
            self.buffers[name] = _Buffer()
            logging.getLogger(name).addHandler(self.buffers[name])
        err = None
        if self.dir and comm.is_main_process():
            try:
                self.lock = RunLock.acquire(self.dir)
            except OutputDirBusyError as e:
                err = str(e)
        if comm.get_world_size() > 1:
            err = comm.all_gather(err)[0]
        if err:
            self._drop_buffers()
            raise OutputDirBusyError(err)
        self._log_setup(rank)
        return self

    def _log_setup(self, rank: int):
        """What Detectron2's default_setup logs and sets, without its writes."""
        cfg, args = self.cfg, self.args
        d2 = logging.getLogger("detectron2")
        d2.info(f"Rank of current process: {rank}. World size: {comm.get_world_size()}")
        d2.info("Environment info:\n" + collect_env_info())
        d2.info(f"Command line arguments: {args}")
        config_file = getattr(args, "config_file", "")
        if config_file:
            with open(config_file) as f:
                d2.info(f"Contents of args.config_file={config_file}:\n{f.read()}")
        if comm.is_main_process():
            d2.info(f"Running with full config:\n{cfg.dump()}")
        seed = cfg.get("SEED", -1)
        seed_all_rng(None if seed < 0 else seed + rank)
        if not getattr(args, "eval_only", False):
            torch.backends.cudnn.benchmark = cfg.get("CUDNN_BENCHMARK", False)

    def _drop_buffers(self):
        for name, buf in self.buffers.items():
            logging.getLogger(name).removeHandler(buf)
        self.buffers = {}

    def commit(self):
        """Write config.yaml (main process) and start log.txt with the records so far."""
        if self.committed or not self.dir:
            self.committed = True
            self._drop_buffers()
            return
        rank = comm.get_rank()
        os.makedirs(self.dir, exist_ok=True)
        filename = os.path.join(self.dir, "log.txt" + (f".rank{rank}" if rank > 0 else ""))
        for name in _LOGGERS:
            lg = logging.getLogger(name)
            if not any(getattr(h, "_dfr_log_file", None) == filename for h in lg.handlers):
                fh = logging.StreamHandler(_log_stream(filename))
                fh.setLevel(logging.DEBUG)
                fh.setFormatter(_PLAIN)
                fh._dfr_log_file = filename
                lg.addHandler(fh)
                buf = self.buffers.get(name)
                for rec in buf.records if buf else []:
                    fh.handle(rec)
        self._drop_buffers()
        if comm.is_main_process():
            path = os.path.join(self.dir, "config.yaml")
            tmp = f"{path}.tmp-{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(self.cfg.dump())
            os.replace(tmp, path)
            logging.getLogger("detectron2").info(f"Full config saved to {path}")
        self.committed = True

    def close(self):
        """End of the run: release the lock and stop writing its log.txt (a later run of the
        same process logs to its own); before a commit, also remove what the lock created
        (the lock file, a folder that did not exist)."""
        self._drop_buffers()
        if self.committed and self.dir:
            rank = comm.get_rank()
            filename = os.path.join(self.dir, "log.txt" + (f".rank{rank}" if rank > 0 else ""))
            for name in _LOGGERS:
                lg = logging.getLogger(name)
                for h in [h for h in lg.handlers if getattr(h, "_dfr_log_file", None) == filename]:
                    h.flush()
                    lg.removeHandler(h)
            stream = _streams.pop(filename, None)
            if stream is not None:
                stream.close()
        if self.lock is not None:
            self.lock.release(remove_created=not self.committed)
            self.lock = None
        _ACTIVE.pop(_key(self.dir), None)


_ACTIVE: Dict[str, RunDirectory] = {}


def _key(output_dir: str) -> str:
    return os.path.abspath(os.path.expanduser(output_dir)) if output_dir else ""


def prepare_run(cfg, args=None) -> RunDirectory:
    """Lock cfg.OUTPUT_DIR and set up logging, writing nothing else (module docstring)."""
    previous = _ACTIVE.pop(_key(cfg.OUTPUT_DIR), None)
    if previous is not None:  # set up again in the same process (e.g. a second main)
        previous.close()
    run = RunDirectory(cfg, args).open()
    _ACTIVE[_key(cfg.OUTPUT_DIR)] = run
    return run


def active_run(cfg) -> Optional[RunDirectory]:
    return _ACTIVE.get(_key(cfg.OUTPUT_DIR))


def commit_run(cfg):
    """Write the deferred config.yaml / log.txt of cfg.OUTPUT_DIR's run, if one was prepared
    and not yet committed (a no-op otherwise)."""
    run = active_run(cfg)
    if run is not None:
        run.commit()


def close_run(cfg):
    """Release cfg.OUTPUT_DIR's run (see RunDirectory.close); a no-op without one."""
    run = active_run(cfg)
    if run is not None:
        run.close()
