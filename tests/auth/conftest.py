"""Fixtures of the account tests: every database test runs on SQLite and on a PostgreSQL cluster of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from auth.accounts import AccountStore
from tests.support.postgres import PostgresCluster, postgres_cluster

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    # A real server process from Debian's package: kept out of `make test-fast` like the other external tools.
    pytest.param("postgres", id="postgres", marks=pytest.mark.interop),
]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster per session (per xdist worker), started on first use and removed at the end."""
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty account database: a SQLite file under ``tmp_path``, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    name = await cluster.create_database()
    yield cluster.url(name)
    await cluster.drop_database(name)


@pytest.fixture
async def accounts(database_url: str) -> AsyncIterator[AccountStore]:
    """An open store on ``database_url``; cheap bcrypt (cost 4) keeps the suite fast."""
    store = await AccountStore.open(database_url, bcrypt_rounds=4)
    yield store
    await store.close()
