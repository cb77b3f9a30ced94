"""Every driver runs the same contract suite: add a driver here and it is tested like the others."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.checked import Checked
from storage.driver import StorageDriver
from storage.filesystem import FilesystemDriver
from storage.memory import MemoryDriver
from storage.s3 import S3Driver, S3Settings
from tests.support.s3 import S3Server


def make_driver(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    if kind == "memory":
        return MemoryDriver()
    if kind == "filesystem":
        return FilesystemDriver(tmp_path / "root")
    server: S3Server = request.getfixturevalue("s3")
    # a small part size so multi-part paths run with small test data (S3's own minimum is 5 MiB)
    config = S3Settings(**server.driver_settings(server.new_bucket(), prefix="reg", multipart_chunk_size=5 << 20))
    return S3Driver(config)


@pytest.fixture(params=["memory", "filesystem", "s3"])
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    inner = make_driver(request.param, request, tmp_path)
    checked = Checked(inner)
    yield checked
    await checked.close()
