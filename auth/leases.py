"""Leases in the shared database: at most one process (of all replicas) holds a named lease at a time.

``acquire`` is one atomic upsert that takes the row only if it is free, expired, or already ours, then reads
back who holds it; PostgreSQL serialises concurrent upserts of one row, SQLite runs one writer at a time. A
holder that dies keeps the lease until it expires (``ttl``), so a job's ``ttl`` must outlast the job; ``release``
frees it early. Holder ids name the host and process (``host:pid:random``) so an operator can tell who holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.database import insert
from auth.models import LeaseRow

__all__ = ["Held", "Leases", "holding", "new_holder"]

log = logging.getLogger("dockyard.leases")
DEFAULT_TTL = 60.0
WAIT_POLL = 0.25


def new_holder() -> str:
    """A holder id unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()[:200]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Held:
    """The lease ``name`` as it stands: who holds it, until when."""

    name: str
    holder: str
    expires_at: datetime


class Leases:
    """Named leases over ``engine`` (the account database, migrated)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def acquire(self, name: str, holder: str, ttl: float) -> Held:
        """Take (or renew) ``name`` for ``holder`` for ``ttl`` seconds unless another holder's lease is still valid.
        Returns the lease as it stands afterwards: ours if ``result.holder == holder``."""
        now = datetime.now(UTC)
        async with self.engine.begin() as connection:
            statement = insert(connection, LeaseRow).values(
                name=name, holder=holder, expires_at=now + timedelta(seconds=ttl)
            )
            statement = statement.on_conflict_do_update(
                index_elements=[LeaseRow.name],
                set_={"holder": statement.excluded.holder, "expires_at": statement.excluded.expires_at},
                where=(LeaseRow.expires_at < now) | (LeaseRow.holder == holder),
            )
            await connection.execute(statement)
            row = (await connection.execute(select(LeaseRow).where(LeaseRow.name == name))).one()
        return Held(row.name, row.holder, row.expires_at)

    async def release(self, name: str, holder: str) -> None:
        """Free ``name`` if ``holder`` still holds it (a lease taken over after expiry is left alone)."""
        async with self.engine.begin() as connection:
            await connection.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder))


@asynccontextmanager
async def holding(
    leases: Leases, name: str, holder: str, ttl: float = DEFAULT_TTL, wait: float = 0.0
) -> AsyncIterator[Held]:
    """Try to take ``name``, for up to ``wait`` seconds while another holder has it; yield the lease as it stands
    (ours iff ``held.holder == holder``). While ours, it is renewed every ``ttl / 3`` seconds in the background (so
    a long job keeps it, and a crashed one loses it within ``ttl``) and released on exit."""
    held = await _acquire_waiting(leases, name, holder, ttl, wait)
    if held.holder != holder:
        yield held
        return
    renewer = asyncio.create_task(_renew(leases, name, holder, ttl), name=f"lease-{name}")
    try:
        yield held
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        await leases.release(name, holder)


async def _acquire_waiting(leases: Leases, name: str, holder: str, ttl: float, wait: float) -> Held:
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        held = await leases.acquire(name, holder, ttl)
        if held.holder == holder or asyncio.get_running_loop().time() >= deadline:
            return held
        await asyncio.sleep(WAIT_POLL)


async def _renew(leases: Leases, name: str, holder: str, ttl: float) -> None:
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            held = await leases.acquire(name, holder, ttl)
        except Exception:  # a database hiccup: try again next round, the lease is still valid for a while
            log.warning("could not renew the %s lease; retrying", name, exc_info=True)
            continue
        if held.holder != holder:
            log.error("the %s lease was taken over by %s while this process held it", name, held.holder)
            return
