"""``dockyard serve --workers N`` (registry/workers.py) as a real process tree: N workers share the port, each
answers with the current state of storage (a tag moved through one worker is seen by the next request to any
other), a dead worker is replaced, a stop signal stops them all, ``kill -9`` of the server takes its workers with
it, and a port in use is one line and exit 1."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from registry.workers import resolve_count
from tests.support.oci import push_image
from tests.support.s3 import S3Server
from tests.support.server import LiveRegistry, live_registry, run_dockyard

WORKERS = 2


def worker_pids(registry: LiveRegistry, count: int = WORKERS, timeout: float = 20.0, listen: bool = True) -> list[int]:
    """The pids of the server's workers, once ``count`` of them run (and, with ``listen``, listen)."""
    deadline = time.monotonic() + timeout
    while True:
        children = Path(f"/proc/{registry.process.pid}/task/{registry.process.pid}/children").read_text().split()
        if len(children) == count or time.monotonic() > deadline:
            assert len(children) == count, children
            pids = sorted(int(pid) for pid in children)
            if listen:
                wait_listening(registry, pids)
            return pids
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return status != "Z"


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tcp_rows(port: int) -> Iterator[list[str]]:
    """The fields of the /proc/net/tcp rows of sockets on 127.0.0.1:``port`` (state in [3], inode in [9])."""
    wanted = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted:
            yield fields


def wait_listening(registry: LiveRegistry, pids: list[int], timeout: float = 30.0) -> None:
    """Wait until each of ``pids`` holds a socket listening on the registry's port: a worker's pid exists as soon
    as it is forked, its socket only once it has started (seconds on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        listening = {int(fields[9]) for fields in tcp_rows(registry.port) if fields[3] == "0A"}  # TCP_LISTEN
        waiting = [pid for pid in pids if not socket_inodes(pid) & listening]
        if not waiting:
            return
        assert time.monotonic() < deadline, f"workers {waiting} not listening after {timeout} s"
        time.sleep(0.05)


def serving_worker(conn: http.client.HTTPConnection, port: int, pids: list[int]) -> int:
    """The worker holding the server side of ``conn`` (from /proc/net/tcp and the workers' descriptors)."""
    assert conn.sock is not None
    client_port = conn.sock.getsockname()[1]
    for fields in tcp_rows(port):
        if fields[2].endswith(f":{client_port:04X}"):
            inode = int(fields[9])
            owners = [pid for pid in pids if inode in socket_inodes(pid)]
            assert len(owners) == 1, owners
            return owners[0]
    raise AssertionError(f"no server socket for client port {client_port}")


@pytest.fixture
def workers_registry(tmp_path: Path) -> Iterator[LiveRegistry]:
    with live_registry(tmp_path, "--workers", str(WORKERS)) as registry:
        yield registry


async def push_tag(registry: LiveRegistry, tag: str, layer: bytes) -> str:
    async with aiohttp.ClientSession(base_url=registry.url) as client:
        digest, _body = await push_image(client, "team/app", tag, [layer])  # type: ignore[arg-type]
    return digest


def digests_seen(registry: LiveRegistry, pids: list[int], connections: int) -> dict[int, set[str]]:
    """GET the tag over ``connections`` fresh connections; the digests each worker answered with."""
    seen: dict[int, set[str]] = {pid: set() for pid in pids}
    opened = []
    try:
        for _ in range(connections):
            conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
            conn.request(
                "GET", "/v2/team/app/manifests/latest", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
            )
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body
            assert json.loads(body)["schemaVersion"] == 2
            seen[serving_worker(conn, registry.port, pids)].add(resp.headers["Docker-Content-Digest"])
            opened.append(conn)  # kept open so the next connection gets a new source port
    finally:
        for conn in opened:
            conn.close()
    return seen


async def test_a_tag_moved_through_one_worker_is_seen_by_every_worker(workers_registry: LiveRegistry) -> None:
    pids = worker_pids(workers_registry)
    for round_ in range(3):
        digest = await push_tag(workers_registry, "latest", f"layer {round_}".encode())
        seen = digests_seen(workers_registry, pids, connections=40)
        assert all(seen.values()), f"a worker got no connection: {seen}"  # 40 connections, 2 workers
        assert seen == {pid: {digest} for pid in pids}


async def test_a_deleted_manifest_is_gone_for_every_worker(workers_registry: LiveRegistry) -> None:
    pids = worker_pids(workers_registry)
    digest = await push_tag(workers_registry, "latest", b"soon deleted")
    assert digests_seen(workers_registry, pids, connections=10)
    async with aiohttp.ClientSession(base_url=workers_registry.url) as client:
        resp = await client.delete(f"/v2/team/app/manifests/{digest}")
        assert resp.status == 202
    for _ in range(20):
        conn = http.client.HTTPConnection("127.0.0.1", workers_registry.port, timeout=10)
        conn.request("GET", f"/v2/team/app/manifests/{digest}")
        assert conn.getresponse().status == 404
        conn.close()


def test_a_dead_worker_is_replaced(workers_registry: LiveRegistry) -> None:
    before = worker_pids(workers_registry)
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while (after := worker_pids(workers_registry, listen=False)) == before or before[0] in after:
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.1)
    assert before[1] in after
    for _ in range(10):
        conn = http.client.HTTPConnection("127.0.0.1", workers_registry.port, timeout=10)
        conn.request("GET", "/v2/")
        assert conn.getresponse().status == 200
        conn.close()
    assert "worker 0" in workers_registry.log.read_text()


