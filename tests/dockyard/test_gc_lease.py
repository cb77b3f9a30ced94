"""Only one garbage collection at a time among processes sharing a database: ``dockyard gc`` waits for the ``gc``
lease (then gives up with one line), and the server's scheduled GC skips a round whose lease another holds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from auth.database import open_database
from auth.leases import Leases, new_holder
from catalog.startup import index_database_url
from registry.app import GC_LEASE, create_app
from registry.config import FilesystemStorage, Settings
from tests.support.server import run_dockyard


def settings_for(data: Path, **extra: object) -> Settings:
    return Settings(storage=FilesystemStorage(root=data), **extra)  # type: ignore[arg-type]


@pytest.fixture
async def leases(tmp_path: Path) -> AsyncIterator[Leases]:
    url = index_database_url(settings_for(tmp_path / "data"))
    assert url is not None
    engine = await open_database(url)
    try:
        yield Leases(engine)
    finally:
        await engine.dispose()


async def test_cli_gc_waits_then_gives_up_while_another_holds_the_lease(leases: Leases, tmp_path: Path) -> None:
    other = "replica-7:1234:feedbeef"
    await leases.acquire(GC_LEASE, other, 60)
    data = str(tmp_path / "data")
    busy = await asyncio.to_thread(run_dockyard, "gc", "--data", data, "--lease-wait", "1s")
    assert busy.returncode == 1
    assert (
        busy.stderr.strip()
        == f"Error: another garbage collection is running ({other}, lease until "
        + (busy.stderr.strip().split("lease until ", 1)[1])
    )
    assert "Traceback" not in busy.stderr
    dry = await asyncio.to_thread(run_dockyard, "gc", "--data", data, "--dry-run")
    assert dry.returncode == 0, dry.stderr  # a dry run deletes nothing and needs no lease
    await leases.release(GC_LEASE, other)
    done = await asyncio.to_thread(run_dockyard, "gc", "--data", data)
    assert done.returncode == 0, done.stderr
    assert (await leases.acquire(GC_LEASE, new_holder(), 1)).holder != other  # released after the run


async def test_cli_gc_waits_for_a_lease_that_is_released(leases: Leases, tmp_path: Path) -> None:
    other = new_holder()
    await leases.acquire(GC_LEASE, other, 60)
    data = str(tmp_path / "data")
    run = asyncio.create_task(asyncio.to_thread(run_dockyard, "gc", "--data", data, "--lease-wait", "30s"))
    await asyncio.sleep(1.5)
    assert not run.done()
    await leases.release(GC_LEASE, other)
    result = await run
    assert result.returncode == 0, result.stderr


async def test_scheduled_gc_skips_rounds_while_another_holds_the_lease(
    leases: Leases, tmp_path: Path, aiohttp_client: object, caplog: pytest.LogCaptureFixture
) -> None:
    other = new_holder()
    await leases.acquire(GC_LEASE, other, 60)
    settings = settings_for(tmp_path / "data", gc={"interval": 0.2})
    caplog.set_level(logging.INFO, logger="dockyard.gc")
    client = await aiohttp_client(create_app(settings))  # type: ignore[operator]
    assert (await client.get("/v2/")).status == 200
    await asyncio.sleep(0.8)
    assert any("garbage collection skipped" in r.getMessage() and other in r.getMessage() for r in caplog.records)
    assert not any(r.getMessage().startswith("gc deleted") for r in caplog.records)
    await leases.release(GC_LEASE, other)
    await asyncio.sleep(0.8)
    assert any(r.getMessage().startswith("gc deleted") for r in caplog.records)
