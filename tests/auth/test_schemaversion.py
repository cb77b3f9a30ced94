"""auth/schemaversion.py: the head revision read from the revision files, and the Alembic-free check that a
database is already migrated."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from auth import migrations
from auth.database import open_database
from auth.schemaversion import at_head, head


def test_head_is_what_alembic_computes() -> None:
    assert head() == migrations.head_revision()


async def test_an_empty_database_is_not_at_head_until_opened(database_url: str) -> None:
    plain = create_async_engine(database_url)
    try:
        assert not await at_head(plain)  # no alembic_version table yet
        engine = await open_database(database_url)
        await engine.dispose()
        assert await at_head(plain)
        async with plain.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        assert not await at_head(plain)  # an older revision: open_database would migrate
    finally:
        await plain.dispose()


async def test_opening_a_migrated_database_does_not_import_alembic(database_url: str) -> None:
    engine = await open_database(database_url)
    await engine.dispose()
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from auth.database import open_database

        async def main():
            engine = await open_database({database_url!r})
            await engine.dispose()

        asyncio.run(main())
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "mako")))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
