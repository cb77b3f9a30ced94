"""The account database as a SQLAlchemy engine: which URL, how to connect, and the schema migration on open.

The accounts (``auth.accounts.AccountStore``) and the catalog's metadata index (``catalog.index.Index``) live in
the same database and both open it with :func:`open_database`. Two drivers are supported:
``sqlite+aiosqlite:////abs/path/accounts.db`` (the default, a file in ``state_dir``; WAL journal, foreign keys on,
a busy timeout) and ``postgresql+asyncpg://...`` (for several replicas).

Write transactions on SQLite start with ``BEGIN IMMEDIATE`` when the engine (or connection) carries the execution
option ``WRITE`` (``engine.execution_options(**{WRITE: True})``): writers queue on the database lock (up to the
busy timeout) instead of failing when a read transaction tries to become a write one. Inserts that may race use
``ON CONFLICT`` (:func:`insert` gives the dialect's statement). Concurrent migrations wait for each other: an
advisory lock on PostgreSQL, the write lock on SQLite.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from auth.schemaversion import at_head

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

    from auth.models import Base
    from registry.config import Settings

__all__ = [
    "WRITE",
    "DatabaseError",
    "DatabaseURLError",
    "database_url",
    "default_database_url",
    "insert",
    "is_unavailable",
    "open_database",
    "safe_url",
    "sync_twin",
]

WRITE = "dockyard_write"  # execution option: this transaction will write (BEGIN IMMEDIATE on SQLite)
DATABASE_FILE = "accounts.db"
_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
_MIGRATION_LOCK = 0x646F636B79617264  # pg_advisory_xact_lock key: b"dockyard"
_SQLITE_PRAGMAS = ("busy_timeout=30000", "journal_mode=WAL", "foreign_keys=ON")  # wait for locks first


class DatabaseError(Exception):
    """The database can't be reached or migrated; ``str(exc)`` is one readable line (no password in it)."""


class DatabaseURLError(DatabaseError):
    """The URL does not parse or names an unsupported driver (or SQLite without a file)."""


def default_database_url(settings: Settings) -> str:
    """The SQLite file ``<state_dir>/accounts.db`` (absolute), where the accounts have always lived."""
    return f"sqlite+aiosqlite:///{(settings.state_dir / DATABASE_FILE).resolve()}"


def database_url(settings: Settings) -> str:
    """``auth.database_url`` when configured, else :func:`default_database_url`."""
    return settings.auth.database_url or default_database_url(settings)


async def open_database(url: str) -> AsyncEngine:
    """An engine on ``url`` with the schema migrated to the newest revision (idempotent).

    A SQLite file (and its directory) is created when missing, readable by its owner only. Raises
    ``DatabaseURLError`` for an unsupported URL and ``DatabaseError`` when the database can't be reached or
    migrated (the engine is disposed then). The caller disposes the engine it gets.
    """
    parsed = parse_url(url)
    engine = _create_engine(parsed)
    try:
        await _migrate(engine)
    except Exception as exc:
        await engine.dispose()
        summary = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"cannot open the account database {safe_url(parsed)}: {summary}") from exc
    return engine


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) says the database can't be reached right now:
    connection refused or lost, server shutting down or starting up, the pool's wait timed out, SQLite busy or
    failing its I/O. Retrying later may succeed; the data is not at fault. (asyncpg's connect errors reach the
    caller unwrapped, as ``OSError`` or asyncpg's own classes.)"""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _unavailable_one(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _unavailable_one(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    if isinstance(exc, sa_exc.TimeoutError | ConnectionError | TimeoutError):
        return True
    module = type(exc).__module__
    names = {cls.__name__ for cls in type(exc).__mro__}
    return module.startswith("asyncpg") and bool(
        names & {"PostgresConnectionError", "CannotConnectNowError", "ConnectionDoesNotExistError", "InterfaceError"}
    )


def insert(bind: AsyncEngine | AsyncConnection, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT with the dialect's ``ON CONFLICT`` support (both databases spell it the same way). The dialect's
    module is imported here, not at start: the engine has loaded it by then, and the other one (PostgreSQL's is
    2 MiB) never loads in a process that does not use it."""
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(model)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model)


def parse_url(url: str) -> URL:
    """The parsed URL of a supported database; ``DatabaseURLError`` otherwise."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseURLError("the account database URL does not parse") from exc
    if parsed.drivername not in _DRIVERS:
        raise DatabaseURLError(f"unsupported database URL {safe_url(parsed)}: use {' or '.join(_DRIVERS)}")
    if parsed.drivername.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise DatabaseURLError("SQLite needs a database file: sqlite+aiosqlite:////absolute/path/accounts.db")
    return parsed


def safe_url(url: URL) -> str:
    """The URL with its password hidden."""
    return url.render_as_string(hide_password=True)


def _create_engine(url: URL) -> AsyncEngine:
    if url.drivername.startswith("postgresql"):
        return create_async_engine(url, pool_pre_ping=True)
    _create_private_file(Path(str(url.database)))
    engine = create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def sync_twin(engine: AsyncEngine) -> Engine | None:
    """A synchronous engine on the same SQLite file as ``engine`` (same pragmas, same ``BEGIN`` rules), for
    transactions that run whole in one worker thread instead of a thread round trip per statement; None when
    ``engine`` is not SQLite (asyncpg needs no thread). Its connections may move between threads; dispose it with
    the engine."""
    if engine.dialect.name != "sqlite":
        return None
    twin = create_engine(
        engine.url.set(drivername="sqlite+pysqlite"), pool_size=1, connect_args={"check_same_thread": False}
    )
    event.listen(twin, "connect", _on_sqlite_connect)
    event.listen(twin, "begin", _on_sqlite_begin)
    return twin


def _create_private_file(path: Path) -> None:
    """Create an empty SQLite database file readable by its owner only (SQLite gives its -wal/-shm the same mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take BEGIN away from the driver (it would only begin before DML, not before reads or DDL) and emit our own.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    writes = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


async def _migrate(engine: AsyncEngine) -> None:
    """Bring the schema to head in one transaction; concurrent openers wait for each other. A database already
    at head is only checked (:mod:`auth.schemaversion`: Alembic is not even imported)."""
    if await at_head(engine):
        return
    from auth import migrations

    async with engine.execution_options(**{WRITE: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        await connection.run_sync(migrations.upgrade)
