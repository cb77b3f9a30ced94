"""A real S3-compatible server for tests: moto in server mode, as its own process on a free loopback port.

Set ``DOCKYARD_TEST_S3_ENDPOINT`` (plus ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``) to run the same
tests against MinIO or AWS instead; buckets are then created and emptied by the tests themselves.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import requests

from tests.support.server import free_port, stop_process, wait_http
from tests.support.tools import require_tool


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        name = f"dockyard-test-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def driver_settings(self, bucket: str, **extra: Any) -> dict[str, Any]:
        return {
            "bucket": bucket,
            "endpoint_url": self.endpoint,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "region": "us-east-1",
            **extra,
        }

    def registry_env(self, bucket: str, **extra: Any) -> dict[str, str]:
        """The ``DOCKYARD_STORAGE__*`` environment that points ``dockyard`` at ``bucket``."""
        settings = self.driver_settings(bucket, **extra)
        return {
            "DOCKYARD_STORAGE__TYPE": "s3",
            **{f"DOCKYARD_STORAGE__{k.upper()}": str(v) for k, v in settings.items()},
        }


def moto_command() -> list[str]:
    venv_moto = Path(sys.executable).with_name("moto_server")
    if venv_moto.exists():
        return [str(venv_moto)]
    found = shutil.which("moto_server")
    return [found] if found else [require_tool("moto_server")]


@contextmanager
def s3_server(workdir: Path) -> Iterator[S3Server]:
    """The configured external endpoint, or a moto server started (and stopped, by pid) here."""
    external = os.environ.get("DOCKYARD_TEST_S3_ENDPOINT")
    if external:
        yield S3Server(external, os.environ.get("AWS_ACCESS_KEY_ID", ""), os.environ.get("AWS_SECRET_ACCESS_KEY", ""))
        return
    port = free_port()
    log = open(workdir / "moto.log", "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        [*moto_command(), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", process=process)
        yield S3Server(f"http://127.0.0.1:{port}", "testing", "testing")
    finally:
        stop_process(process)
        log.close()


@dataclass
class MotoProcess:
    """A moto server on a fixed port that a fault test can kill, freeze and start again (on the same port).

    moto keeps its state in memory: :meth:`kill` loses every bucket and object (a restarted server is empty),
    while :meth:`freeze` (SIGSTOP) keeps them and makes the server hang: connections open, nothing answers,
    until :meth:`thaw` (SIGCONT). Every signal goes to the process started here, by its pid.
    """

    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> S3Server:
        return S3Server(f"http://127.0.0.1:{self.port}", "testing", "testing")

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*moto_command(), "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=subprocess.STDOUT
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until moto answers (its first answer after a start can take seconds on a busy machine)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                wait_http(f"http://127.0.0.1:{self.port}/", timeout=deadline - time.monotonic(), process=self.process)
                return
            except requests.Timeout:
                continue
        raise TimeoutError(f"moto on port {self.port} did not answer within {timeout}s")

    def kill(self) -> None:
        """SIGKILL and reap: the port refuses connections from now on."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.thaw()
            stop_process(self.process)


@contextmanager
def restartable_moto(workdir: Path) -> Iterator[MotoProcess]:
    """A local moto server (never the external endpoint: the test must own the process) on a free port."""
    moto = MotoProcess(free_port(), workdir / "moto.log")
    moto.start()
    try:
        yield moto
    finally:
        moto.stop()
