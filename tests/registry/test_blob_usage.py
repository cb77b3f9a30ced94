"""The ``used`` markers a push rewrites for the blobs it relies on (registry.store.blobs.BlobStore.claim)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from registry.reference import Digest
from registry.store import blobs as blobs_module
from registry.store.blobs import BlobStore
from registry.store.paths import key
from storage.filesystem import FilesystemDriver


def _age(path: Path, seconds: float) -> None:
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


async def test_a_marker_is_rewritten_at_most_once_per_refresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs_module, "MARKER_REFRESH", 60.0)
    driver = FilesystemDriver(tmp_path)
    store = BlobStore(driver)
    digest = Digest.of(b"base layer")
    await store.put_small(b"base layer", digest)
    data = driver.local_path(key("blob_data", digest=digest))
    marker = tmp_path / key("blob_used", digest=digest).lstrip("/")
    assert data is not None

    await store.claim([digest])  # data just written: no marker needed
    assert not marker.exists()

    _age(data, 120)
    await store.claim([digest])  # data older than the refresh: the marker is written
    assert marker.exists()
    _age(marker, 30)
    written = marker.stat().st_mtime
    for _ in range(3):  # more pushes within the refresh: left alone
        await store.claim([digest])
    assert marker.stat().st_mtime == written

    _age(marker, 120)
    await store.claim([digest])  # marker older than the refresh: rewritten
    assert marker.stat().st_mtime > time.time() - 10
