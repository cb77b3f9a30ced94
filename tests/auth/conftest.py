"""Fixtures of the account tests: every database test runs on SQLite and on a PostgreSQL cluster of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from auth.accounts import AccountStore


@pytest.fixture
async def accounts(database_url: str) -> AsyncIterator[AccountStore]:
    """An open store on ``database_url``; cheap bcrypt (cost 4) keeps the suite fast."""
    store = await AccountStore.open(database_url, bcrypt_rounds=4)
    yield store
    await store.close()
