"""API tests run against ``create_app`` with both the memory and the filesystem driver."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from registry.app import create_app
from registry.config import FilesystemStorage, MemoryStorage, S3Storage, Settings
from tests.support.s3 import S3Server

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture(params=["memory", "filesystem", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The whole API suite runs once per storage driver; S3 against a real moto server process."""
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3")
        return Settings(storage=S3Storage(**server.driver_settings(server.new_bucket(), prefix="registry")))
    storage = MemoryStorage() if request.param == "memory" else FilesystemStorage(root=tmp_path / "data")
    return Settings(storage=storage)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> Client:
    app: web.Application = create_app(settings)
    return await aiohttp_client(app)


@pytest.fixture
def fs_settings(tmp_path: Path) -> Settings:
    return Settings(storage=FilesystemStorage(root=tmp_path / "data"))
