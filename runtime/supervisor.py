"""The per-container supervisor: a detached process that runs one container and records what happened.

:func:`supervise` starts the supervisor in a session of its own (double fork: it is nobody's zombie and
outlives the CLI). A single-threaded caller (the ``dockyard`` CLI) simply forks itself: the supervisor
then needs no interpreter start and no imports. A caller with threads running (forking it would copy
locks held by other threads) starts ``python -S -m runtime.supervisor`` instead; both run :func:`serve`.
The supervisor holds an exclusive ``flock`` on :data:`SUPERVISOR_LOCK_NAME` for its whole life: that
lock, not a pid, is what :func:`supervisor_alive` checks, so a recycled pid is never mistaken for it.
It tells the caller through a pipe when the container runs (or ends the pipe when it could not start),
so nobody polls.

The supervisor runs the container with the OCI runtime's foreground ``run`` (``--keep`` when the spec
sets a memory limit), forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to it, writes the
container's output into :data:`LOG_NAME` in docker's json-file format, and keeps :data:`STATE_NAME` up
to date. After the container exits it reads the OOM counter of the container's memory cgroup (kept
alive by ``--keep``; without a memory limit a kill by the kernel's global OOM killer is reported as a
plain SIGKILL, 137), deletes the runtime's container if the runtime kept it, and records the end.

Files in the container directory::

    state.json      {"status": "created"|"running"|"exited", "pid", "supervisor_pid", "started_at",
                     "finished_at", "exit_code", "oom_killed", "error", "runtime", "runtime_root",
                     "runtime_binary", "runtime_id"} (other keys belong to other modules and are kept)
    state.lock      flock'ed around every read-modify-write of state.json
    container.log   {"log": "hi\\n", "stream": "stdout", "time": "2024-05-01T12:00:00.123456789Z"} per line
    init.pid        the container's init pid, written by the runtime when the process started
    runtime.log     the runtime's own JSON log (why a start failed)
    supervisor.log  the supervisor's own errors
    supervisor.lock flock'ed (exclusively) by the live supervisor
    stdin           a FIFO, only for interactive containers (the caller holds the write end)

Exit codes follow docker: the process's own code, 128+n when killed by signal n (137 for SIGKILL and
OOM kills), 127/126/125 when the process could not be started (``error`` then says why). A container
with a tty logs everything as ``stdout``, as docker does.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, NamedTuple

from runtime.mounts import ROOTFS, rootfs_lock, unmount
from runtime.ocirt import OciRuntime, OciRuntimeError, StartError, exit_code, failure_in_log, runtime_named

STATE_NAME = "state.json"
LOCK_NAME = "state.lock"
LOG_NAME = "container.log"
PID_NAME = "init.pid"
RUNTIME_LOG_NAME = "runtime.log"
SUPERVISOR_LOG_NAME = "supervisor.log"
SUPERVISOR_LOCK_NAME = "supervisor.lock"
STDIN_NAME = "stdin"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
MAX_LINE = 16 * 1024  # docker splits longer lines into several entries
IDLE_FLUSH = 0.05  # seconds without output after which a partial line is logged (prompts show up)
READ_SIZE = 64 * 1024
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


class SupervisorError(RuntimeError):
    """The supervisor could not be started, or vanished without recording the container's end."""


# -- time and state ------------------------------------------------------------------------------


def rfc3339_nano(ns: int | None = None) -> str:
    """UTC time with nanoseconds, as docker's json-file logs write it: ``2024-05-01T12:00:00.123456789Z``."""
    ns = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


class ContainerStatus(NamedTuple):
    """The supervisor's fields of ``state.json``."""

    status: str = "created"
    pid: int = 0
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    oom_killed: bool = False
    error: str | None = None
    supervisor_pid: int = 0

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ContainerStatus:
        return cls(
            status=str(state.get("status", "created")),
            pid=int(state.get("pid") or 0),
            exit_code=state.get("exit_code"),
            started_at=state.get("started_at"),
            finished_at=state.get("finished_at"),
            oom_killed=bool(state.get("oom_killed", False)),
            error=state.get("error"),
            supervisor_pid=int(state.get("supervisor_pid") or 0),
        )

    @property
    def exited(self) -> bool:
        return self.status == "exited"


