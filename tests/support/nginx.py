"""A private nginx (Debian's package) in front of dockyard replicas, with the deployment kit's own site config.

The kit's ``Dockerfile-free-deploy/nginx/dockyard.conf`` is used as shipped, templated only for ports and paths:
the upstream replica addresses, the listening port (on 127.0.0.1) and the certificate files. The main config
keeps every file nginx writes (pid, logs, temp bodies) under the test's directory; nginx runs in the
foreground (``daemon off``) and is stopped by pid.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port, stop_process
from tests.support.tools import require_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
KIT_SITE = REPO_ROOT / "Dockerfile-free-deploy" / "nginx" / "dockyard.conf"
READY_TIMEOUT = 15.0

MAIN_CONF = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client-body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/dockyard.conf;
}}
"""


@dataclass(frozen=True)
class Nginx:
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"


def render_site(upstreams: Sequence[int], port: int, cert: Path, key: Path) -> str:
    """The kit's site config with our replica ports, listening port and certificate paths; nothing else changed."""
    text = KIT_SITE.read_text()
    servers = re.findall(r"server 127\.0\.0\.1:\d+", text)
    if len(servers) != len(upstreams):
        raise AssertionError(f"the kit's nginx config names {len(servers)} replicas, the test runs {len(upstreams)}")
    for old, new_port in zip(servers, upstreams, strict=True):
        text = text.replace(old, f"server 127.0.0.1:{new_port}", 1)
    text = text.replace("listen 443 ssl", f"listen 127.0.0.1:{port} ssl")
    return text.replace("/etc/nginx/tls/registry.crt", str(cert)).replace("/etc/nginx/tls/registry.key", str(key))


@contextmanager
def running_nginx(workdir: Path, upstreams: Sequence[int], cert: Path, key: Path) -> Iterator[Nginx]:
    """nginx with the kit's site config on a free 127.0.0.1 port (TLS with ``cert``/``key``); stopped by pid."""
    binary = require_tool("nginx")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (workdir / "dockyard.conf").write_text(render_site(upstreams, port, cert, key))
    (workdir / "nginx.conf").write_text(MAIN_CONF.format(dir=workdir))
    check = subprocess.run(
        [binary, "-t", "-c", str(workdir / "nginx.conf"), "-p", str(workdir), "-e", str(workdir / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise AssertionError(f"nginx rejects the kit's config: {check.stderr}")
    with open(workdir / "stderr.log", "ab") as log:
        process = subprocess.Popen(
            [binary, "-c", str(workdir / "nginx.conf"), "-p", str(workdir), "-e", str(workdir / "error.log")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(port, process)
        yield Nginx(process, port, workdir)
    finally:
        stop_process(process)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nginx did not listen on 127.0.0.1:{port} within {READY_TIMEOUT}s")
