"""Blob responses (``registry.blobresponse``): local files copied piece by piece, whatever the page cache holds."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from registry import blobresponse
from registry.app import create_app
from registry.blobresponse import COPY_BUFFER, read_cached
from registry.config import Settings
from tests.registry.conftest import Client, ClientFactory
from tests.support.oci import push_blob

BIG = os.urandom(2 * COPY_BUFFER + COPY_BUFFER // 2 + 3)  # three pieces, the last one short


def _ranges() -> dict[str, bytes]:
    size, piece = len(BIG), COPY_BUFFER
    return {
        f"bytes=0-{piece}": BIG[: piece + 1],  # one byte into the second piece
        f"bytes={piece - 1}-{2 * piece}": BIG[piece - 1 : 2 * piece + 1],  # across two boundaries
        "bytes=-10": BIG[-10:],
        f"bytes={size - 1}-": BIG[-1:],
    }


async def test_a_blob_of_several_pieces_and_ranges_across_them(client: Client) -> None:
    d = await push_blob(client, "lib/big", BIG)
    resp = await client.get(f"/v2/lib/big/blobs/{d}")
    assert resp.status == 200
    assert await resp.read() == BIG
    for header, expected in _ranges().items():
        resp = await client.get(f"/v2/lib/big/blobs/{d}", headers={"Range": header})
        assert resp.status == 206, header
        assert await resp.read() == expected, header


async def test_pieces_not_in_the_page_cache_are_read_in_a_thread(
    aiohttp_client: ClientFactory, fs_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await aiohttp_client(create_app(fs_settings))
    d = await push_blob(client, "lib/big", BIG)
    asked: list[int] = []

    def nothing_cached(_fd: int, _view: memoryview, offset: int) -> int:
        asked.append(offset)
        return 0

    monkeypatch.setattr(blobresponse, "read_cached", nothing_cached)
    resp = await client.get(f"/v2/lib/big/blobs/{d}")
    assert await resp.read() == BIG
    assert asked == [0, COPY_BUFFER, 2 * COPY_BUFFER]
    resp = await client.get(f"/v2/lib/big/blobs/{d}", headers={"Range": "bytes=5-9"})
    assert await resp.read() == BIG[5:10]


def test_read_cached_reads_cached_pages_and_never_waits_for_the_disk(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(BIG)
    view = memoryview(bytearray(COPY_BUFFER))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert read_cached(fd, view, 7) == COPY_BUFFER  # just written: in the page cache
        assert bytes(view) == BIG[7 : 7 + COPY_BUFFER]
        assert read_cached(fd, view, len(BIG)) == 0  # the end of the file
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # written back and evicted: only the disk has it
        assert read_cached(fd, view, COPY_BUFFER) == 0
    finally:
        os.close(fd)


async def test_a_blob_file_shorter_than_its_size_cuts_the_response(
    aiohttp_client: ClientFactory, fs_settings: Settings, tmp_path: Path
) -> None:
    app: web.Application = create_app(fs_settings)
    client = await aiohttp_client(app)
    d = await push_blob(client, "lib/big", BIG)
    stored = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and p.stat().st_size == len(BIG)]
    assert len(stored) == 1
    os.truncate(stored[0], COPY_BUFFER + 5)  # damaged storage: the link still promises len(BIG)
    resp = await client.get(f"/v2/lib/big/blobs/{d}")
    assert resp.status == 200  # the headers went out before the file ended
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    again = await client.get("/v2/")  # the server goes on (a new connection: the cut one was closed)
    assert again.status == 200
