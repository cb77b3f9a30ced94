"""Container networking helpers: ``-p`` port mappings, network namespaces, and the per-container port proxy.

Publishing a port uses no iptables rule (the machine may be shared): the caller binds every host address/port of
the container's mappings itself (so "port already in use" is reported at once, before anything runs), then hands
the listening sockets to a small detached proxy process (:mod:`runtime.portproxy`). The proxy joins the container's
network namespace (``setns`` on ``/proc/<init pid>/ns/net``); the sockets it was given stay in the host's
namespace, while every upstream socket it opens is created inside the container's, and connects there to
``127.0.0.1:CTRPORT``. That works for ``--network none`` containers too: their namespace has loopback.

The proxy records its pid in the container's ``state.json`` (``proxy_pid``), exits by itself when the container's
init process exits, and is stopped explicitly on ``stop`` and ``rm``.

Bridge networking (``--network bridge``) wires each container's own named namespace to a dockyard-owned "switch"
namespace holding a Linux bridge (see the section below); no address, route or interface is ever added to the root
namespace, and no iptables rule: containers reach each other by address, and the host reaches them through ``-p``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.supervisor import read_state, runs_module, update_state

CLONE_NEWNET = 0x40000000
DEFAULT_HOST_IP = "127.0.0.1"
PROXY_LOG_NAME = "proxy.log"
PROXY_MODULE = "runtime.portproxy"
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
_PUBLISH_RE = re.compile(r"^(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<host>\d+):(?P<ctr>\d+)(?:/(?P<proto>[a-z]+))?$")
_libc = ctypes.CDLL(None, use_errno=True)


class PublishError(Exception):
    """A ``-p`` mapping is malformed or unsupported (a mistake of the user); ``str()`` is one line."""


class PortInUseError(OSError):
    """The host address and port of a mapping cannot be bound (already in use, or not an address of this host)."""


@dataclass(frozen=True)
class PortMapping:
    """One ``-p [ADDR:]HOSTPORT:CTRPORT[/tcp]``: ``host_ip``:``host_port`` on the host → ``container_port``."""

    host_ip: str
    host_port: int
    container_port: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        return f"{ip}:{self.host_port}:{self.container_port}/{self.protocol}"


def parse_publish(text: str) -> PortMapping:
    """A :class:`PortMapping` from ``-p`` text (ADDR defaults to 127.0.0.1); :class:`PublishError` otherwise."""
    match = _PUBLISH_RE.match(text.strip())
    if match is None:
        raise PublishError(f"invalid port mapping {text!r}: expected [ADDR:]HOSTPORT:CTRPORT[/tcp]")
    protocol = match["proto"] or "tcp"
    if protocol != "tcp":
        raise PublishError(f"invalid port mapping {text!r}: only tcp ports can be published")
    ip_text = (match["ip"] or DEFAULT_HOST_IP).strip("[]")
    try:
        host_ip = str(ipaddress.ip_address(ip_text))
    except ValueError:
        raise PublishError(f"invalid port mapping {text!r}: {ip_text!r} is not an IP address") from None
    host_port, container_port = int(match["host"]), int(match["ctr"])
    for port in (host_port, container_port):
        if not 1 <= port <= 65535:
            raise PublishError(f"invalid port mapping {text!r}: port {port} is out of range 1-65535")
    return PortMapping(host_ip, host_port, container_port, protocol)


def bind_listeners(mappings: Sequence[PortMapping]) -> list[socket.socket]:
    """A listening socket for every mapping (in the caller's namespace); :class:`PortInUseError` when one
    cannot be bound (the sockets already bound are closed)."""
    sockets: list[socket.socket] = []
    try:
        for mapping in mappings:
            family = socket.AF_INET6 if ":" in mapping.host_ip else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((mapping.host_ip, mapping.host_port))
            except OSError as exc:
                reason = "port is already allocated" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise PortInUseError(
                    exc.errno, f"cannot publish {mapping.host_ip}:{mapping.host_port}: {reason}"
                ) from None
            sock.listen(128)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def setns(path: Path, nstype: int = CLONE_NEWNET) -> None:
    """Move the calling thread into the namespace at ``path`` (``setns(2)`` through libc)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, nstype) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


# -- the proxy process, from the caller's side ---------------------------------------------------


def proxy_alive(container_dir: Path, pid: int) -> bool:
    """True when ``pid`` is a live port proxy of ``container_dir`` (a recycled pid is not)."""
    return runs_module(pid, PROXY_MODULE, container_dir)


def start_proxy(
    container_dir: Path, container_pid: int, mappings: Sequence[PortMapping], sockets: Sequence[socket.socket]
) -> int:
    """Start the detached proxy of a running container (init pid ``container_pid``) serving ``sockets``
    (one per mapping, from :func:`bind_listeners`); its pid, also recorded as ``proxy_pid`` in the state."""
    container_dir = container_dir.resolve()
    argv = [sys.executable, "-S", "-m", PROXY_MODULE, "--container-dir", str(container_dir)]
    argv += ["--pid", str(container_pid)]
    for mapping, sock in zip(mappings, sockets, strict=True):
        argv += ["--map", f"{sock.fileno()}={mapping.container_port}"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_PARENT), env.get("PYTHONPATH")]))
    update_state(container_dir, proxy_pid=0)
    with open(container_dir / PROXY_LOG_NAME, "ab") as errors:
        launcher = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,
            env=env,
            pass_fds=[sock.fileno() for sock in sockets],
        )
    if launcher.wait() != 0:
        raise OSError(f"the port proxy did not start (see {container_dir / PROXY_LOG_NAME})")
    return int(read_state(container_dir).get("proxy_pid") or 0)


