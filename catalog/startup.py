"""Opening the metadata index for a process: which database, and the rebuild of an empty index at start.

The index lives in the account database (``auth.database_url``, else ``<state_dir>/accounts.db``) in both auth
modes, so an open registry has one too. Only where no place was configured and storage does not last either
— memory storage, or an open registry on non-filesystem storage without ``auth.state_dir`` — the index is kept in
a temporary SQLite file removed at close, and rebuilt from storage at each start. Several worker processes share
one such file (:func:`shared_scratch_index`), so they all answer from the same index.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path

from auth.database import database_url, open_database
from catalog.index import Index, RebuildProgress
from registry.config import FilesystemStorage, MemoryStorage, Settings
from registry.store import Store
from registry.store.repos import repositories

__all__ = ["index_database_url", "opened_index", "rebuild_if_needed", "shared_scratch_index"]

log = logging.getLogger("dockyard.catalog")
PROGRESS_EVERY = 2.0  # seconds between progress lines of a start-up rebuild


def index_database_url(settings: Settings) -> str | None:
    """The URL of the database holding the index, or None for a temporary one (see the module docstring)."""
    auth = settings.auth
    if auth.database_url or auth.state_dir is not None or auth.mode == "token":
        return database_url(settings)
    if isinstance(settings.storage, FilesystemStorage):
        return database_url(settings)
    return None


@contextmanager
def shared_scratch_index(settings: Settings) -> Iterator[Settings]:
    """``settings`` for several processes serving together: where each would keep its index in a temporary file of
    its own (see the module docstring) and see only the pushes it handled, they get one temporary file for all of
    them (as ``auth.database_url``), removed on exit. Unchanged ``settings`` where the index has a lasting place."""
    if index_database_url(settings) is not None:
        yield settings
        return
    with _scratch_database() as url:
        yield settings.model_copy(update={"auth": settings.auth.model_copy(update={"database_url": url})})


@contextmanager
def _scratch_database() -> Iterator[str]:
    """The URL of a new SQLite file in a temporary folder, removed with the folder on exit."""
    with tempfile.TemporaryDirectory(prefix="dockyard-index-") as folder:
        yield f"sqlite+aiosqlite:///{Path(folder) / 'index.db'}"


@asynccontextmanager
async def opened_index(settings: Settings, store: Store) -> AsyncIterator[Index]:
    """An :class:`Index` over ``store`` on the configured database (migrated on open); closed, with its pending
    pull counts written and its engine disposed, on exit. Raises ``auth.database.DatabaseError`` (one line)."""
    url = index_database_url(settings)
    with ExitStack() as scratch:
        if url is None:
            url = scratch.enter_context(_scratch_database())
        engine = await open_database(url)
        index = Index(engine, store)
        try:
            yield index
        finally:
            await index.close()
            await engine.dispose()


async def rebuild_if_needed(index: Index, settings: Settings) -> None:
    """Rebuild at start when the index is empty but storage holds repositories, and always on memory storage
    (it starts empty, so a persistent index may hold rows of an earlier run). Progress goes to the log."""
    if isinstance(settings.storage, MemoryStorage):
        await index.rebuild()
        return
    if not await index.is_empty() or not await _has_repositories(index.store):
        return
    log.info("the metadata index is empty: rebuilding it from storage")
    report = await index.rebuild(_log_progress())
    log.info("metadata index rebuilt: %s", report.summary())


async def _has_repositories(store: Store) -> bool:
    async for _name in repositories(store.driver):
        return True
    return False


def _log_progress() -> Callable[[RebuildProgress], None]:
    """A progress callback that logs a line at most every ``PROGRESS_EVERY`` seconds, and the last one."""
    last = time.monotonic()

    def report(progress: RebuildProgress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY or progress.done == progress.total:
            last = now
            log.info("metadata index: %d of %d repositories (%s)", progress.done, progress.total, progress.name)

    return report