def read_state(container_dir: Path) -> dict[str, Any]:
    """The whole ``state.json`` (``{}`` when there is none yet)."""
    try:
        data = json.loads((container_dir / STATE_NAME).read_text())
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def update_state(container_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``state.json`` under the state lock, written atomically; the new state."""
    container_dir.mkdir(parents=True, exist_ok=True)
    with open(container_dir / LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = {**read_state(container_dir), **fields}
        tmp = container_dir / f".{STATE_NAME}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(state, indent=2))  # no fsync: after a crash no container runs anyway
        os.replace(tmp, container_dir / STATE_NAME)
    return state


def read_status(container_dir: Path) -> ContainerStatus:
    """The supervisor's view of the container, from ``state.json``."""
    return ContainerStatus.from_state(read_state(container_dir))


def runs_module(pid: int, module: str, container_dir: Path) -> bool:
    """True when ``pid`` is a live ``python -m <module>`` process working for ``container_dir``: its
    command line names both, so a recycled pid is not mistaken for it."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return module.encode() in cmdline and str(container_dir.resolve()).encode() in cmdline


def supervisor_alive(container_dir: Path, pid: int) -> bool:
    """True when the supervisor ``pid`` recorded for ``container_dir`` is alive: a supervisor of the
    directory holds its lock (a recycled pid holds none; 0 means none was recorded)."""
    if pid <= 0:
        return False
    try:
        fd = os.open(container_dir / SUPERVISOR_LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock, if it was granted
    return False


def _pidfd(pid: int) -> int | None:
    """A pidfd of ``pid`` (readable once it exits), or None when it is gone or pidfds are unsupported."""
    if pid <= 0:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _wait_exit(pidfd: int, timeout: float | None) -> bool:
    """Block until the process of ``pidfd`` exits or ``timeout`` seconds pass; True when it exited."""
    ready, _, _ = select.select([pidfd], [], [], timeout)
    return bool(ready)


# -- docker's json-file log ----------------------------------------------------------------------


class JsonLogWriter:
    """Appends output to a docker json-file log, one entry per line (or per 16 KiB, or per idle pause)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._lock = threading.Lock()
        self._pending: dict[str, bytes] = {}

    def _emit(self, stream: str, data: bytes) -> None:
        entry = {"log": data.decode("utf-8", errors="replace"), "stream": stream, "time": rfc3339_nano()}
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            os.write(self._fd, line.encode())

    def write(self, stream: str, data: bytes) -> None:
        """Log ``data`` from ``stream``: complete lines now, the rest when a line ends or grows too long."""
        buffer = self._pending.get(stream, b"") + data
        while True:
            cut = buffer.find(b"\n")
            if cut < 0 and len(buffer) < MAX_LINE:
                break
            end = cut + 1 if 0 <= cut < MAX_LINE else MAX_LINE
            self._emit(stream, buffer[:end])
            buffer = buffer[end:]
        self._pending[stream] = buffer

    def flush(self, stream: str) -> None:
        """Log what is left of a partial line of ``stream`` (at EOF or after a pause)."""
        rest = self._pending.pop(stream, b"")
        if rest:
            self._emit(stream, rest)

    def close(self) -> None:
        for stream in list(self._pending):
            self.flush(stream)
        os.close(self._fd)


class LogEntry(NamedTuple):
    """One entry of the container log."""

    log: str
    stream: str
    time: str


def _parse_entries(chunk: bytes) -> list[LogEntry]:
    entries = []
    for line in chunk.splitlines():
        try:
            doc = json.loads(line)
            entries.append(LogEntry(str(doc["log"]), str(doc["stream"]), str(doc["time"])))
        except (ValueError, KeyError, TypeError):
            continue  # a damaged line is skipped, like docker's reader does
    return entries


def _complete_lines(handle: IO[bytes], carry: bytearray) -> bytes:
    """Whole lines available from ``handle`` now; a trailing partial line stays in ``carry``."""
    carry += handle.read()
    cut = carry.rfind(b"\n") + 1
    chunk = bytes(carry[:cut])
    del carry[:cut]
    return chunk


def _finished(container_dir: Path) -> bool:
    status = read_status(container_dir)
    return status.exited or not supervisor_alive(container_dir, status.supervisor_pid)


def read_logs(
    container_dir: Path, *, follow: bool = False, tail: int | None = None, poll_interval: float = 0.05
) -> Iterator[LogEntry]:
    """The container's log entries, oldest first; the last ``tail`` only when given.

    With ``follow`` it keeps yielding new entries until the container has exited (or its supervisor
    is gone) and everything written before that was yielded.
    """
    path = container_dir / LOG_NAME
    waiter = _ExitWaiter(read_status(container_dir).supervisor_pid if follow else 0, poll_interval)
    try:
        while follow and not path.exists() and not _finished(container_dir):
            waiter.wait()
        if not path.exists():
            return
        carry = bytearray()
        with open(path, "rb") as handle:
            backlog = _parse_entries(_complete_lines(handle, carry))
            yield from (backlog if tail is None else deque(backlog, maxlen=tail) if tail > 0 else [])
            while follow:
                done = _finished(container_dir)
                yield from _parse_entries(_complete_lines(handle, carry))
                if done:
                    return
                waiter.wait()
    finally:
        waiter.close()


class _ExitWaiter:
    """Sleeps ``interval`` at most, waking at once when process ``pid`` exits (through a pidfd). After
    that exit (or without a pidfd) it plainly sleeps: a restarted container has a new supervisor."""

    def __init__(self, pid: int, interval: float) -> None:
        self.fd = _pidfd(pid)
        self.interval = interval

    def wait(self) -> None:
        if self.fd is None:
            time.sleep(self.interval)
        elif _wait_exit(self.fd, self.interval):
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# -- OOM -----------------------------------------------------------------------------------------


def memory_cgroup_dir(cgroups_path: str, mountinfo: Path = Path("/proc/self/mountinfo")) -> Path | None:
    """Where the memory controller keeps ``cgroups_path``: the v1 ``memory`` hierarchy, else cgroup v2."""
    unified: Path | None = None
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup" and "memory" in tail[2].split(","):
            return Path(fields[4]) / cgroups_path.lstrip("/")
        if tail[0] == "cgroup2" and "memory" in _controllers(Path(fields[4])):
            unified = Path(fields[4]) / cgroups_path.lstrip("/")
    return unified


def _controllers(mountpoint: Path) -> list[str]:
    try:
        return (mountpoint / "cgroup.controllers").read_text().split()
    except OSError:
        return []


def _counter(path: Path, key: str) -> int | None:
    """The value of ``key`` in a flat-keyed cgroup file (``oom_kill 1``); None when absent."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def oom_killed(cgroup_dir: Path | None, code: int) -> bool:
    """Whether the kernel OOM-killed a process of the cgroup: the ``oom_kill`` counter of v1's
    ``memory.oom_control`` or v2's ``memory.events``; kernels without it: exit 137 and a hit limit."""
    if cgroup_dir is None:
        return False
    v1 = cgroup_dir / "memory.oom_control"
    if v1.exists():
        kills = _counter(v1, "oom_kill")
        limit_hit = _read_int(cgroup_dir / "memory.failcnt") > 0
    else:
        kills = _counter(cgroup_dir / "memory.events", "oom_kill")
        limit_hit = (_counter(cgroup_dir / "memory.events", "max") or 0) > 0
    if kills is not None:
        return kills > 0
    return code == 137 and limit_hit


def _linux_spec(bundle: Path) -> dict[str, Any]:
    """The ``linux`` object of the bundle's runtime spec (``{}`` when unreadable)."""
    try:
        linux = json.loads((bundle / "config.json").read_text()).get("linux")
    except (OSError, ValueError, AttributeError):
        return {}
    return linux if isinstance(linux, dict) else {}


def _cgroups_path(bundle: Path) -> str | None:
    path = _linux_spec(bundle).get("cgroupsPath")
    return str(path) if path else None


def _memory_limited(bundle: Path) -> bool:
    """True when the bundle's spec limits memory (only then can the container's own cgroup OOM-kill it)."""
    memory = (_linux_spec(bundle).get("resources") or {}).get("memory") or {}
    return bool(memory.get("limit"))


# -- the supervisor process ----------------------------------------------------------------------


def _take_controlling_tty() -> None:
    """In the runtime's child (a new session): make its stdin, our pty slave, the controlling terminal."""
    import termios  # only tty containers need it

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _Supervisor:
    """One container's supervision, from ``run`` to the recorded end (inside the supervisor process)."""

    def __init__(self, args: Arguments) -> None:
        self.ready_fd = args.ready_fd
        self.dir = args.container_dir
        self.bundle = args.bundle
        self.id = args.id
        self.tty = args.tty
        self.interactive = args.interactive
        self.runtime = runtime_named(args.runtime, args.runtime_root, args.runtime_binary)
        self.child: subprocess.Popen[bytes] | None = None
        self.pending: list[int] = []
        self.threads: list[threading.Thread] = []
        self.log = JsonLogWriter(self.dir / LOG_NAME)

    def forward(self, signum: int, _frame: object = None) -> None:
        """Signal handler: pass the signal to the runtime, which passes it to the container's init."""
        if self.child is None:
            self.pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.child.pid, signum)

    def _reader(self, fd: int, stream: str) -> None:
        """Copy ``fd`` into the log until EOF (or EIO, a pty whose other side is gone)."""
        while True:
            ready, _, _ = select.select([fd], [], [], IDLE_FLUSH)
            if not ready:
                self.log.flush(stream)
                continue
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:
                data = b""
            if not data:
                break
            self.log.write(stream, data)
        self.log.flush(stream)
        os.close(fd)

    def _stdin_to_pty(self, source: int, master: int) -> None:
        """Interactive tty: copy the FIFO into the pty; at EOF send ^D, as a terminal would."""
        with contextlib.suppress(OSError):
            while data := os.read(source, READ_SIZE):
                os.write(master, data)
            os.write(master, b"\x04")
        os.close(source)

    def _thread(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _open_stdin(self) -> int:
        """The container's stdin: the FIFO (blocks until the caller opened its write end) or /dev/null."""
        path = self.dir / STDIN_NAME if self.interactive else Path(os.devnull)
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def _spawn_tty(self, argv: list[str], stdin: int) -> subprocess.Popen[bytes]:
        """The runtime on a pty of ours (its controlling terminal, as runc's foreground tty mode needs)."""
        master, slave = os.openpty()
        child = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, preexec_fn=_take_controlling_tty
        )
        os.close(slave)
        self._thread(self._reader, master, "stdout")
        if self.interactive:
            self._thread(self._stdin_to_pty, stdin, os.dup(master))
        else:
            os.close(stdin)
        return child

    def _spawn_pipes(self, argv: list[str], stdin: int) -> subprocess.Popen[bytes]:
        """The runtime with the container's stdout and stderr on two pipes of ours (runc passes them through)."""
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        child = subprocess.Popen(argv, stdin=stdin, stdout=out_write, stderr=err_write)
        for fd in (stdin, out_write, err_write):
            os.close(fd)
        self._thread(self._reader, out_read, "stdout")
        self._thread(self._reader, err_read, "stderr")
        return child

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start the runtime's foreground ``run``, then forward the signals that came in before."""
        stdin = self._open_stdin()
        self.child = self._spawn_tty(argv, stdin) if self.tty else self._spawn_pipes(argv, stdin)
        for signum in self.pending:
            self.forward(signum)
        return self.child

    def _await_start(self, child: subprocess.Popen[bytes]) -> int:
        """The container's init pid once the runtime wrote it; 0 when the runtime exited without starting it."""
        pid_file = self.dir / PID_NAME
        while True:
            with contextlib.suppress(OSError, ValueError):
                return int(pid_file.read_text().strip())
            if child.poll() is not None and not pid_file.exists():
                return 0
            time.sleep(0.002)

    def run(self) -> None:
        """Run the container to its end, delete the runtime's container, then record the end."""
        runtime_log = self.dir / RUNTIME_LOG_NAME
        for path in (self.dir / PID_NAME, runtime_log):
            path.unlink(missing_ok=True)
        keep = _memory_limited(self.bundle)  # --keep holds the cgroup for the OOM check, at the cost of a delete
        argv = self.runtime.run_command(self.id, self.bundle, pid_file=self.dir / PID_NAME, keep=keep, log=runtime_log)
        try:
            child = self._spawn(argv)
            pid = self._await_start(child)
            if pid:
                update_state(self.dir, status="running", pid=pid, started_at=rfc3339_nano())
                self._tell_ready()
            code = exit_code(child.wait())
            for thread in self.threads:
                thread.join(timeout=10)
            end = self._end(code, pid, failure_in_log(runtime_log) if not pid else None)
        finally:
            if keep or self.runtime.exists(self.id):  # after this the id is free to run again
                with contextlib.suppress(OciRuntimeError):
                    self.runtime.delete(self.id, force=True)
            self.log.close()
        update_state(self.dir, **end)
        self._close_ready()  # a caller of supervise waiting for the start sees the end first
        self._release_rootfs()

    def _close_ready(self) -> None:
        """End the pipe to the caller of :func:`supervise` (it then stops waiting for the start)."""
        if self.ready_fd is not None:
            os.close(self.ready_fd)
            self.ready_fd = None

    def _release_rootfs(self) -> None:
        """Unmount the root filesystem of the ended container, unless a new start runs it already (a container
        that is not running holds no mount; a failure here is left to ``rm``)."""
        with contextlib.suppress(OSError), rootfs_lock(self.dir):
            if read_state(self.dir).get("status") != "running":
                unmount(self.dir / ROOTFS)

    def _tell_ready(self) -> None:
        """Tell the caller of :func:`supervise` that the container runs (its pipe then ends)."""
        if self.ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.ready_fd, b"R")
        self._close_ready()

    def _end(self, code: int, pid: int, failure: OciRuntimeError | None) -> dict[str, Any]:
        """The final state fields: exit code, OOM kill (read while ``--keep`` holds the cgroup), error."""
        error = None
        if not pid:
            error = str(failure) if failure else f"the OCI runtime exited with {code} before starting the container"
            code = failure.exit_code if isinstance(failure, StartError) else 125
        cgroups_path = _cgroups_path(self.bundle)
        oom = cgroups_path is not None and oom_killed(memory_cgroup_dir(cgroups_path), code)
        return {
            "status": "exited",
            "pid": 0,
            "exit_code": code,
            "finished_at": rfc3339_nano(),
            "oom_killed": oom,
            "error": error,
        }


