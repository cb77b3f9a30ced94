"""auth/database.py: the synchronous twin of an SQLite engine (``sync_twin``) and the dialect's ``insert``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from auth.database import WRITE, open_database, sync_twin


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


async def test_a_worker_on_sqlite_never_loads_the_postgresql_dialect(tmp_path: Path) -> None:
    """Upserts (a lease, a repository) on a migrated SQLite database, with the worker's modules imported:
    PostgreSQL's dialect (2 MiB) stays out of the process. (Migrating loads it: Alembic imports every dialect's
    DDL; a worker of ``dockyard serve --workers N`` finds the database migrated.)"""
    url = f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}"
    await (await open_database(url)).dispose()
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        import registry.app, catalog.startup, auth.accounts
        from auth.accounts import AccountStore
        from auth.leases import Leases

        async def main():
            accounts = await AccountStore.open({url!r}, bcrypt_rounds=4)
            try:
                await accounts.ensure_repository("library/busybox", "public", actor="admin")
                held = await Leases(accounts.engine).acquire("gc", "me", 10)
                assert held.holder == "me"
            finally:
                await accounts.close()

        asyncio.run(main())
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("sqlalchemy.dialects."))))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout)
    assert "sqlalchemy.dialects.sqlite" in loaded
    assert not [name for name in loaded if name.startswith("sqlalchemy.dialects.postgresql")]
