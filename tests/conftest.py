"""Shared fixtures. Real tools live in tests/support; API tests use the aiohttp test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clients import ToolHome
from tests.support.s3 import S3Server, s3_server
from tests.support.server import LiveRegistry, live_registry


@pytest.fixture
def registry_process(tmp_path: Path) -> Iterator[LiveRegistry]:
    """A live ``dockyard serve`` on a free loopback port, with private storage under ``tmp_path``."""
    with live_registry(tmp_path) as reg:
        yield reg


@pytest.fixture(scope="session")
def shared_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    """One live registry for the whole session (per xdist worker), for read-mostly interop tests."""
    with live_registry(tmp_path_factory.mktemp("shared-registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server (moto in server mode, or DOCKYARD_TEST_S3_ENDPOINT) for the session."""
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def tool_home(tmp_path: Path) -> Iterator[ToolHome]:
    """HOME, XDG dirs, auth file and containers configuration private to this test."""
    home = ToolHome(tmp_path / "tools")
    try:
        yield home
    finally:
        home.cleanup()
