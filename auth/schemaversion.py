"""Whether a database is already at the newest schema revision, answered without importing Alembic.

Alembic (with Mako) costs every process about 10 MiB and a noticeable start-up time, and a database is migrated
once, by the first process that opens it after an upgrade; every later open, and every ``dockyard serve`` worker,
only needs to see that ``alembic_version`` names the newest revision. :func:`head` reads that revision from the
checked-in revision files (``revision = "..."`` / ``down_revision = "..."``); a test keeps it equal to what
Alembic computes.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"
_REVISION = re.compile(r"^revision\b[^=\n]*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=\n]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


@functools.cache
def head() -> str:
    """The one revision no other revision file names as its ``down_revision``."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in VERSIONS.glob("*.py"):
        source = script.read_text(encoding="utf-8")
        if found := _REVISION.search(source):
            revisions.add(found.group(1))
        for line in _DOWN_REVISION.findall(source):
            parents.update(_QUOTED.findall(line))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {VERSIONS} must have exactly one head, found {sorted(heads)}")
    return heads.pop()


async def at_head(engine: AsyncEngine) -> bool:
    """True when the database's ``alembic_version`` holds exactly :func:`head`; False when it holds anything
    else, has no such table, or can't be read (the caller then migrates, which reports real errors)."""
    try:
        async with engine.connect() as connection:
            versions = list(await connection.scalars(text("SELECT version_num FROM alembic_version")))
    except DBAPIError:
        return False
    return versions == [head()]