def test_sigterm_stops_every_worker(tmp_path: Path) -> None:
    with live_registry(tmp_path, "--workers", str(WORKERS)) as registry:
        pids = worker_pids(registry)
        registry.process.send_signal(signal.SIGTERM)
        assert registry.process.wait(timeout=40) == 0
    assert not [pid for pid in pids if alive(pid)]


def test_kill_9_of_the_server_takes_its_workers(tmp_path: Path) -> None:
    with live_registry(tmp_path, "--workers", str(WORKERS)) as registry:
        pids = worker_pids(registry)
        registry.process.kill()
        registry.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids):
            assert time.monotonic() < deadline, "workers outlived their server"
            time.sleep(0.05)


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_dockyard("serve", "--workers", "2", "--listen", f"127.0.0.1:{port}", "--data", str(tmp_path / "d"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_a_second_server_on_the_same_port_is_refused(workers_registry: LiveRegistry, tmp_path: Path) -> None:
    """SO_REUSEPORT would let a second dockyard bind beside the first; the probe without it refuses."""
    result = run_dockyard(
        "serve", "--workers", "2", "--listen", f"127.0.0.1:{workers_registry.port}", "--data", str(tmp_path / "other")
    )
    assert result.returncode == 1
    assert "Address already in use" in result.stderr


def test_memory_storage_is_served_by_one_process(tmp_path: Path) -> None:
    env = {"DOCKYARD_STORAGE__TYPE": "memory"}
    with live_registry(tmp_path, "--workers", "2", env=env) as registry:
        assert not Path(f"/proc/{registry.process.pid}/task/{registry.process.pid}/children").read_text().split()
        assert "memory storage lives in one process" in registry.log.read_text()


def test_zero_means_one_per_core() -> None:
    assert resolve_count(0) == len(os.sched_getaffinity(0))
    assert resolve_count(3) == 3


async def test_workers_on_s3_without_a_state_dir_share_one_index(
    tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open registry on S3 keeps its metadata index in a temporary file; its workers share one (each used to
    have its own and list only the tags it had been sent), removed when the server stops."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the server makes its temporary index
    settings = s3.driver_settings(s3.new_bucket())
    env = {"DOCKYARD_STORAGE__TYPE": "s3"} | {f"DOCKYARD_STORAGE__{k.upper()}": str(v) for k, v in settings.items()}
    with live_registry(tmp_path, "--workers", str(WORKERS), env=env) as registry:
        pids = worker_pids(registry)
        tags = [f"v{n}" for n in range(12)]
        for tag in tags:  # a session each: the pushes reach both workers
            await push_tag(registry, tag, f"layer {tag}".encode())
        answered: dict[int, list[list[str]]] = {pid: [] for pid in pids}
        opened = []
        try:
            for _ in range(30):
                conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
                conn.request("GET", "/v2/team/app/tags/list")
                resp = conn.getresponse()
                listed = json.loads(resp.read())["tags"]
                answered[serving_worker(conn, registry.port, pids)].append(listed)
                opened.append(conn)
        finally:
            for conn in opened:
                conn.close()
        assert all(answered.values()), f"a worker got no connection: {answered}"
        assert {pid: {tuple(t) for t in lists} for pid, lists in answered.items()} == {
            pid: {tuple(sorted(tags))} for pid in pids
        }
        assert len(list(tmp_path.glob("dockyard-index-*"))) == 1
    assert not list(tmp_path.glob("dockyard-index-*"))
