"""Alembic's entry point for the account database (loaded by Alembic, never imported by dockyard).

Three ways in: a ``Connection`` in ``config.attributes["connection"]`` (how dockyard migrates, inside its own
transaction), a ``sqlalchemy.url`` main option (development: autogenerate against a scratch database), or
offline mode with that URL (prints the SQL instead of running it).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import catalog.models  # noqa: F401 - the catalog's index tables live on the same Base
from auth.models import Base


def _configure(connection: Connection) -> None:
    # Batch mode lets later migrations alter tables on SQLite (which rebuilds them); a no-op on PostgreSQL.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_configure)
    finally:
        await engine.dispose()


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection in config.attributes['connection'] and no sqlalchemy.url option")
    return url


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
    elif context.is_offline_mode():
        context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(_run_with_url(_url()))


_main()
