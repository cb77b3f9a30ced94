"""Leases: one holder at a time, renewable by its holder, free again on release or expiry; on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from auth.database import open_database
from auth.leases import Leases, new_holder


@pytest.fixture
async def leases(database_url: str) -> AsyncIterator[Leases]:
    engine = await open_database(database_url)
    try:
        yield Leases(engine)
    finally:
        await engine.dispose()


async def test_one_holder_at_a_time(leases: Leases) -> None:
    first, second = new_holder(), new_holder()
    assert (await leases.acquire("gc", first, 60)).holder == first
    taken = await leases.acquire("gc", second, 60)
    assert taken.holder == first
    assert (await leases.acquire("gc", first, 120)).expires_at > taken.expires_at  # the holder renews
    await leases.release("gc", second)  # not the holder: no effect
    assert (await leases.acquire("gc", second, 60)).holder == first
    await leases.release("gc", first)
    assert (await leases.acquire("gc", second, 60)).holder == second


async def test_an_expired_lease_can_be_taken(leases: Leases) -> None:
    dead, alive = new_holder(), new_holder()
    assert (await leases.acquire("gc", dead, 0.2)).holder == dead
    await asyncio.sleep(0.3)
    assert (await leases.acquire("gc", alive, 60)).holder == alive
    assert (await leases.acquire("other", dead, 60)).holder == dead  # leases are independent by name


async def test_concurrent_acquires_elect_one(leases: Leases) -> None:
    holders = [new_holder() for _ in range(8)]
    results = await asyncio.gather(*(leases.acquire("gc", h, 60) for h in holders))
    winners = {r.holder for r in results}
    assert len(winners) == 1
    assert winners <= set(holders)