class Arguments(NamedTuple):
    """The supervisor's command line (a private interface between :func:`supervise` and :func:`main`)."""

    container_dir: Path
    bundle: Path
    id: str
    runtime: str
    runtime_root: Path
    runtime_binary: str | None = None
    tty: bool = False
    interactive: bool = False
    foreground: bool = False
    ready_fd: int | None = None


USAGE = (
    "usage: python -m runtime.supervisor --container-dir DIR --bundle DIR --id ID [--runtime runc]\n"
    "       --runtime-root DIR [--runtime-binary PATH] [--tty] [--interactive] [--foreground] [--ready-fd FD]"
)
_VALUED = {"--container-dir", "--bundle", "--id", "--runtime", "--runtime-root", "--runtime-binary", "--ready-fd"}
_FLAGS = {"--tty", "--interactive", "--foreground"}


def parse_arguments(argv: Sequence[str]) -> Arguments:
    """Parse the supervisor's options (argparse would double its start-up time); ``SystemExit`` on misuse."""
    values: dict[str, str] = {"runtime": "runc"}
    flags: set[str] = set()
    words = iter(argv)
    for word in words:
        if word in ("-h", "--help"):
            print(USAGE)
            raise SystemExit(0)
        if word in _FLAGS:
            flags.add(word[2:])
        elif word in _VALUED and (value := next(words, None)) is not None:
            values[word[2:].replace("-", "_")] = value
        else:
            raise SystemExit(f"{USAGE}\nunexpected argument: {word}")
    missing = {"container_dir", "bundle", "id", "runtime_root"} - values.keys()
    if missing:
        raise SystemExit(f"{USAGE}\nmissing: {', '.join(sorted(missing))}")
    return Arguments(
        container_dir=Path(values["container_dir"]),
        bundle=Path(values["bundle"]),
        id=values["id"],
        runtime=values["runtime"],
        runtime_root=Path(values["runtime_root"]),
        runtime_binary=values.get("runtime_binary"),
        tty="tty" in flags,
        interactive="interactive" in flags,
        foreground="foreground" in flags,
        ready_fd=int(values["ready_fd"]) if values.get("ready_fd", "").isdigit() else None,
    )


