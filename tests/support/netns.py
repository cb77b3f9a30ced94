"""Two "hosts" on one machine: network namespaces made by the test, joined by a veth pair.

The recipe of ../shared/MACHINE.md: addresses (10.231.X.1/30 and 10.231.X.2/30) are set only on the veth
ends inside the two namespaces; the root namespace gets no address or route into that range, and the
namespaces get no default route, so nothing can leave the machine. Commands run inside a namespace with
``nsenter --net=/run/netns/NAME`` (``ip netns exec`` would remount /sys and hide the cgroup mounts runc
needs). Everything is deleted at the end, by name.
"""

from __future__ import annotations

import random
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.clients import Skopeo, ToolHome
from tests.support.server import free_port, run_dockyard, stop_process
from tests.support.tools import require_root, require_tool


@dataclass(frozen=True)
class Host:
    """One namespace: its name, its address on the link, and how to run a command inside it."""

    netns: str
    address: str

    def command(self, *args: str) -> list[str]:
        """``args`` wrapped to run inside this host's network namespace."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", *args]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@contextmanager
def two_hosts() -> Iterator[tuple[Host, Host]]:
    """Two namespaces joined by a veth pair; deleted (with the veth) on exit."""
    require_root()
    require_tool("ip")
    require_tool("nsenter")
    tag = secrets.token_hex(3)
    subnet = random.randint(0, 255)
    first, second = Host(f"dy-{tag}-a", f"10.231.{subnet}.1"), Host(f"dy-{tag}-b", f"10.231.{subnet}.2")
    created: list[str] = []
    try:
        for host in (first, second):
            _ip("netns", "add", host.netns)
            created.append(host.netns)
        veth_a, veth_b = f"dyv{tag}a", f"dyv{tag}b"
        _ip("link", "add", veth_a, "netns", first.netns, "type", "veth", "peer", "name", veth_b, "netns", second.netns)
        for host, veth in ((first, veth_a), (second, veth_b)):
            _ip("-n", host.netns, "addr", "add", f"{host.address}/30", "dev", veth)
            _ip("-n", host.netns, "link", "set", veth, "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
        yield first, second
    finally:
        for netns in created:  # deleting a namespace deletes its veth end, and with it the pair
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)


@dataclass(frozen=True)
class RemoteRegistry:
    """A ``dockyard serve`` inside ``host``'s namespace, listening on the host's link address."""

    host: Host
    address: str  # HOST:PORT as the other namespace reaches it


def wait_inside(host: Host, url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll ``url`` from inside ``host``'s namespace until it answers."""
    probe = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the registry exited with {process.returncode}")
        if subprocess.run(host.command(sys.executable, "-c", probe), capture_output=True, timeout=30).returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer from inside {host.netns}")


@contextmanager
def registry_inside(host: Host, workdir: Path) -> Iterator[RemoteRegistry]:
    """``dockyard serve`` (open, filesystem storage under ``workdir``) on ``host``'s link address; stopped by pid."""
    address = f"{host.address}:{free_port()}"
    with (workdir / "registry.log").open("wb") as log:
        command = [sys.executable, "-m", "dockyard", "serve", "--listen", address, "--data", str(workdir / "data")]
        process = subprocess.Popen(host.command(*command), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_inside(host, f"http://{address}/v2/", process)
            yield RemoteRegistry(host, address)
        finally:
            stop_process(process)


def dockyard_on(host: Host, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dockyard --root ROOT/state ARGS`` inside ``host``'s namespace, with credentials under ``root``."""
    env = {"DOCKER_CONFIG": str(root / "docker-config"), "HOME": str(root / "home")}
    return run_dockyard("--root", str(root / "state"), *args, env=env, prefix=host.command(), timeout=300)


def remove_containers(host: Host, root: Path) -> None:
    """``rm -f`` every container of the dockyard state under ``root`` (test cleanup)."""
    listed = dockyard_on(host, root, "ps", "-a", "-q")
    for container in listed.stdout.split():
        dockyard_on(host, root, "rm", "-f", container)


def push_from(host: Host, workdir: Path, oci_ref: str, target: str) -> None:
    """``skopeo copy OCI_REF docker://TARGET`` (plain HTTP) from inside ``host``; tool state under ``workdir``."""
    skopeo = Skopeo(ToolHome(workdir))
    command = host.command(*skopeo._base(), "copy", "--quiet", "--dest-tls-verify=false", oci_ref, f"docker://{target}")
    pushed = subprocess.run(command, capture_output=True, text=True, timeout=120, env=skopeo.home.env)
    assert pushed.returncode == 0, pushed.stderr
