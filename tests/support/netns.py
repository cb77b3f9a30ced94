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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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