def serve(args: Arguments) -> int:
    """Supervise the container of ``args`` in this process until it ended; 0, or 1 when supervision
    failed (the end is then recorded with exit code 125 and the error). The supervisor lock is held
    until this process exits."""
    container_dir = args.container_dir
    lock = os.open(container_dir / SUPERVISOR_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # never closed: the kernel drops it when this process is gone
    update_state(container_dir, supervisor_pid=os.getpid())
    supervisor = _Supervisor(args)
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, supervisor.forward)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        supervisor.run()
    except Exception as exc:
        update_state(container_dir, status="exited", pid=0, exit_code=125, finished_at=rfc3339_nano(), error=str(exc))
        import traceback  # only on failure: keeps the supervisor's start-up short

        traceback.print_exc()
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m runtime.supervisor`` (see the module docstring): unless ``--foreground``,
    fork the supervisor and exit at once, so that it is nobody's child."""
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    if args.foreground:
        return serve(args)
    if os.fork():
        os._exit(0)  # the launcher; supervise() reaps it
    os.chdir("/")  # a daemon pins no directory (every path it was given is absolute)
    return serve(args)


# -- the caller's side ---------------------------------------------------------------------------


class Supervised(NamedTuple):
    """A started container: its status, and the write end of its stdin when interactive."""

    status: ContainerStatus
    stdin: BinaryIO | None = None


