"""Publishing ports (``run -p``) end to end: real runc containers, a busybox ``httpd`` inside the container's own
network namespace, reached from the test through dockyard's userspace port proxy on 127.0.0.1.

Nothing here sends a byte to a non-loopback address, adds an address or route, or touches iptables. The fixtures of
:mod:`tests.runtime.test_cli_containers` give each test a private root; teardown force-removes every container.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.containers import ContainerStore
from runtime.network import PortMapping, PublishError, bind_listeners, parse_publish, proxy_alive, switch_name
from runtime.supervisor import read_state
from tests.runtime.test_cli_containers import (  # noqa: F401 - pytest fixtures used by name
    Dockyard,
    dy,
    factory,
    image,
    wait_until,
)

SERVER = "echo hello-from-container > /tmp/i; exec busybox httpd -f -p 8080 -h /tmp"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when 127.0.0.1:port can be bound (no proxy holds it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def http_get(port: int, path: str = "/i") -> str | None:
    """The body of GET ``path`` on 127.0.0.1:port, or None while nothing answers yet."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.read().decode() if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def proxies_of(container_dir: Path) -> list[int]:
    """Pids of live port proxies serving ``container_dir`` (found through /proc, not the state file)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and proxy_alive(container_dir, int(entry.name)):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry.name}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
                    found.append(int(entry.name))
    return found


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port on 127.0.0.1 held by a listening socket of the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080:80", PortMapping("127.0.0.1", 8080, 80)),
        ("127.0.0.1:1:65535/tcp", PortMapping("127.0.0.1", 1, 65535)),
        ("0.0.0.0:8080:80", PortMapping("0.0.0.0", 8080, 80)),
        ("[::1]:8080:80", PortMapping("::1", 8080, 80)),
    ],
)
def test_parse_publish(text: str, expected: PortMapping) -> None:
    assert parse_publish(text) == expected
    assert parse_publish(str(expected)) == expected


@pytest.mark.parametrize("text", ["80", "a:1:2", "1:2:3:4", "8080:80/udp", "0:80", "8080:70000", "999.1.1.1:1:2", ""])
def test_parse_publish_refuses(text: str) -> None:
    with pytest.raises(PublishError):
        parse_publish(text)


def test_bind_listeners_reports_a_taken_port(held_port: int) -> None:
    free = free_port()
    with pytest.raises(OSError, match="already allocated"):
        bind_listeners([PortMapping("127.0.0.1", free, 1), PortMapping("127.0.0.1", held_port, 1)])
    assert port_is_free(free)  # the first socket was closed again


def test_publish_reaches_a_server_in_a_none_container(dy: Dockyard, image: str) -> None:  # noqa: F811
    port = free_port()
    publish = ("--network", "none", "-p", f"127.0.0.1:{port}:8080")
    cid = dy.ok("run", "-d", "--name", "web", *publish, image, "sh", "-c", SERVER).strip()
    container_dir = dy.root / "containers" / cid
    wait_until(lambda: http_get(port) == "hello-from-container\n")
    bodies = [http_get(port) for _ in range(5)]  # every connection gets its own upstream socket
    assert bodies == ["hello-from-container\n"] * 5
    assert proxies_of(container_dir) == [read_state(container_dir)["proxy_pid"]]
    assert not port_is_free(port)

    dy.ok("stop", "-t", "2", "web")
    assert port_is_free(port)
    assert proxies_of(container_dir) == []

    dy.ok("start", "web")  # published again on start
    wait_until(lambda: http_get(port) == "hello-from-container\n")
    dy.ok("rm", "-f", "web")
    assert port_is_free(port)
    assert proxies_of(container_dir) == []
    assert not container_dir.exists()


def test_proxy_exits_with_the_container(dy: Dockyard, image: str) -> None:  # noqa: F811
    port = free_port()
    script = "busybox nc -l -p 7000 -e cat & sleep 2; exit 0"
    cid = dy.ok("run", "-d", "-p", f"{port}:7000", image, "sh", "-c", script).strip()
    container_dir = dy.root / "containers" / cid

    def echoed() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"ping\n")
                conn.shutdown(socket.SHUT_WR)
                return conn.recv(100) == b"ping\n"
        except OSError:
            return False

    wait_until(echoed)
    wait_until(lambda: "Exited (0)" in dy.ok("ps", "-a"))
    wait_until(lambda: proxies_of(container_dir) == [] and port_is_free(port), timeout=5)


def test_publish_errors(dy: Dockyard, image: str, held_port: int) -> None:  # noqa: F811
    cases = [
        (("run", "-d", "-p", f"127.0.0.1:{held_port}:80", image, "sleep", "100"), 125),
        (("run", "--rm", "-p", f"{held_port}:80", image, "true"), 125),
        (("run", "--rm", "-p", "80:80/udp", image, "true"), 1),
        (("run", "--rm", "-p", "nonsense", image, "true"), 1),
        (("run", "--rm", "--network", "host", "-p", "8080:80", image, "true"), 1),
    ]
    for args, code in cases:
        done = dy.run(*args)
        assert done.returncode == code, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    taken = dy.run("run", "-p", f"{held_port}:80", image, "true")
    assert taken.returncode == 125
    assert "already allocated" in taken.stderr
    assert dy.ok("ps", "-a", "-q") == ""  # nothing left behind by the refused runs


def netns_names() -> set[str]:
    """The named network namespaces of the machine."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def root_links() -> str:
    """The interfaces of the root network namespace (``ip -o link``)."""
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def test_bridge_containers_reach_each_other(dy: Dockyard, image: str) -> None:  # noqa: F811
    port = free_port()
    dy.ok("run", "-d", "--name", "web-a", "--network", "bridge", "-p", f"{port}:8080", image, "sh", "-c", SERVER)
    dy.ok("run", "-d", "--name", "web-b", image, "sleep", "1000")  # bridge is the default, as docker's
    store = ContainerStore(dy.root)
    a, b = store.find("web-a"), store.find("web-b")
    assert a.ip
    assert b.ip
    assert a.ip != b.ip
    assert a.ip.startswith("10.88.")
    assert {a.netns, b.netns, switch_name(dy.root)} <= netns_names()
    assert f"{a.ip}\t{a.short_id}" in dy.ok("exec", "web-a", "cat", "/etc/hosts")
    wait_until(lambda: http_get(port) == "hello-from-container\n")  # -p works on bridge too
    fetched = dy.ok("exec", "web-b", "busybox", "wget", "-q", "-O", "-", f"http://{a.ip}:8080/i")
    assert fetched == "hello-from-container\n"
    routes = dy.ok("exec", "web-b", "cat", "/proc/net/route")
    assert any(line.split()[:2] == ["eth0", "00000000"] for line in routes.splitlines())  # default via the bridge
    assert f"dy{a.id[:12]}" not in root_links()  # the veths live in the switch and container namespaces only

    dy.ok("stop", "-t", "1", "web-b")
    dy.ok("start", "web-b")  # the same namespace and address again
    again = dy.ok("exec", "web-b", "busybox", "wget", "-q", "-O", "-", f"http://{a.ip}:8080/i")
    assert again == "hello-from-container\n"
    once = dy.ok("run", "--rm", image, "sh", "-c", "cat /etc/hosts")
    assert "10.88." in once

    dy.ok("rm", "-f", "web-a")
    assert a.netns not in netns_names()
    assert switch_name(dy.root) in netns_names()  # b still uses it
    dy.ok("rm", "-f", "web-b")
    assert not {a.netns, b.netns, switch_name(dy.root)} & netns_names()
    assert port_is_free(port)
