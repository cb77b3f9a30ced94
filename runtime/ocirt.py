"""The OCI runtime behind a small interface: :class:`OciRuntime`, implemented by :class:`Runc`.

dockyard keeps its runtime state in a directory of its own (``--root``), never the runtime's system
default, so it never sees or touches containers other tools made. Every method names the container by
the id given at ``create``/``run``. Errors are :class:`OciRuntimeError` carrying the runtime's own
message; :class:`ContainerNotFoundError` when the id is unknown. crun could implement the same
interface (same command line), once it supports the host's cgroup layout.
"""

from __future__ import annotations

import json
import signal as signals
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol

StdioTarget = int | IO[Any] | None  # what subprocess accepts for one stream; None inherits ours
COMMAND_TIMEOUT = 60.0  # seconds for a management command (state, kill, delete, start)


class OciRuntimeError(RuntimeError):
    """The runtime refused or failed (or could not be run at all); ``str()`` is its message."""


class ContainerNotFoundError(OciRuntimeError):
    """No container with that id in this runtime root."""


class StartError(OciRuntimeError):
    """The container's process could not be started; ``exit_code`` is docker's code for that (126/127/125)."""

    @property
    def exit_code(self) -> int:
        return start_failure_code(str(self))


def start_failure_code(message: str) -> int:
    """Docker's exit code for a failed start: 127 command not found, 126 not executable, else 125."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered or "exec format error" in lowered:
        return 126
    return 125


class Stdio(NamedTuple):
    """The three streams of a foreground process (each: a file, an fd, ``subprocess.DEVNULL`` or None)."""

    stdin: StdioTarget = None
    stdout: StdioTarget = None
    stderr: StdioTarget = None


INHERIT = Stdio()  # the caller's own stdin, stdout and stderr


class RuntimeState(NamedTuple):
    """``runc state``: status is ``creating``, ``created``, ``running``, ``paused`` or ``stopped``."""

    id: str
    status: str
    pid: int
    bundle: str
    created: str


class OciRuntime(Protocol):
    """What dockyard needs from an OCI runtime. ``name``, ``root`` and ``binary`` rebuild it elsewhere."""

    @property
    def name(self) -> str: ...

    @property
    def root(self) -> Path: ...

    @property
    def binary(self) -> str: ...

    def create(self, container_id: str, bundle: Path, *, stdio: Stdio = ..., pid_file: Path | None = None) -> None:
        """Create the container (its process waits for :meth:`start`)."""

    def start(self, container_id: str) -> None:
        """Start the process of a created container."""

    def run_command(
        self,
        container_id: str,
        bundle: Path,
        *,
        pid_file: Path | None = None,
        keep: bool = False,
        log: Path | None = None,
    ) -> list[str]:
        """The argv that runs the container in the foreground (for callers that manage the process)."""

    def run(self, container_id: str, bundle: Path, *, stdio: Stdio = ..., keep: bool = False) -> int:
        """Run the container in the foreground with ``stdio`` passed through; its exit code (128+n: signal n)."""

    def kill(self, container_id: str, sig: int = signals.SIGTERM, *, all_processes: bool = False) -> None:
        """Send ``sig`` to the container's init process (or to all its processes)."""

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """Remove a stopped container (``force``: kill it first); its cgroup goes with it."""

    def state(self, container_id: str) -> RuntimeState:
        """The runtime's view of the container."""

    def exists(self, container_id: str) -> bool:
        """True when the runtime has state for the container (cheap: no process is run)."""

    def exec(self, container_id: str, process: Mapping[str, Any], *, stdio: Stdio = ...) -> int:
        """Run ``process`` (a spec ``process`` object) in the container in the foreground; its exit code."""


