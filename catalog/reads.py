"""The metadata index's hot reads (the ``/v2`` catalog and tags list), without SQLAlchemy's per-query round trips.

Through SQLAlchemy's async engine, one query on SQLite costs about nine hand-offs between the event loop and
aiosqlite's thread (``BEGIN``, cursor, execute, fetch, close, rollback), each a thread wake-up: on a busy machine
milliseconds, for a query SQLite answers in microseconds. So on SQLite, :class:`SqliteReads` runs statements
through ``sqlite3`` directly, all statements of one call in one read transaction (one snapshot; WAL readers never
wait for the writer):

- ``inline=True`` (a primary-key lookup, a page of at most :data:`INLINE_ROWS` rows from an index): on the calling
  thread, the event loop's, which costs less than the hand-off to another thread would;
- otherwise on a small pool of threads, one round trip for the whole call.

Each thread has its own read-only connection. Statements are SQLAlchemy Core with named ``bindparam``\\ s, compiled
once per statement object (keep them at module level) and run with a dict of values. Rows are raw ``sqlite3``
values, without SQLAlchemy's type processing (a date is its stored text): use these reads for names, counts and
version stamps. On PostgreSQL (asyncpg needs no thread) :class:`EngineReads` runs them on the engine, in one
transaction as well.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

Rows = list[tuple[Any, ...]]
Query = tuple[Executable, Mapping[str, Any]]
THREADS = 2
INLINE_ROWS = 1001  # a page of the API's usual sizes (n <= 1000, plus the one that tells whether more follow)


class Reads(Protocol):
    """Read-only statements run together, in one snapshot."""

    async def run(self, queries: Sequence[Query], *, inline: bool = False) -> list[Rows]:
        """The rows of each (statement, values), in order; ``inline`` for small reads (see the module)."""
        ...

    def close(self) -> None:
        """Release threads and connections (idempotent)."""
        ...


def reads_for(engine: AsyncEngine) -> Reads:
    """:class:`SqliteReads` for an SQLite file, else :class:`EngineReads`."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database:
        return SqliteReads(engine.dialect, Path(database))
    return EngineReads(engine)


class EngineReads:
    """The statements on ``engine``, in one transaction (``inline`` makes no difference)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def run(self, queries: Sequence[Query], *, inline: bool = False) -> list[Rows]:  # noqa: ARG002
        async with self.engine.connect() as connection:
            results = [await connection.execute(statement, dict(values)) for statement, values in queries]
            return [[tuple(row) for row in result.all()] for result in results]

    def close(self) -> None:
        return None


class SqliteReads:
    """The statements through ``sqlite3`` (see the module docstring)."""

    def __init__(self, dialect: Dialect, path: Path) -> None:
        self.dialect = dialect
        self.uri = f"file:{quote(str(path))}?mode=ro"
        self._executor = ThreadPoolExecutor(THREADS, thread_name_prefix="dockyard-index-read")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._compiled: dict[int, tuple[Executable, str, tuple[str, ...], dict[str, Any]]] = {}
        self._lock = threading.Lock()

    async def run(self, queries: Sequence[Query], *, inline: bool = False) -> list[Rows]:
        prepared = [self._prepare(statement, values) for statement, values in queries]
        if inline:
            return self._run(prepared)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, prepared)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def _prepare(self, statement: Executable, values: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
        """The SQL of ``statement`` (compiled on first use) and its parameters in order."""
        entry = self._compiled.get(id(statement))
        if entry is None or entry[0] is not statement:
            compiled = statement.compile(dialect=self.dialect)  # type: ignore[attr-defined]
            entry = (statement, str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))
            self._compiled[id(statement)] = entry
        _statement, sql, names, defaults = entry  # defaults: values the compiler added itself (OFFSET 0)
        return sql, tuple(values[name] if name in values else defaults[name] for name in names)

    def _run(self, prepared: list[tuple[str, tuple[Any, ...]]]) -> list[Rows]:
        connection = self._connection()
        connection.execute("BEGIN")
        try:
            return [connection.execute(sql, params).fetchall() for sql, params in prepared]
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
