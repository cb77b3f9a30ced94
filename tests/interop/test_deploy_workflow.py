"""The kit's commit-based deploy workflow (``Dockerfile-free-deploy/workflow``), run as documented on two hosts:
network namespaces joined by a veth pair (tests/support/netns.py; nothing is reachable from the root namespace
and nothing leaves the machine). Host A serves the registry and builds with ``build-and-push.sh``; host B runs
``deploy.sh``; the application answers on host B's port 8080, and its volume outlives the upgrade to v2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.images import ImageFactory
from tests.support.netns import Host, RemoteRegistry, push_from, registry_inside, remove_containers

pytestmark = pytest.mark.interop

WORKFLOW = Path(__file__).resolve().parents[2] / "Dockerfile-free-deploy" / "workflow"
ANSWER_TIMEOUT = 30.0


@pytest.fixture
def registry(hosts: tuple[Host, Host], tmp_path: Path) -> Iterator[RemoteRegistry]:
    with registry_inside(hosts[0], tmp_path) as reg:
        yield reg


def run_script(host: Host, root: Path, script: str, **env: str) -> str:
    """Run one of the workflow's scripts inside ``host`` with dockyard state under ``root``; its output."""
    dockyard = f"{sys.executable} -m dockyard --root {root / 'state'}"
    full_env = {
        **os.environ,
        "DOCKYARD": dockyard,
        "DOCKER_CONFIG": str(root / "docker-config"),
        "HOME": str(root / "home"),
        **env,
    }
    result = subprocess.run(
        host.command("sh", str(WORKFLOW / script)), env=full_env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def fetch_inside(host: Host, url: str) -> str:
    """GET ``url`` from inside ``host``, retrying until the app answers."""
    probe = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=2).read().decode(), end='')"
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while True:
        result = subprocess.run(host.command(sys.executable, "-c", probe), capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            return result.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer inside {host.netns}: {result.stderr[-500:]}")
        time.sleep(0.3)


def test_build_on_a_run_on_b_upgrade_keeps_the_volume(
    hosts: tuple[Host, Host], registry: RemoteRegistry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    host_a, host_b = hosts
    base = image_factory.image("workflow-base")
    base_ref = f"{registry.address}/library/busybox:latest"
    push_from(host_a, tmp_path / "pusher", base.oci_ref, base_ref)
    a_root, b_root = tmp_path / "host-a", tmp_path / "host-b"
    common = {
        "REGISTRY": registry.address,
        "BASE": base_ref,
        "DOCKYARD_FLAGS": f"--insecure-registry {registry.address}",
    }
    try:
        run_script(host_a, a_root, "build-and-push.sh", VERSION="v1", **common)
        run_script(host_b, b_root, "deploy.sh", VERSION="v1", **common)
        assert fetch_inside(host_b, "http://127.0.0.1:8080/version.txt") == "v1\n"
        assert "hello-app" in fetch_inside(host_b, "http://127.0.0.1:8080/")

        run_script(host_a, a_root, "build-and-push.sh", VERSION="v2", **common)
        run_script(host_b, b_root, "deploy.sh", VERSION="v2", **common)
        assert fetch_inside(host_b, "http://127.0.0.1:8080/version.txt") == "v2\n"
        assert fetch_inside(host_b, "http://127.0.0.1:8080/history.txt") == "v1 started\nv2 started\n"
    finally:
        remove_containers(host_a, a_root)
        remove_containers(host_b, b_root)
