"""The synchronous twin of an SQLite engine (auth.database.sync_twin)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from auth.database import WRITE, sync_twin


async def test_the_twin_shares_the_file_and_its_pragmas(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    twin = sync_twin(engine)
    assert twin is not None
    try:
        with twin.execution_options(**{WRITE: True}).begin() as connection:
            assert connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert connection.scalar(text("PRAGMA busy_timeout")) == 30000
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1), (2)"))
        async with engine.connect() as connection:
            assert (await connection.scalar(text("SELECT sum(x) FROM t"))) == 3
    finally:
        twin.dispose()
        await engine.dispose()


async def test_postgresql_has_no_twin() -> None:
    engine = create_async_engine("postgresql+asyncpg://user@127.0.0.1:1/none")  # never connects
    assert sync_twin(engine) is None
    await engine.dispose()