def stop_proxy(container_dir: Path, timeout: float = 5.0) -> None:
    """Stop the container's port proxy (if any) and wait until it is gone, so its ports are free again."""
    pid = int(read_state(container_dir).get("proxy_pid") or 0)
    if not proxy_alive(container_dir, pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while proxy_alive(container_dir, pid) and _not_zombie(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.005)
    update_state(container_dir, proxy_pid=0)


def _not_zombie(pid: int) -> bool:
    """False when ``pid`` has exited and only waits to be reaped (its sockets are closed by then)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


# -- bridge networking ---------------------------------------------------------------------------
#
# The "switch" is a dockyard-owned network namespace per runtime root (``dockyard-br-<hash of the root>``) holding
# a Linux bridge with the gateway address (10.88.0.1/16). Each bridge container gets its own named namespace
# (``dockyard-<short id>``, pinned under /run/netns so it outlives stops) and a veth pair created INSIDE the switch
# namespace with its peer moved straight into the container's namespace as ``eth0``. Every ``ip`` command runs with
# ``-n NAME``: the root namespace never gets an interface, address or route.

BRIDGE_SUBNET = ipaddress.IPv4Network("10.88.0.0/16")
BRIDGE_GATEWAY = "10.88.0.1"
BRIDGE_DEVICE = "br0"
NETNS_DIR = Path("/run/netns")


class NetworkError(OSError):
    """Setting up or tearing down a network namespace failed (a failure of dockyard: exit 125)."""


def _ip(*args: str, namespace: str | None = None) -> None:
    """Run ``ip [-n namespace] ARGS``; :class:`NetworkError` with ip's message when it fails."""
    _run_ip(["ip", *(("-n", namespace) if namespace else ()), *args], None)


def _ip_batch(commands: Sequence[str], namespace: str) -> None:
    """Run ``commands`` (``ip`` command lines without the ``ip``) in ``namespace`` with one ``ip -batch``
    process, stopping at the first that fails; :class:`NetworkError` with ip's message then."""
    _run_ip(["ip", "-n", namespace, "-batch", "-"], "".join(f"{line}\n" for line in commands))


def _run_ip(argv: list[str], stdin: str | None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[0] if done.stderr.strip() else f"exit {done.returncode}"
        raise NetworkError(f"{' '.join(argv)}: {message}")


def switch_name(root: Path) -> str:
    """The name of the switch namespace of the runtime root ``root``."""
    return "dockyard-br-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]


def container_netns_name(container_id: str) -> str:
    """The name of a bridge container's own network namespace."""
    return f"dockyard-{container_id[:12]}"


def netns_exists(name: str) -> bool:
    """True when the named network namespace exists (is pinned under /run/netns)."""
    return (NETNS_DIR / name).exists()


def allocate_ip(used: set[str]) -> str:
    """The first address of the bridge subnet that is neither the gateway nor in ``used``."""
    for address in BRIDGE_SUBNET.hosts():
        text = str(address)
        if text != BRIDGE_GATEWAY and text not in used:
            return text
    raise NetworkError(f"no free address left in {BRIDGE_SUBNET}")


def ensure_switch(name: str) -> None:
    """Create the switch namespace ``name`` with its bridge and gateway address, unless it exists."""
    if netns_exists(name):
        return
    _ip("netns", "add", name)
    try:
        _ip_batch(
            [
                "link set lo up",
                f"link add {BRIDGE_DEVICE} type bridge",
                f"addr add {BRIDGE_GATEWAY}/{BRIDGE_SUBNET.prefixlen} dev {BRIDGE_DEVICE}",
                f"link set {BRIDGE_DEVICE} up",
            ],
            name,
        )
    except NetworkError:
        delete_netns(name)
        raise


def connect_container(switch: str, container_id: str, address: str) -> Path:
    """Create the container's namespace, wire it to the bridge of ``switch`` with ``address``; its path."""
    name = container_netns_name(container_id)
    host_end = f"dy{container_id[:12]}"
    _ip("netns", "add", name)
    try:  # three processes, not seven: each ``ip`` costs a few milliseconds of every ``run``
        _ip_batch(
            [
                f"link add {host_end} type veth peer name eth0 netns {name}",
                f"link set {host_end} master {BRIDGE_DEVICE} up",
            ],
            switch,
        )
        _ip_batch(
            [
                "link set lo up",
                f"addr add {address}/{BRIDGE_SUBNET.prefixlen} dev eth0",
                "link set eth0 up",
                f"route add default via {BRIDGE_GATEWAY}",
            ],
            name,
        )
    except NetworkError:
        delete_netns(name)  # takes the veth pair with it
        raise
    return NETNS_DIR / name


def delete_netns(name: str) -> None:
    """Delete the named network namespace (its veths go with it) if it exists."""
    if netns_exists(name):
        _ip("netns", "delete", name)