def _supervisor_command(args: Arguments) -> list[str]:
    """The command line of an exec'd supervisor (see :func:`parse_arguments`)."""
    argv = [sys.executable, "-S", "-m", "runtime.supervisor", "--container-dir", str(args.container_dir)]
    argv += ["--bundle", str(args.bundle), "--id", args.id, "--runtime", args.runtime]
    argv += ["--runtime-root", str(args.runtime_root), "--runtime-binary", str(args.runtime_binary)]
    argv += ["--ready-fd", str(args.ready_fd)] if args.ready_fd is not None else []
    return argv + (["--tty"] if args.tty else []) + (["--interactive"] if args.interactive else [])


def _launch(args: Arguments) -> None:
    """Start ``python -m runtime.supervisor`` (it forks the supervisor and exits) and reap it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_PARENT), env.get("PYTHONPATH")]))
    with open(args.container_dir / SUPERVISOR_LOG_NAME, "ab") as errors:
        launcher = subprocess.Popen(
            _supervisor_command(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,
            env=env,
            pass_fds=() if args.ready_fd is None else (args.ready_fd,),
        )
    if launcher.wait() != 0:
        raise SupervisorError(f"the supervisor did not start (see {args.container_dir / SUPERVISOR_LOG_NAME})")


def _fork(args: Arguments) -> None:
    """Fork the supervisor off this single-threaded process (double fork, new session) and reap the
    intermediate child. Buffered output is flushed first, or the child would write it a second time."""
    log = os.open(
        args.container_dir / SUPERVISOR_LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640
    )
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        _forked(args, log)  # never returns
    os.close(log)
    _, status = os.waitpid(child, 0)
    if status != 0:
        raise SupervisorError(f"the supervisor did not start (see {args.container_dir / SUPERVISOR_LOG_NAME})")


def _forked(args: Arguments, log: int) -> None:
    """In the forked child: leave the caller's session, fork the supervisor, and exit (never returns).

    The supervisor freezes the objects it inherited (a collection would run their finalizers, which could
    close descriptors it reuses), keeps no descriptor of the caller's but the readiness pipe (a listening
    socket kept open would hold its port), and logs its errors to ``supervisor.log``."""
    code = 1
    try:
        os.setsid()
        if os.fork():
            code = 0
            return
        gc.freeze()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd, target in ((0, devnull), (1, devnull), (2, log)):
            os.dup2(target, fd)
        sys.stdout = sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - the caller's may be wrappers
        keep = args.ready_fd if args.ready_fd is not None else 2
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        os.chdir("/")
        code = serve(args)
    except BaseException:
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stderr.flush()
        os._exit(code)


def _open_stdin_fifo(container_dir: Path, ready: int, deadline: float) -> BinaryIO:
    """Open the write end of the stdin FIFO once the supervisor opened its read end (the supervisor
    opens it before it starts the container, so the readiness pipe ``ready`` can only end meanwhile)."""
    path = container_dir / STDIN_NAME
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            break
        except OSError as exc:  # ENXIO: no reader yet
            ended, _, _ = select.select([ready], [], [], 0.002)
            if ended or time.monotonic() > deadline:
                raise SupervisorError(f"the supervisor never opened the container's stdin: {exc}") from None
    os.set_blocking(fd, True)
    return open(fd, "wb", buffering=0)


def _await_running(container_dir: Path, ready: int, deadline: float) -> ContainerStatus:
    """Block on the readiness pipe until the container runs, or the supervisor ended (a failed start
    is recorded as exited; anything else means the supervisor died)."""
    answered, _, _ = select.select([ready], [], [], max(0.0, deadline - time.monotonic()))
    if not answered:
        raise SupervisorError("the container did not start in time")
    if os.read(ready, 1):
        return read_status(container_dir)
    status = read_status(container_dir)
    if not status.exited:
        raise SupervisorError(f"the supervisor died before the container started (see {SUPERVISOR_LOG_NAME})")
    return status


def supervise(
    container_dir: Path,
    container_id: str,
    runtime: OciRuntime,
    *,
    bundle: Path | None = None,
    tty: bool = False,
    interactive: bool = False,
    timeout: float = 30.0,
) -> Supervised:
    """Start a detached supervisor running ``container_id`` from ``bundle`` (default ``container_dir``).

    Returns once the container runs (or already exited, e.g. a failed start: see ``status.error``).
    With ``interactive``, ``stdin`` is the write end of the container's stdin (close it for EOF).
    Raises :class:`SupervisorError` when a supervisor of this container is still alive, or when the
    supervisor dies or takes longer than ``timeout`` seconds to start the container.
    """
    container_dir = container_dir.resolve()
    previous = read_status(container_dir)
    if not previous.exited and supervisor_alive(container_dir, previous.supervisor_pid):
        raise SupervisorError(f"container {container_id} is already running")
    fresh = ContainerStatus()._asdict()
    runtime_fields = {"runtime": runtime.name, "runtime_root": str(runtime.root), "runtime_binary": runtime.binary}
    update_state(container_dir, **fresh, **runtime_fields, runtime_id=container_id)
    if interactive:
        (container_dir / STDIN_NAME).unlink(missing_ok=True)
        os.mkfifo(container_dir / STDIN_NAME, 0o600)
    deadline = time.monotonic() + timeout
    ready, ready_w = os.pipe()
    try:
        args = Arguments(
            container_dir,
            (bundle or container_dir).resolve(),
            container_id,
            runtime.name,
            runtime.root,
            runtime.binary,
            tty,
            interactive,
            ready_fd=ready_w,
        )
        if threading.active_count() == 1:
            _fork(args)
        else:  # forking copies only the calling thread: a lock another one holds would stay held in the copy
            _launch(args)
        os.close(ready_w)
        ready_w = -1
        stdin = _open_stdin_fifo(container_dir, ready, deadline) if interactive else None
        return Supervised(_await_running(container_dir, ready, deadline), stdin)
    finally:
        os.close(ready)
        if ready_w >= 0:
            os.close(ready_w)


def wait(container_dir: Path, timeout: float | None = None) -> ContainerStatus:
    """Block until the container has exited; its final status (``exit_code``, ``oom_killed``...).

    Raises ``TimeoutError`` after ``timeout`` seconds, :class:`SupervisorError` when no supervisor is
    alive to record the end (never started, or killed). It wakes as soon as the supervisor exits.
    """
    container_dir = container_dir.resolve()
    deadline = None if timeout is None else time.monotonic() + timeout
    waiter = _ExitWaiter(read_status(container_dir).supervisor_pid, 0.05)
    try:
        while True:
            status = read_status(container_dir)
            if status.exited:
                return status
            if not supervisor_alive(container_dir, status.supervisor_pid):
                return _final(container_dir)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"container {container_dir.name} still running after {timeout} s")
            waiter.wait()
    finally:
        waiter.close()


def _final(container_dir: Path) -> ContainerStatus:
    """The recorded end of a container whose supervisor is gone; SupervisorError when none was recorded."""
    status = read_status(container_dir)
    if status.exited:
        return status
    raise SupervisorError(f"no supervisor is running for {container_dir.name}")


def send_signal(container_dir: Path, sig: int) -> None:
    """Send ``sig`` to the container's init process through its OCI runtime (any signal, SIGKILL too)."""
    state = read_state(container_dir)
    if not state.get("runtime_id") or state.get("status") != "running":
        raise SupervisorError(f"container {container_dir.name} is not running")
    runtime = runtime_named(str(state["runtime"]), Path(state["runtime_root"]), state.get("runtime_binary"))
    runtime.kill(str(state["runtime_id"]), sig)


if __name__ == "__main__":
    sys.exit(main())
