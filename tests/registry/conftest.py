"""API tests run against ``create_app`` with both the memory and the filesystem driver."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from registry.app import create_app
from registry.config import FilesystemStorage, MemoryStorage, Settings

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture(params=["memory", "filesystem"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    storage = MemoryStorage() if request.param == "memory" else FilesystemStorage(root=tmp_path / "data")
    return Settings(storage=storage)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> Client:
    app: web.Application = create_app(settings)
    return await aiohttp_client(app)


@pytest.fixture
def fs_settings(tmp_path: Path) -> Settings:
    return Settings(storage=FilesystemStorage(root=tmp_path / "data"))
