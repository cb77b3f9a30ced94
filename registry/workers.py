"""``dockyard serve`` with several worker processes on one port (``workers``, default one per CPU core).

The parent process checks that the port is free, then forks the workers; each runs its own event loop and its own
listening socket bound with ``SO_REUSEPORT``, so the kernel spreads new connections over them. The parent only
supervises:

- a worker that dies while the server runs is started again (a crash of one request path never takes the port
  down); a worker that dies within :data:`EARLY_EXIT` seconds of its start, :data:`MAX_EARLY_EXITS` times in a row,
  means the configuration is broken, and the server stops with exit status 1;
- ``SIGTERM``/``SIGINT``/``SIGHUP`` to the parent stop the workers gracefully (``SIGTERM`` each, ``SIGKILL`` after
  :data:`STOP_TIMEOUT` seconds);
- a worker dies with its parent (``PR_SET_PDEATHSIG`` = ``SIGKILL``): ``kill -9`` of the server's pid kills the
  whole server, as it would a single process.

Workers live in their own process group, so a terminal's Ctrl-C reaches the parent only, which stops them once.
Whatever is shared lives in storage and the database; see the README for the per-process state (counters of the
request-rate and upload-session limits, caches) that several workers do not share.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("dockyard")

EARLY_EXIT = 5.0
MAX_EARLY_EXITS = 3
STOP_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) or 1


def resolve_count(configured: int) -> int:
    """``configured`` workers, or one per usable CPU core when it is 0."""
    return configured if configured > 0 else cpu_count()


def check_port_free(host: str, port: int) -> None:
    """Raise ``OSError(EADDRINUSE)`` when something listens on ``host:port`` already. The probe binds *without*
    ``SO_REUSEPORT``, which fails next to any socket on that port, including a running dockyard's own workers, so
    two servers never end up sharing one port by accident."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


class _Stop(Exception):
    """Raised inside the parent's wait loop by a stop signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass
class _Worker:
    slot: int
    pid: int
    started: float


class Supervisor:
    """Forks ``count`` workers running ``work()`` and keeps them running until a stop signal (see the module)."""

    def __init__(self, count: int, work: Callable[[], None]) -> None:
        self.count = count
        self.work = work
        self.workers: dict[int, _Worker] = {}
        self.early_exits = 0

    def run(self) -> int:
        """Serve until stopped; the exit status for the command (0 after a stop signal, 1 when workers keep
        failing at start)."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in _STOP_SIGNALS}
        try:
            for slot in range(self.count):
                self._spawn(slot)
            log.info("dockyard: %d worker processes started (pids %s)", self.count, self._pids())
            return self._watch()
        except _Stop as stop:
            log.info("dockyard: %s received, stopping %d workers", signal.Signals(stop.signum).name, len(self.workers))
            self._stop_all()
            return 0
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        raise _Stop(signum)

    def _pids(self) -> str:
        return ", ".join(str(worker.pid) for worker in self.workers.values())

    def _spawn(self, slot: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            _run_worker(self.work, parent)
        self.workers[pid] = _Worker(slot, pid, time.monotonic())

    def _watch(self) -> int:
        """Reap workers as they die and start them again; 1 when they keep dying at start."""
        while True:
            pid, status = os.waitpid(-1, 0)
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            lived = time.monotonic() - worker.started
            log.warning("dockyard: worker %d (pid %d) %s after %.1f s", worker.slot, pid, _describe(status), lived)
            self.early_exits = self.early_exits + 1 if lived < EARLY_EXIT else 0
            if self.early_exits >= MAX_EARLY_EXITS:
                log.error("dockyard: workers keep exiting at start; stopping (see the lines above)")
                self._stop_all()
                return 1
            self._spawn(worker.slot)

    def _stop_all(self) -> None:
        """SIGTERM every worker, wait up to :data:`STOP_TIMEOUT`, SIGKILL what is left, reap everything."""
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.workers and time.monotonic() < deadline:
            self._reap(block=False)
            time.sleep(0.05)
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while self.workers:
            self._reap(block=True)

    def _reap(self, *, block: bool) -> None:
        try:
            pid, _status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.workers.clear()
            return
        self.workers.pop(pid, None)


def run_in_child(work: Callable[[], None]) -> int:
    """Run ``work`` in a forked child and wait for it; its exit status (0 when it returned). A ``SystemExit``
    message and any failure are printed by the child, so the caller only has to pass the status on."""
    pid = os.fork()
    if pid == 0:
        _run_worker(work, os.getppid(), own_group=False)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1


def _run_worker(work: Callable[[], None], parent: int, *, own_group: bool = True) -> None:
    """In the forked child: die with the parent, leave the terminal's process group (``own_group``), run
    ``work``, exit."""
    code = 1
    try:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        _die_with_parent(parent)
        if own_group:
            os.setpgid(0, 0)
        work()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except BaseException:  # a worker must exit, whatever happened; the parent logs and restarts it
        log.exception("dockyard: worker failed")
    finally:
        logging.shutdown()
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """``PR_SET_PDEATHSIG`` = ``SIGKILL``; if the parent (pid ``parent``) is already gone, exit now."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
