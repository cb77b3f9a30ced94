"""A live ``dockyard serve`` process on a free loopback port, stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveRegistry:
    """A running registry: ``host`` is ``127.0.0.1:PORT``, ``url`` its base URL."""

    process: subprocess.Popen[bytes]
    port: int
    data: Path
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a process this test started, by its pid: SIGTERM, then SIGKILL after ``timeout``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_http(url: str, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a test's ``dockyard serve``: one worker process unless the test asks for more (with
    ``--workers`` or ``DOCKYARD_WORKERS`` in ``extra``): a test server is small, and the session-wide
    ``shared_registry`` and ``tests/registry/test_workers.py`` cover several workers."""
    return {"DOCKYARD_WORKERS": "1", **os.environ, **(extra or {})}


def start_registry(workdir: Path, port: int, *extra_args: str, env: dict[str, str] | None = None) -> LiveRegistry:
    """Start ``dockyard serve`` on ``port`` with its data under ``workdir`` (or the storage ``env`` configures, when
    it sets ``DOCKYARD_STORAGE__TYPE``) and wait until it answers. The caller stops it (``stop_process``); starting
    again with the same ``workdir`` and ``port`` restarts the same registry (crash tests)."""
    data = workdir / "registry-data"
    log = workdir / "registry.log"
    storage = [] if env and "DOCKYARD_STORAGE__TYPE" in env else ["--data", str(data)]
    cmd = [sys.executable, "-m", "dockyard", "serve", "--listen", f"127.0.0.1:{port}", *storage, *extra_args]
    with open(log, "ab") as log_fh:
        process = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=server_env(env))
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/", process=process)
    except BaseException:
        stop_process(process)
        raise
    return LiveRegistry(process, port, data, log)


@contextmanager
def live_registry(workdir: Path, *extra_args: str, env: dict[str, str] | None = None) -> Iterator[LiveRegistry]:
    """Start ``dockyard serve`` (see :func:`start_registry`) on a free port; stop it (by pid) on exit."""
    registry = start_registry(workdir, free_port(), *extra_args, env=env)
    try:
        yield registry
    finally:
        stop_process(registry.process)


def run_dockyard(
    *args: str,
    stdin: str = "",
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dockyard ARGS`` as a user would (``prefix`` wraps it, e.g. in ``nsenter``); ``env``
    adds to this process's environment. Never raises on a non-zero exit: tests check the result."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "dockyard", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )
