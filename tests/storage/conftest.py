"""Every driver runs the same contract suite: add a driver here and it is tested like the others."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.checked import Checked
from storage.driver import StorageDriver
from storage.filesystem import FilesystemDriver
from storage.memory import MemoryDriver


@pytest.fixture(params=["memory", "filesystem"])
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    inner: StorageDriver = MemoryDriver() if request.param == "memory" else FilesystemDriver(tmp_path / "root")
    checked = Checked(inner)
    yield checked
    await checked.close()
