"""The metadata index's hot reads (the ``/v2`` catalog and tags list) in one round trip each.

Through SQLAlchemy's async engine, one query on SQLite costs about nine hand-offs between the event loop and
aiosqlite's thread (``BEGIN``, cursor, execute, fetch, close, rollback), each a thread wake-up: on a busy machine
milliseconds, for a query SQLite answers in microseconds. So on SQLite, :class:`SqliteReads` runs the statements
(SQLAlchemy Core, compiled for SQLite) in one call on a small pool of threads, each with its own read-only
``sqlite3`` connection, all statements of one call in one read transaction (one snapshot; WAL readers never wait
for the writer). Rows are raw ``sqlite3`` values, without SQLAlchemy's type processing (a date is its stored text):
use these reads for names, counts and version stamps. On PostgreSQL (asyncpg needs no thread) :class:`EngineReads`
runs them on the engine, in one transaction as well.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

Rows = list[tuple[Any, ...]]
THREADS = 2


class Reads(Protocol):
    """Read-only statements run together, in one snapshot."""

    async def run(self, statements: Sequence[Executable]) -> list[Rows]:
        """The rows of each statement, in order."""
        ...

    def close(self) -> None:
        """Release threads and connections (idempotent)."""
        ...


def reads_for(engine: AsyncEngine) -> Reads:
    """:class:`SqliteReads` for an SQLite file, else :class:`EngineReads`."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database:
        return SqliteReads(engine, Path(database))
    return EngineReads(engine)


class EngineReads:
    """The statements on ``engine``, in one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def run(self, statements: Sequence[Executable]) -> list[Rows]:
        async with self.engine.connect() as connection:
            return [[tuple(row) for row in (await connection.execute(statement)).all()] for statement in statements]

    def close(self) -> None:
        return None


class SqliteReads:
    """The statements through ``sqlite3`` on :data:`THREADS` threads (see the module docstring)."""

    def __init__(self, engine: AsyncEngine, path: Path) -> None:
        self.dialect = engine.dialect
        self.uri = f"file:{quote(str(path))}?mode=ro"
        self._executor = ThreadPoolExecutor(THREADS, thread_name_prefix="dockyard-index-read")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    async def run(self, statements: Sequence[Executable]) -> list[Rows]:
        compiled = [self._compile(statement) for statement in statements]
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, compiled)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def _compile(self, statement: Executable) -> tuple[str, tuple[Any, ...]]:
        compiled = statement.compile(dialect=self.dialect, compile_kwargs={"render_postcompile": True})  # type: ignore[attr-defined]
        return str(compiled), tuple(compiled.params[name] for name in compiled.positiontup or ())

    def _run(self, compiled: list[tuple[str, tuple[Any, ...]]]) -> list[Rows]:
        connection = self._connection()
        connection.execute("BEGIN")
        try:
            return [connection.execute(sql, params).fetchall() for sql, params in compiled]
        finally:
            connection.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        """This thread's read-only connection (opened on first use)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.uri, uri=True, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute("PRAGMA cache_size=-2048")  # KiB: a small page cache per reader
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection
