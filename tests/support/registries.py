"""Live registries for the runtime tests: dockyard (open or token mode) and CNCF Distribution 2.8 (Debian's
``docker-registry``, open or with htpasswd Basic auth), and pushing test images into them with skopeo."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from runtime.references import Reference, parse
from tests.support.clients import Skopeo
from tests.support.images import Image, MultiArchImage
from tests.support.server import LiveRegistry, free_port, live_registry, stop_process, wait_http
from tests.support.tools import require_tool

ALICE = ("alice", "alice-password-1")
TOKEN_ENV = {
    "DOCKYARD_AUTH__MODE": "token",
    "DOCKYARD_AUTH__BCRYPT_ROUNDS": "4",
    "DOCKYARD_AUTH__LOGIN_FAILURES": "100",
}


# -- live registries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    """A live registry under test: ``kind`` is ``dockyard`` or ``distribution``."""

    kind: str
    host: str
    log: Path
    data: Path

    def ref(self, name: str) -> Reference:
        return parse(f"{self.host}/{name}")


@contextmanager
def distribution_registry(workdir: Path, htpasswd: Path | None = None, auth: str = "") -> Iterator[Registry]:
    """CNCF Distribution 2.8 on a free loopback port with filesystem storage under ``workdir``; Basic auth when
    ``htpasswd`` is given, else ``auth`` as the config's whole ``auth:`` section (e.g. token auth); stopped by
    pid. Its Go AWS SDK panics with ``AWS_CA_BUNDLE`` set (MACHINE.md)."""
    binary = require_tool("docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if htpasswd:
        auth = f"auth:\n  htpasswd:\n    realm: dockyard-test\n    path: {htpasswd}\n"
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    env = {name: value for name, value in os.environ.items() if name != "AWS_CA_BUNDLE"}
    log = workdir / "registry.log"
    with open(log, "wb") as log_fh:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log_fh, stderr=subprocess.STDOUT, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/", process=process)
        yield Registry("distribution", f"127.0.0.1:{port}", log, workdir / "data")
    finally:
        stop_process(process)


def add_user(data: Path, name: str, password: str) -> None:
    """``dockyard user add NAME --password-stdin`` on the registry's data directory."""
    made = subprocess.run(
        [sys.executable, "-m", "dockyard", "user", "add", name, "--password-stdin", "--data", str(data)],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **TOKEN_ENV},
        check=False,
    )
    assert made.returncode == 0, made.stderr


@contextmanager
def token_dockyard(workdir: Path) -> Iterator[LiveRegistry]:
    """A live dockyard in token mode with the user alice."""
    add_user(workdir / "registry-data", *ALICE)
    with live_registry(workdir, env=TOKEN_ENV) as registry:
        yield registry


def htpasswd_file(path: Path, user: str, password: str) -> Path:
    result = subprocess.run(
        [require_tool("htpasswd"), "-Bbn", user, password], capture_output=True, text=True, check=True, timeout=30
    )
    path.write_text(result.stdout)
    return path


def push_image(skopeo: Skopeo, image: Image | MultiArchImage, host: str, name: str, *extra: str) -> Reference:
    """Copy an OCI layout image to ``host/name`` with skopeo; returns the reference."""
    skopeo.copy(image.oci_ref, f"docker://{host}/{name}", *extra)
    return parse(f"{host}/{name}")
