"""Hostile and malformed requests: each gets the spec's error, and the storage is left as it was."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path

import pytest

from registry.app import create_app
from registry.config import Settings
from tests.registry.conftest import ClientFactory
from tests.support.oci import OCI_MANIFEST, digest, error_code, push_image


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


BAD_NAMES = [
    "UPPER/case",
    "a..b",
    "-lead",
    "trail-",
    "a//b",
    "_private",
    "x" * 256,
    "a/" * 130 + "b",
]


@pytest.fixture
async def fs_client(aiohttp_client: ClientFactory, fs_settings: Settings):  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(fs_settings))
    await push_image(client, "lib/app", "v1")
    return client


def root_of(settings: Settings) -> Path:
    return settings.storage.root  # type: ignore[union-attr]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_invalid_names(fs_client, fs_settings: Settings, name: str) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(root_of(fs_settings))
    for method, path in (
        ("GET", f"/v2/{name}/tags/list"),
        ("POST", f"/v2/{name}/blobs/uploads/"),
        ("PUT", f"/v2/{name}/manifests/v1"),
        ("GET", f"/v2/{name}/blobs/{digest(b'x')}"),
    ):
        resp = await fs_client.request(method, path, data=b"{}")
        assert resp.status in (400, 404), (method, path)
        if resp.status == 400:
            assert await error_code(resp) == "NAME_INVALID"
    assert snapshot(root_of(fs_settings)) == before


@pytest.mark.parametrize(
    "path",
    [
        "/v2/lib/../../../etc/passwd/tags/list",
        "/v2/lib/%2e%2e/%2e%2e/etc/tags/list",
        "/v2/lib/app/manifests/..%2f..%2fx",
        "/v2/lib/app/manifests/%2e%2e",
        "/v2//etc/passwd/tags/list",
        "/v2/lib/app/blobs/uploads/..%2f..%2f..%2fdata",
        "/v2/lib/app/blobs/sha256:..%2f..",
    ],
)
async def test_traversal_attempts(fs_client, fs_settings: Settings, path: str) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(root_of(fs_settings))
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        status = await asyncio.to_thread(raw_request, fs_client.server.port, method, path)
        assert 400 <= status < 500, (method, path, status)
    assert snapshot(root_of(fs_settings)) == before


def raw_request(port: int, method: str, path: str) -> int:
    """Send ``path`` exactly as written (no client-side normalisation of dots); returns the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx".encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


async def test_invalid_tags(fs_client, fs_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    body = await (await fs_client.get("/v2/lib/app/manifests/v1")).read()
    before = snapshot(root_of(fs_settings))
    for tag in (".hidden", "-dash", "t" * 129, "a%2fb"):
        resp = await fs_client.put(f"/v2/lib/app/manifests/{tag}", data=body, headers={"Content-Type": OCI_MANIFEST})
        assert resp.status in (400, 404), tag
    assert snapshot(root_of(fs_settings)) == before


async def test_malformed_json_and_oversized_manifest_keep_storage(fs_client, fs_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(root_of(fs_settings))
    resp = await fs_client.put("/v2/lib/app/manifests/v2", data=b"{", headers={"Content-Type": OCI_MANIFEST})
    assert await error_code(resp) == "MANIFEST_INVALID"
    resp = await fs_client.put(
        "/v2/lib/app/manifests/v2", data=json.dumps({"x": "y" * (5 << 20)}), headers={"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 413
    assert snapshot(root_of(fs_settings)) == before


async def test_unknown_endpoints_answer_json(fs_client) -> None:  # type: ignore[no-untyped-def]
    resp = await fs_client.get("/v2/lib/app/nothing-here")
    assert resp.status == 404
    assert (await resp.json(content_type=None))["errors"][0]["code"]
    resp = await fs_client.request("TRACE", "/v2/")
    assert resp.status in (404, 405)


async def test_body_shorter_than_content_length_leaves_no_blob(fs_client, fs_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    data = b"z" * 1000
    d = digest(data)
    port = fs_client.server.port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        request = (
            f"POST /v2/lib/app/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
        ).encode()
        sock.sendall(request + data)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            sock.recv(1024)
    resp = await fs_client.head(f"/v2/lib/app/blobs/{d}")
    assert resp.status == 404
    blobs = [p for p in root_of(fs_settings).rglob("data") if "blobs" in p.parts]
    assert all(p.read_bytes() != data for p in blobs)
