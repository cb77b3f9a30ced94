"""Shared fixtures. Real tools live in tests/support; API tests use the aiohttp test client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.clients import ToolHome
from tests.support.logscan import leaks
from tests.support.netns import Host, two_hosts
from tests.support.postgres import PostgresCluster, postgres_cluster
from tests.support.s3 import S3Server, s3_server
from tests.support.server import LiveRegistry, live_registry


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_server_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the session (of each xdist worker): no server log of any test holds a token, a password in Basic
    credentials or an Authorization header (issue 9: "grep the logs of the whole suite")."""
    yield
    found = leaks(tmp_path_factory.getbasetemp())
    assert not found, "secrets in server logs:\n" + "\n".join(found)


@pytest.fixture
def registry_process(tmp_path: Path) -> Iterator[LiveRegistry]:
    """A live ``dockyard serve`` on a free loopback port, with private storage under ``tmp_path``."""
    with live_registry(tmp_path) as reg:
        yield reg


@pytest.fixture(scope="session")
def shared_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    """One live registry for the whole session (per xdist worker), for read-mostly interop tests; served by two
    worker processes, as ``dockyard serve`` does by default on a 2-core machine."""
    with live_registry(tmp_path_factory.mktemp("shared-registry"), "--workers", "2") as reg:
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


@pytest.fixture
def hosts() -> Iterator[tuple[Host, Host]]:
    """Two "hosts": network namespaces joined by a veth pair (tests/support/netns.py), deleted afterwards."""
    with two_hosts() as pair:
        yield pair


# A real server process from Debian's package: the PostgreSQL case is kept out of `make test-fast` like the other
# external tools.
DATABASE_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.interop),
]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster per session (per xdist worker), started on first use and removed at the end."""
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
async def postgres_url(postgres: PostgresCluster) -> AsyncIterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped afterwards."""
    name = await postgres.create_database()
    yield postgres.url(name)
    await postgres.drop_database(name)


@pytest.fixture(params=DATABASE_BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database: a SQLite file under ``tmp_path``, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")  # sync: started on first use
    name = await cluster.create_database()
    yield cluster.url(name)
    await cluster.drop_database(name)