def _logged_error(log: str) -> str | None:
    """The last error entry of a runtime's JSON log (``--log-format json``), if any."""
    for line in reversed(log.splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", "")).strip()
    return None


def _last_line(stderr: str) -> str:
    """The runtime's message on stderr: its last non-empty line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _error(message: str) -> OciRuntimeError:
    if "does not exist" in message or "container not found" in message:
        return ContainerNotFoundError(message)
    if "unable to start container process" in message:
        return StartError(message)
    return OciRuntimeError(message)


def failure_in_log(log: Path) -> OciRuntimeError | None:
    """The error a runtime recorded in its JSON ``--log`` file, if any (a container's own exit is none)."""
    message = _logged_error(log.read_text(errors="replace")) if log.exists() else None
    return None if message is None else _error(message)


def exit_code(returncode: int) -> int:
    """A shell-style exit code: a process killed by signal n (Popen's ``-n``) becomes 128+n."""
    return 128 - returncode if returncode < 0 else returncode


class Runc:
    """:class:`OciRuntime` on the ``runc`` binary with state under ``root`` (dockyard's, never ``/run/runc``)."""

    def __init__(self, root: Path, binary: str = "runc") -> None:
        self._root = Path(root).absolute()
        self._binary = binary

    @property
    def name(self) -> str:
        return "runc"

    @property
    def root(self) -> Path:
        return self._root

    @property
    def binary(self) -> str:
        return self._binary

    def _base(self, log: Path | None = None) -> list[str]:
        argv = [self._binary, "--root", str(self._root)]
        if log is not None:
            argv += ["--log", str(log), "--log-format", "json"]
        return argv

    def _call(self, *args: str) -> str:
        """Run a management command; its stdout, or :class:`OciRuntimeError` with its message."""
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            done = subprocess.run(
                [*self._base(), *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OciRuntimeError(f"{self._binary} {args[0]}: {exc}") from None
        if done.returncode != 0:
            raise _error(_last_line(done.stderr))
        return done.stdout

    def _foreground(self, argv: Sequence[str], stdio: Stdio, log: Path) -> int:
        """Run ``argv`` with ``stdio`` passed through; its exit code. runc's own failure is raised."""
        try:
            proc = subprocess.Popen(argv, stdin=stdio.stdin, stdout=stdio.stdout, stderr=stdio.stderr)
        except OSError as exc:
            raise OciRuntimeError(f"cannot run {self._binary}: {exc}") from None
        with proc:
            code = exit_code(proc.wait())
        failure = failure_in_log(log)
        if failure is not None:
            raise failure
        return code

    def create(self, container_id: str, bundle: Path, *, stdio: Stdio = INHERIT, pid_file: Path | None = None) -> None:
        with tempfile.TemporaryDirectory(prefix="dockyard-runc-") as tmp:
            log = Path(tmp) / "log.json"
            argv = [*self._base(log), "create", "--bundle", str(bundle)]
            argv += ["--pid-file", str(pid_file)] if pid_file else []
            self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self._foreground([*argv, container_id], stdio, log) != 0:
                raise OciRuntimeError(f"runc create {container_id} failed")

    def start(self, container_id: str) -> None:
        self._call("start", container_id)

    def run_command(
        self,
        container_id: str,
        bundle: Path,
        *,
        pid_file: Path | None = None,
        keep: bool = False,
        log: Path | None = None,
    ) -> list[str]:
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        argv = [*self._base(log), "run", "--bundle", str(bundle)]
        argv += ["--pid-file", str(pid_file)] if pid_file else []
        argv += ["--keep"] if keep else []
        return [*argv, container_id]

    def run(self, container_id: str, bundle: Path, *, stdio: Stdio = INHERIT, keep: bool = False) -> int:
        with tempfile.TemporaryDirectory(prefix="dockyard-runc-") as tmp:
            log = Path(tmp) / "log.json"
            return self._foreground(self.run_command(container_id, bundle, keep=keep, log=log), stdio, log)

    def kill(self, container_id: str, sig: int = signals.SIGTERM, *, all_processes: bool = False) -> None:
        self._call("kill", *(["--all"] if all_processes else []), container_id, str(int(sig)))

    def delete(self, container_id: str, *, force: bool = False) -> None:
        self._call("delete", *(["--force"] if force else []), container_id)

    def state(self, container_id: str) -> RuntimeState:
        doc = json.loads(self._call("state", container_id))
        return RuntimeState(
            id=str(doc["id"]),
            status=str(doc["status"]),
            pid=int(doc.get("pid") or 0),
            bundle=str(doc.get("bundle", "")),
            created=str(doc.get("created", "")),
        )

    def exists(self, container_id: str) -> bool:
        return (self._root / container_id / "state.json").exists()

    def exec(self, container_id: str, process: Mapping[str, Any], *, stdio: Stdio = INHERIT) -> int:
        with tempfile.TemporaryDirectory(prefix="dockyard-runc-") as tmp:
            process_file = Path(tmp) / "process.json"
            process_file.write_text(json.dumps(process))
            log = Path(tmp) / "log.json"
            argv = [*self._base(log), "exec", "--process", str(process_file), container_id]
            return self._foreground(argv, stdio, log)


RUNTIMES: Mapping[str, type[Runc]] = {"runc": Runc}


def runtime_named(name: str, root: Path, binary: str | None = None) -> OciRuntime:
    """The runtime called ``name`` (``runc``) with state under ``root``; unknown names are ValueError."""
    try:
        kind = RUNTIMES[name]
    except KeyError:
        raise ValueError(f"unknown OCI runtime {name!r} (known: {', '.join(sorted(RUNTIMES))})") from None
    return kind(root) if binary is None else kind(root, binary)
