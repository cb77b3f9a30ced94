"""Both registries side by side on free 127.0.0.1 ports, each on its own fresh storage.

Reuses the process helpers of ``bench/s3_push_pull.py`` (start by command with a log file, stop by pid through
the ``ExitStack``, wait for a 200, the moto server, bucket creation, Distribution's S3 configuration). Both
servers log warnings only and no access log, so neither pays for per-request logging:

- dockyard: ``dockyard serve --listen 127.0.0.1:PORT`` with ``--data DIR`` (filesystem) or ``DOCKYARD_STORAGE__*``
  (S3), auth none and one worker per core (the defaults), plus any ``extra_args`` (e.g. ``--workers 1``);
- Distribution 2.8: ``docker-registry serve distribution.yml`` (``s3_push_pull.distribution_config`` around a
  filesystem ``rootdirectory`` or ``s3_push_pull.s3_storage``), ``blobdescriptor: inmemory`` as in the
  ``registry:2`` image, upload purging off, started without ``AWS_CA_BUNDLE`` (its AWS SDK panics with it).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.s3_push_pull import (
    DISTRIBUTION_BIN,
    BenchError,
    Server,
    create_buckets,
    distribution_config,
    distribution_env,
    dockyard_s3_env,
    s3_storage,
    start_moto,
    start_server,
    venv_tool,
    wait_ready,
)
from tests.support.server import free_port

__all__ = ["BenchError", "Registry", "distribution_version", "start_registries"]
QUIET_DOCKYARD = {"DOCKYARD_ACCESS_LOG": "false", "DOCKYARD_LOG_LEVEL": "warning"}
QUIET_DISTRIBUTION = {"REGISTRY_LOG_LEVEL": "warn", "REGISTRY_LOG_ACCESSLOG_DISABLED": "true"}


@dataclass(frozen=True)
class Registry:
    """A running registry: ``name`` is ``dockyard`` or ``distribution``; ``storage`` its filesystem root (None
    on S3)."""

    name: str
    server: Server
    storage: Path | None

    @property
    def pid(self) -> int:
        return self.server.process.pid

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def url(self) -> str:
        return self.server.url


def start_dockyard(
    stack: ExitStack, workdir: Path, extra_args: Sequence[str], s3: tuple[str, str] | None = None
) -> Registry:
    """``dockyard serve`` on filesystem storage under ``workdir/dockyard-data``, or on ``s3`` = (endpoint,
    bucket); returns once ``/healthz`` answers 200."""
    port = free_port()
    root = workdir / "dockyard-data"
    storage = ["--data", str(root)] if s3 is None else []
    env = {**os.environ, **QUIET_DOCKYARD, **(dockyard_s3_env(*s3) if s3 else {})}
    cmd = [str(venv_tool("dockyard")), "serve", "--listen", f"127.0.0.1:{port}", *storage, *extra_args]
    server = start_server(stack, "dockyard", cmd, port, workdir, env)
    wait_ready(server, "/healthz")
    return Registry("dockyard", server, root if s3 is None else None)


def start_distribution(stack: ExitStack, workdir: Path, s3: tuple[str, str] | None = None) -> Registry:
    """Distribution 2.8 on filesystem storage under ``workdir/distribution-data``, or on ``s3``; returns once
    ``/v2/`` answers 200."""
    if not DISTRIBUTION_BIN.exists():
        raise BenchError(f"{DISTRIBUTION_BIN} not found (make bench installs it: apt-get install docker-registry)")
    port = free_port()
    root = workdir / "distribution-data"
    config = workdir / "distribution.yml"
    storage = f"  filesystem:\n    rootdirectory: {root}\n" if s3 is None else s3_storage(*s3)
    config.write_text(distribution_config(port, storage, level="warn" if s3 is None else "info"))
    env = distribution_env() | QUIET_DISTRIBUTION
    server = start_server(stack, "distribution", [str(DISTRIBUTION_BIN), "serve", str(config)], port, workdir, env)
    wait_ready(server, "/v2/")
    return Registry("distribution", server, root if s3 is None else None)


def start_registries(
    stack: ExitStack, workdir: Path, s3: bool, dockyard_args: Sequence[str] = ()
) -> tuple[Registry, Registry]:
    """Start (dockyard, Distribution); with ``s3``, first one moto server with a bucket for each. Everything is
    stopped by pid when ``stack`` closes."""
    if not s3:
        return start_dockyard(stack, workdir, dockyard_args), start_distribution(stack, workdir)
    moto = start_moto(stack, workdir)
    buckets = [f"bench-{name}-{uuid.uuid4().hex[:8]}" for name in ("dockyard", "distribution")]
    create_buckets(moto.url, buckets)
    return (
        start_dockyard(stack, workdir, dockyard_args, (moto.url, buckets[0])),
        start_distribution(stack, workdir, (moto.url, buckets[1])),
    )


def distribution_version() -> str:
    """``2.8.2+ds1`` (the last word of ``docker-registry --version``), or ``?``."""
    try:
        out = subprocess.run([str(DISTRIBUTION_BIN), "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    words = out.stdout.split()
    return words[-1] if words else "?"
