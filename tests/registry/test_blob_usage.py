"""The ``used`` markers a push rewrites for the blobs it relies on (registry.store.blobs.BlobStore.claim)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from registry.reference import Digest
from registry.store import blobs as blobs_module
from registry.store.blobs import BlobStore
from registry.store.paths import key
from storage.driver import FileInfo
from storage.filesystem import FilesystemDriver


def _age(path: Path, seconds: float) -> None:
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


async def test_a_marker_is_rewritten_at_most_once_per_refresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs_module, "MARKER_REFRESH", 60.0)
    driver = FilesystemDriver(tmp_path)
    digest = Digest.of(b"base layer")
    await BlobStore(driver).put_small(b"base layer", digest)
    # each claim comes from a process of its own (the clock moves by ageing files): it goes by storage alone
    data = driver.local_path(key("blob_data", digest=digest))
    marker = tmp_path / key("blob_used", digest=digest).lstrip("/")
    assert data is not None

    await BlobStore(driver).claim([digest])  # data just written: no marker needed
    assert not marker.exists()

    _age(data, 120)
    await BlobStore(driver).claim([digest])  # data older than the refresh: the marker is written
    assert marker.exists()
    _age(marker, 30)
    written = marker.stat().st_mtime
    for _ in range(3):  # more pushes within the refresh: left alone
        await BlobStore(driver).claim([digest])
    assert marker.stat().st_mtime == written

    _age(marker, 120)
    await BlobStore(driver).claim([digest])  # marker older than the refresh: rewritten
    assert marker.stat().st_mtime > time.time() - 10


async def test_what_this_process_just_stored_needs_no_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest pushed right after its blobs, by the process that stored them, costs no marker request: the
    process knows it wrote the blob within the refresh, whatever storage says (here: a data file aged on purpose)."""
    monkeypatch.setattr(blobs_module, "MARKER_REFRESH", 60.0)
    driver = FilesystemDriver(tmp_path)
    store = BlobStore(driver)
    digest = Digest.of(b"fresh layer")
    await store.put_small(b"fresh layer", digest)
    data = driver.local_path(key("blob_data", digest=digest))
    assert data is not None
    _age(data, 120)

    await store.claim([digest])
    assert not (tmp_path / key("blob_used", digest=digest).lstrip("/")).exists()
    await BlobStore(driver).claim([digest])  # another process goes by storage: the data is old, the marker written
    assert (tmp_path / key("blob_used", digest=digest).lstrip("/")).exists()


class CountingDriver(FilesystemDriver):
    """Counts the record lookups and writes a blob store makes."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.lookups = 0
        self.writes = 0

    async def stat_file(self, path: str) -> FileInfo:
        self.lookups += 1
        await asyncio.sleep(0.01)  # a storage round trip, during which other pushes arrive
        return await super().stat_file(path)

    async def put_content(self, path: str, data: bytes) -> None:
        self.writes += 1
        await super().put_content(path, data)


async def test_concurrent_uses_of_a_blob_share_one_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """32 pushes naming one old base layer at once: one look at its records and one marker write, not 32."""
    monkeypatch.setattr(blobs_module, "MARKER_REFRESH", 60.0)
    digest = Digest.of(b"base layer")
    await BlobStore(FilesystemDriver(tmp_path)).put_small(b"base layer", digest)
    data = tmp_path / key("blob_data", digest=digest).lstrip("/")
    _age(data, 120)
    driver = CountingDriver(tmp_path)
    store = BlobStore(driver)  # another process

    await asyncio.gather(*(store.claim([digest]) for _ in range(32)))

    assert (tmp_path / key("blob_used", digest=digest).lstrip("/")).exists()
    assert (driver.lookups, driver.writes) == (3, 1)  # pointer (none), data (old), marker (none); the marker written
    await store.claim([digest])  # within the refresh: known
    assert (driver.lookups, driver.writes) == (3, 1)
