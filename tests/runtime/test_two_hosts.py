"""'Another host': the registry serves from one network namespace, ``dockyard`` pulls from a second one,
joined only by a veth pair (tests/support/netns.py). Nothing is reachable through the root namespace."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.images import ImageFactory
from tests.support.netns import Host, RemoteRegistry, dockyard_on, push_from, registry_inside, remove_containers

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def image_factory(tmp_path_factory: pytest.TempPathFactory) -> ImageFactory:
    return ImageFactory(tmp_path_factory.mktemp("two-hosts-images"))


@pytest.fixture
def remote_registry(hosts: tuple[Host, Host], tmp_path: Path) -> Iterator[RemoteRegistry]:
    with registry_inside(hosts[0], tmp_path) as registry:
        yield registry


def test_image_pushed_on_one_host_is_pulled_on_the_other(
    hosts: tuple[Host, Host], remote_registry: RemoteRegistry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    server_host, client_host = hosts
    image = image_factory.image("two-hosts")
    push_from(server_host, tmp_path / "pusher", image.oci_ref, f"{remote_registry.address}/ns/app:v1")

    reference = f"{remote_registry.address}/ns/app:v1"
    refused = dockyard_on(client_host, tmp_path / "client", "pull", reference)
    assert refused.returncode == 1  # not loopback: plain HTTP only when the registry is listed as insecure
    assert len(refused.stderr.strip().splitlines()) == 1
    pulled = dockyard_on(
        client_host, tmp_path / "client", "pull", "--insecure-registry", remote_registry.address, reference
    )
    assert pulled.returncode == 0, pulled.stderr
    inspected = dockyard_on(client_host, tmp_path / "client", "inspect", reference)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)[0]["Id"] == image.config_digest

    root_addresses = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, timeout=30).stdout
    assert "10.231." not in root_addresses  # the link exists only inside the two namespaces


def test_commit_on_one_host_runs_on_the_other_and_the_volume_outlives_containers(
    hosts: tuple[Host, Host], remote_registry: RemoteRegistry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    """The issue's journey: host A pulls, runs with a volume, changes the container, commits and pushes;
    host B pulls the committed image and runs it with the change; the volume's data outlives both of
    host A's containers."""
    host_a, host_b = hosts
    image = image_factory.image("journey")
    push_from(host_a, tmp_path / "pusher", image.oci_ref, f"{remote_registry.address}/ns/journey:v1")
    address, a_root, b_root = remote_registry.address, tmp_path / "host-a", tmp_path / "host-b"
    v1, v2 = f"{address}/ns/journey:v1", f"{address}/ns/journey:v2"
    insecure = ("--insecure-registry", address)

    def on_a(*args: str) -> subprocess.CompletedProcess[str]:
        result = dockyard_on(host_a, a_root, *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    try:
        on_a("pull", *insecure, v1)
        on_a("volume", "create", "journey-data")
        change = "echo kept > /data/note && echo changed > /changed.txt && rm /hello.txt"
        on_a("run", "--name", "first", "-v", "journey-data:/data", v1, "sh", "-c", change)
        on_a("commit", "-m", "the change", "first", v2)
        on_a("push", *insecure, v2)
        on_a("rm", "first")
        second = on_a("run", "--rm", "-v", "journey-data:/data", v2, "sh", "-c", "cat /data/note /changed.txt")
        assert second.stdout == "kept\nchanged\n"

        pulled = dockyard_on(host_b, b_root, "pull", *insecure, v2)
        assert pulled.returncode == 0, pulled.stderr
        ran = dockyard_on(host_b, b_root, "run", "--rm", v2, "sh", "-c", "cat /changed.txt; test ! -e /hello.txt")
        assert (ran.returncode, ran.stdout) == (0, "changed\n"), ran.stderr
        assert "kept" in on_a("run", "--rm", "-v", "journey-data:/data", v1, "cat", "/data/note").stdout
    finally:
        remove_containers(host_a, a_root)
        remove_containers(host_b, b_root)
