"""A private ``dockerd`` (vfs storage, no bridge, no iptables) on its own unix socket, stopped by pid.

Everything it keeps lives in one short temp dir ``D`` (a unix socket path must stay under 108 bytes):
``D/root`` (data root), ``D/exec`` (exec root, with the containerd it spawns), ``D/sock``, ``D/pid``,
``D/daemon.json`` (so ``/etc/docker/daemon.json`` is never read) and ``D/key.json`` (the daemon's
trust key, which would otherwise be written to ``/etc/docker``). ``/var/lib/docker`` and the default
socket are never touched. 127.0.0.0/8 is an insecure registry by default, so plain HTTP pushes work.

dockerd 20.10 and containerd also hard-code two directories under ``/run``: ``/run/docker/plugins``
(the plugin exec root) and ``/run/containerd/s`` (the shims' sockets, made by ``docker run``). So the
daemon runs in a private mount namespace (``unshare --mount --propagation private``) with its own tmpfs
on ``/run``: both land there and vanish with the daemon. ``unshare`` and ``sh -c 'exec ...'`` replace
themselves, so the pid we started is dockerd's own pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import stop_process
from tests.support.tools import require_root, require_tool

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Dockerd:
    """A running private daemon: ``host`` is the ``DOCKER_HOST`` value, ``config_dir`` the client's config."""

    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def socket_path(self) -> Path:
        return self.workdir / "sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def config_dir(self) -> Path:
        return self.workdir / "cfg"

    @property
    def log(self) -> Path:
        return self.workdir / "dockerd.log"


def _socket_answers(path: Path) -> bool:
    """True when the daemon's API answers ``GET /_ping`` with 200 on the unix socket."""
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(path))
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _kill_pid(pid: int, timeout: float) -> None:
    """SIGTERM ``pid``, then SIGKILL it if it is still alive after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def _containerd_pid(workdir: Path) -> int | None:
    """The pid of the containerd this dockerd spawned, if it still runs (its command line names ``workdir``)."""
    pidfile = workdir / "exec" / "containerd" / "containerd.pid"
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(workdir).encode() in cmdline else None


@contextmanager
def running_dockerd() -> Iterator[Dockerd]:
    """Start a private dockerd and yield it once its API answers; stop it (and its containerd) by pid."""
    require_root()
    binary = require_tool("dockerd")
    unshare = require_tool("unshare")
    workdir = Path(tempfile.mkdtemp(prefix="dy-", dir="/tmp"))
    (workdir / "cfg").mkdir()
    (workdir / "cfg" / "config.json").write_text(json.dumps({"auths": {}}))
    (workdir / "daemon.json").write_text(json.dumps({"deprecated-key-path": str(workdir / "key.json")}))
    private_run = 'mount -n -t tmpfs -o mode=0755,size=64m dockyard-run /run && exec "$@"'
    cmd = [
        unshare,
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        private_run,
        "dockerd-private-run",
        binary,
        "--data-root",
        str(workdir / "root"),
        "--exec-root",
        str(workdir / "exec"),
        "--pidfile",
        str(workdir / "pid"),
        "-H",
        f"unix://{workdir / 'sock'}",
        "--config-file",
        str(workdir / "daemon.json"),
        "--storage-driver=vfs",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--log-level=warn",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONFIG", "NOTIFY_SOCKET")}
    with open(workdir / "dockerd.log", "ab") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    daemon = Dockerd(process, workdir)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _socket_answers(daemon.socket_path):
            if process.poll() is not None:
                raise RuntimeError(f"dockerd exited with {process.returncode}:\n{daemon.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"dockerd did not answer within {READY_TIMEOUT}s:\n{daemon.log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield daemon
    finally:
        stop_process(process, STOP_TIMEOUT)
        containerd = _containerd_pid(workdir)  # dockerd stops it; after a SIGKILL it may be left behind
        if containerd is not None:
            _kill_pid(containerd, STOP_TIMEOUT)
        shutil.rmtree(workdir, ignore_errors=True)
