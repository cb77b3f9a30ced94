"""A PostgreSQL cluster of the test's own, from Debian's ``postgresql`` package.

``postgres_cluster()`` runs ``initdb`` into a fresh directory and starts the server with ``pg_ctl`` on a free
127.0.0.1 port (its Unix socket in that directory too), with trust authentication and no fsync: a scratch
database, fast and private. Run as root (as the tests are here), the directory is made with ``tempfile.mkdtemp``
outside pytest's root-only temp tree and given to the ``postgres`` user, and the server runs as that user
through ``runuser`` (PostgreSQL refuses to run as root); run as anyone else, it runs as that user. At the end the
server is stopped with ``pg_ctl stop -m fast`` (which signals the postmaster by its pid) and the directory is
removed. Each test gets its own database (``create_database``), so tests stay independent under pytest-xdist.

The binaries are looked up in ``/usr/lib/postgresql/<version>/bin`` (newest first), then on ``PATH``; missing,
the test fails under ``CI=true`` and is skipped elsewhere.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.support.server import free_port
from tests.support.tools import in_ci, require_tool

__all__ = [
    "PostgresCluster",
    "create_durable_database",
    "postgres_bindir",
    "postgres_cluster",
    "start_again",
    "stop_immediately",
]

DEBIAN_ROOT = Path("/usr/lib/postgresql")
OS_USER = "postgres"
# Scratch settings: no durability (the cluster dies with the test session), small memory, quick checkpoints.
SERVER_SETTINGS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c shared_buffers=16MB -c max_connections=100 -c max_wal_size=256MB"
)


@dataclass(frozen=True)
class PostgresCluster:
    """A running cluster: superuser ``postgres`` (trust auth) on ``127.0.0.1:port``."""

    bindir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL (asyncpg driver) of ``database``."""
        return f"postgresql+asyncpg://{OS_USER}@127.0.0.1:{self.port}/{database}"

    async def create_database(self) -> str:
        """A new, empty database with a random name; returns the name."""
        name = f"test_{secrets.token_hex(8)}"
        await self._admin(f'CREATE DATABASE "{name}"')
        return name

    async def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whoever is still connected."""
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _admin(self, statement: str) -> None:
        connection = await asyncpg.connect(host="127.0.0.1", port=self.port, user=OS_USER, database="postgres")
        try:
            await connection.execute(statement)
        finally:
            await connection.close()


def _unavailable(message: str) -> None:
    """Fail under CI (a missing tool is a broken machine there), skip elsewhere."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def _version(path: Path) -> tuple[int, ...]:
    parts = path.parent.name.split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else (0,)


def postgres_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: Debian's newest version, else the one on ``PATH``."""
    candidates = sorted(DEBIAN_ROOT.glob("*/bin"), key=_version, reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return Path(require_tool("pg_ctl")).resolve().parent


def _run_as_owner() -> list[str]:
    """The command prefix that runs PostgreSQL's tools as a user it accepts (never root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        _unavailable(f"user {OS_USER!r} is missing (it comes with Debian's postgresql package)")
    return [require_tool("runuser"), "-u", OS_USER, "--"]


def _make_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="dockyard-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user=OS_USER, group=OS_USER)
    return root


def _run(command: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120, check=False)


def _initdb(bindir: Path, root: Path, prefix: list[str]) -> None:
    command = [*prefix, str(bindir / "initdb"), "-D", str(root / "data"), "-U", OS_USER, "-A", "trust"]
    done = _run([*command, "-E", "UTF8", "--locale=C", "--no-sync"], root)
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")


def _start(bindir: Path, root: Path, prefix: list[str]) -> int:
    """Start the server on a free port (a few tries: another process may take the port first); return it."""
    log = root / "server.log"
    for _attempt in range(3):
        port = free_port()
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 {SERVER_SETTINGS}"
        command = [*prefix, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(log), "-w", "-t", "60"]
        if _run([*command, "-o", options, "start"], root).returncode == 0:
            return port
    raise RuntimeError(f"PostgreSQL did not start; its log says:\n{log.read_text(errors='replace')[-2000:]}")


def _stop(bindir: Path, root: Path, prefix: list[str]) -> None:
    """``pg_ctl stop -m fast``; if that fails, SIGKILL the postmaster by the pid in its pid file."""
    done = _run([*prefix, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"], root)
    pid_file = root / "data" / "postmaster.pid"
    if done.returncode != 0 and pid_file.exists():
        # The first line of the pid file is the postmaster's pid: stop exactly the server this test started.
        pid = int(pid_file.read_text().split()[0])
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A fresh cluster for the duration of the ``with`` block; stopped and deleted afterwards."""
    bindir = postgres_bindir()
    prefix = _run_as_owner()
    root = _make_root()
    try:
        _initdb(bindir, root, prefix)
        yield PostgresCluster(bindir=bindir, root=root, port=_start(bindir, root, prefix))
    finally:
        if (root / "data" / "postmaster.pid").exists():
            _stop(bindir, root, prefix)
        shutil.rmtree(root, ignore_errors=True)


def stop_immediately(cluster: PostgresCluster) -> None:
    """``pg_ctl stop -m immediate``: the server quits at once, without a checkpoint (as after a crash), and every
    client connection breaks. :func:`start_again` brings it back on the same port."""
    command = [*_run_as_owner(), str(cluster.bindir / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "-w"]
    done = _run([*command, "stop"], cluster.root)
    if done.returncode != 0:
        raise RuntimeError(f"pg_ctl stop failed: {done.stderr.strip() or done.stdout.strip()}")


def start_again(cluster: PostgresCluster) -> None:
    """Start a stopped cluster on its port (it runs crash recovery first after :func:`stop_immediately`)."""
    options = f"-p {cluster.port} -k {cluster.root} -c listen_addresses=127.0.0.1 {SERVER_SETTINGS}"
    command = [*_run_as_owner(), str(cluster.bindir / "pg_ctl"), "-D", str(cluster.data), "-l"]
    done = _run([*command, str(cluster.root / "server.log"), "-w", "-t", "60", "-o", options, "start"], cluster.root)
    if done.returncode != 0:
        raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip() or done.stdout.strip()}")


async def create_durable_database(cluster: PostgresCluster) -> str:
    """A new database whose commits are durable across a server crash (``synchronous_commit=on``, unlike the
    cluster's scratch default): for tests that stop the server with ``-m immediate`` and check nothing was lost."""
    name = await cluster.create_database()
    await cluster._admin(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
    return name
