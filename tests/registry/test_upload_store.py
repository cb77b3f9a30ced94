"""Pieces of registry.store.uploads used by the publish step."""

from __future__ import annotations

import asyncio

import pytest

from registry.store.uploads import concurrently


async def test_concurrently_runs_every_step_and_raises_the_first_failure() -> None:
    finished: list[str] = []

    async def step(name: str, delay: float, fail: bool = False) -> None:
        await asyncio.sleep(delay)
        finished.append(name)
        if fail:
            raise OSError(name)

    with pytest.raises(OSError, match="fast"):
        await concurrently(step("fast", 0.0, fail=True), step("slow", 0.05), step("late", 0.02, fail=True))
    assert sorted(finished) == ["fast", "late", "slow"]  # no step left running when the failure is raised


async def test_concurrently_overlaps_its_steps() -> None:
    ready = asyncio.Event()

    async def waits() -> None:
        await ready.wait()  # only the other step sets it: run one after the other, this would never end

    async def sets() -> None:
        ready.set()

    await asyncio.wait_for(concurrently(waits(), sets()), timeout=10)
