"""The metadata index, writer side: keeps the ``catalog_*`` tables in step with storage.

The registry calls :class:`Index` after every successful storage change: ``manifest_pushed``,
``manifest_deleted``, ``tag_deleted``, ``repository_deleted``, and ``pulled`` for each manifest GET. Storage is
the source of truth: these event methods never raise (a failure is logged, the push or delete has already
succeeded, and the repository's rows are recreated from storage in the background, every
:attr:`Index.repair_interval` seconds until the database takes writes again), and :meth:`Index.rebuild`
recreates every row from storage.

Rules the rows follow (see :mod:`catalog.models` for the tables):

- a repository has a row while it has at least one manifest; its ``size`` counts each distinct digest it
  references once (blobs, child manifests and its manifests' own bytes), its ``tag_count`` its tags, its
  ``pushed_at`` the newest push; the row goes with its last manifest;
- pulls are counted in memory and written at most once a second (:attr:`Index.flush_interval`) and on
  :meth:`Index.close`, so a pull never waits on the database;
- every write to one repository takes that repository's row first (an upsert or ``SELECT ... FOR UPDATE``), so
  concurrent writers of one repository queue on PostgreSQL; SQLite writes queue on ``BEGIN IMMEDIATE``;
- manifest pushes are written by group commit: one transaction at a time per process, holding every push that
  arrived while the previous one ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Engine,
    Integer,
    Select,
    Table,
    bindparam,
    delete,
    exists,
    func,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth.database import WRITE, insert, sync_twin
from catalog.describe import ManifestFacts, describe
from catalog.models import IndexedBlobRow, IndexedManifestRow, IndexedRepositoryRow, IndexedTagRow
from catalog.reads import INLINE_ROWS, reads_for
from catalog.snapshot import RepositorySnapshot, snapshot
from registry.reference import Digest
from registry.store import Store
from registry.store.repos import repositories

__all__ = ["Index", "RebuildProgress", "RebuildReport", "namespace_of"]

log = logging.getLogger("dockyard.catalog")

R = cast(Table, IndexedRepositoryRow.__table__)
T = cast(Table, IndexedTagRow.__table__)
M = cast(Table, IndexedManifestRow.__table__)
B = cast(Table, IndexedBlobRow.__table__)
NAMESPACE_LENGTH = 64
TAG_NAMES_CACHED = 100_000  # tag names kept in cached tag lists, in all (a few MiB)


@dataclass(frozen=True)
class RebuildProgress:
    """Where a rebuild is: ``done`` of ``total`` repositories looked at, the last one ``name``."""

    done: int
    total: int
    name: str


@dataclass
class RebuildReport:
    """What a rebuild found in storage."""

    repositories: int = 0
    manifests: int = 0
    tags: int = 0
    skipped: list[str] = field(default_factory=list)  # "<repository>@<digest>" that could not be read

    def summary(self) -> str:
        skipped = f"; skipped {len(self.skipped)} unreadable manifests" if self.skipped else ""
        return f"indexed {self.repositories} repositories, {self.manifests} manifests and {self.tags} tags{skipped}"


@dataclass
class _Push:
    """A manifest push waiting for its group commit; ``done`` resolves when it is written (or failed)."""

    name: str
    tags: list[str]
    facts: ManifestFacts
    at: datetime
    done: asyncio.Future[None]


@dataclass
class _Pulls:
    count: int = 0
    at: datetime | None = None
    tags: dict[str, datetime] = field(default_factory=dict)


def namespace_of(name: str) -> str:
    """The first component of a nested name, "" for a top-level one (cut to the column's 64 characters: a
    longer component can't be a user or organization anyway)."""
    namespace, slash, _ = name.partition("/")
    return namespace[:NAMESPACE_LENGTH] if slash else ""


def _now() -> datetime:
    return datetime.now(UTC)


class Index:
    """The index over one database ``engine`` (already migrated, see ``auth.database.open_database``) and one
    OCI ``store``. Use from one event loop; ``await close()`` writes the pending pull counts."""

    flush_interval = 1.0
    repair_interval = 2.0

    def __init__(self, engine: AsyncEngine, store: Store) -> None:
        self.engine = engine
        self.store = store
        self._writer = engine.execution_options(**{WRITE: True})
        self._pulls: dict[str, _Pulls] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._sleeping = False
        self._stale: set[str] = set()  # repositories whose last index write failed, re-read from storage later
        self._repairer: asyncio.Task[None] | None = None
        self._pushes: list[_Push] = []  # waiting for the next group commit
        self._tag_lists: OrderedDict[tuple[str, str | None, int | None], tuple[tuple[Any, ...], list[str]]] = (
            OrderedDict()
        )
        self._tag_names_held = 0
        self._reads = reads_for(engine)
        self._postgres = engine.dialect.name == "postgresql"
        self._push_lock = asyncio.Lock()

    # -- events from the registry (never raise) --------------------------------------------------------------

    async def manifest_pushed(self, name: str, digest: Digest | str, tags: list[str]) -> None:
        """Manifest ``digest`` was stored in ``name`` under ``tags`` (maybe none): upsert its rows."""
        await self._safely(f"indexing {name}@{digest}", self._manifest_pushed(name, str(digest), tags), name)

    async def manifest_deleted(self, name: str, digest: Digest | str) -> None:
        """Manifest ``digest`` and every tag pointing to it left ``name``."""
        await self._safely(f"forgetting {name}@{digest}", self._manifest_deleted(name, str(digest)), name)

    async def tag_deleted(self, name: str, tag: str) -> None:
        """Tag ``tag`` left ``name`` (its manifest stays)."""
        await self._safely(f"forgetting {name}:{tag}", self._tag_deleted(name, tag), name)

    async def repository_deleted(self, name: str) -> None:
        """Repository ``name`` was removed from storage: drop all its rows (nested repositories stay)."""
        await self._safely(f"forgetting {name}", self._repository_deleted(name), name)

    async def pulled(self, name: str, reference: Digest | str) -> None:
        """A manifest of ``name`` was pulled by tag or digest: counted in memory, written within a second."""
        pulls = self._pulls.setdefault(name, _Pulls())
        pulls.count += 1
        pulls.at = _now()
        if not isinstance(reference, Digest) and ":" not in reference:
            pulls.tags[reference] = pulls.at
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later(), name="dockyard-index-pulls")

    # -- life cycle ------------------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write the pull counts gathered so far (a failure is logged and those counts are dropped)."""
        batch, self._pulls = self._pulls, {}
        if batch:
            await self._safely(f"counting pulls of {len(batch)} repositories", self._write_pulls(batch))

    async def close(self) -> None:
        """Stop the timers and write pending pull counts. The engine stays open (its owner disposes it)."""
        self._reads.close()
        committer = self.__dict__.pop("_committer", None)
        if committer is not None:
            await asyncio.to_thread(committer.shutdown)  # a commit under way finishes first
        twin = self.__dict__.pop("_twin", None)
        if twin is not None:
            twin.dispose()
        if self._repairer is not None:
            self._repairer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._repairer
        if self._stale:
            log.error(
                "metadata index: %s still stale; 'dockyard index rebuild' repairs it", ", ".join(sorted(self._stale))
            )
        task = self._flusher
        if task is not None:
            if self._sleeping:  # a flush already under way is let finish, not cut off mid-write
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()

    async def is_empty(self) -> bool:
        """True when no repository is indexed."""
        async with self.engine.connect() as connection:
            return not await connection.scalar(select(exists().select_from(R)))

    async def repository_names(self, after: str | None = None, limit: int | None = None) -> list[str]:
        """Indexed repository names sorted lexically (byte order on both databases), those after ``after``
        only, at most ``limit``."""
        query = _names_query("repositories", self._postgres, after is not None, limit is not None)
        values = {"after": after, "limit": limit}
        (rows,) = await self._reads.run([(query, values)], inline=limit is not None and limit <= INLINE_ROWS)
        return [row[0] for row in rows]

    async def tag_names(self, name: str, after: str | None = None, limit: int | None = None) -> list[str] | None:
        """The tags of repository ``name`` sorted lexically (byte order), after ``after``, at most ``limit``; None
        when the index holds no such repository (the caller then asks storage).

        Answers are cached per (name, after, limit) under the repository row's version: ``created_at``,
        ``pushed_at`` and ``tag_count``. Every change to a repository's tag names changes one of them (a new
        tag moves ``pushed_at`` forward, deletions lower ``tag_count``, a recreated repository has a new
        ``created_at``; a tag moved to another manifest keeps its name), so one single-row query tells whether the
        cached list is still the list, in this process or after a write by any other. Both go through
        :mod:`catalog.reads` (one round trip each)."""
        key = (name, after, limit)
        version = (_VERSION, {"name": name})
        cached = self._tag_lists.get(key)
        if cached is not None:
            (stamp,) = await self._reads.run([version], inline=True)
            if stamp and stamp[0] == cached[0]:
                self._tag_lists.move_to_end(key)
                return cached[1]
        query = _names_query("tags", self._postgres, after is not None, limit is not None)
        values = {"name": name, "after": after, "limit": limit}
        small = limit is not None and limit <= INLINE_ROWS
        stamp, rows = await self._reads.run([version, (query, values)], inline=small)  # one snapshot
        if not stamp:
            return None
        tags = [row[0] for row in rows]
        self._cache_tags(key, stamp[0], tags)
        return tags

    def _cache_tags(self, key: tuple[str, str | None, int | None], version: tuple[Any, ...], tags: list[str]) -> None:
        """Keep ``tags`` under ``key``; the least recently used lists go while more than :data:`TAG_NAMES_CACHED`
        names are held in all."""
        old = self._tag_lists.pop(key, None)
        self._tag_names_held -= len(old[1]) if old else 0
        if len(tags) > TAG_NAMES_CACHED:
            return
        self._tag_lists[key] = (version, tags)
        self._tag_names_held += len(tags)
        while self._tag_names_held > TAG_NAMES_CACHED:
            _key, (_version, dropped) = self._tag_lists.popitem(last=False)
            self._tag_names_held -= len(dropped)

    async def rebuild(self, progress: Callable[[RebuildProgress], None] | None = None) -> RebuildReport:
        """Recreate every row from storage, one repository per transaction, keeping the pull counts (and
        last pull times) of repositories and tags that still exist. Repositories that are gone, or have no
        manifest left, lose their rows. ``progress`` is called after each repository. Storage errors raise."""
        await self.flush()
        names = [name async for name in repositories(self.store.driver)]
        report = RebuildReport()
        indexed: set[str] = set()
        for done, name in enumerate(names, start=1):
            found = await snapshot(self.store, name)
            report.skipped += [f"{name}@{digest}" for digest in found.unreadable]
            if found.manifests:
                await self._replace(found)
                indexed.add(name)
                report.repositories += 1
                report.manifests += len(found.manifests)
                report.tags += len(found.tags)
            if progress is not None:
                progress(RebuildProgress(done, len(names), name))
        await self._drop_others(indexed)
        return report

    # -- writes ----------------------------------------------------------------------------------------------

    async def _manifest_pushed(self, name: str, digest: str, tags: list[str]) -> None:
        """Describe the manifest (storage reads, outside any transaction), then write it in the next group
        commit (see :meth:`_commit_pushes`)."""
        facts = await describe(self.store, name, digest)
        push = _Push(name, tags, facts, _now(), asyncio.get_running_loop().create_future())
        self._pushes.append(push)
        async with self._push_lock:
            if not push.done.done():
                batch, self._pushes = self._pushes, []
                await self._commit_pushes(batch)
        push.done.result()

    async def _commit_pushes(self, batch: list[_Push]) -> None:
        """Write every push of ``batch`` in one transaction and resolve their futures (each with the error, if
        it failed). Group commit: while one transaction runs, the pushes that arrive queue up and go together in
        the next, so concurrent pushes share one commit instead of each waiting for the database's write lock in
        turn. Repository rows are taken in name order, so two processes' batches can't deadlock. On SQLite the
        whole transaction runs in one worker thread (:func:`~auth.database.sync_twin`): through the async engine
        each of its statements would be several round trips to aiosqlite's thread."""
        try:
            steps = self._push_steps(batch)
            if self._twin is not None:
                await asyncio.get_running_loop().run_in_executor(self._committer, _run_steps, self._twin, steps)
            else:
                async with self._writer.begin() as connection:
                    for statement, parameters in steps:
                        await connection.execute(statement, parameters)
        except Exception as exc:
            for push in batch:
                push.done.set_exception(exc)
        else:
            for push in batch:
                push.done.set_result(None)

    def _push_steps(self, batch: list[_Push]) -> list[_Step]:
        """The statements of ``batch``: one ``executemany`` per table (a later push of the same manifest or tag
        wins), then the counts of every repository it touched."""
        upserts = self._upserts
        names = sorted({push.name for push in batch})
        latest = {push.name: push.at for push in sorted(batch, key=lambda p: p.at)}
        manifests = {(push.name, push.facts.digest): push for push in batch}
        steps: list[_Step] = [
            (upserts.claim, [_repository_row(name, latest[name]) for name in names]),
            (upserts.manifest, [_manifest_row(p.name, p.facts, p.at) for p in manifests.values()]),
            (upserts.forget_blobs, [{"r": name, "m": digest} for name, digest in manifests]),
        ]
        if blobs := [row for push in manifests.values() for row in _blob_rows(push.name, push.facts)]:
            steps.append((upserts.blob, blobs))
        if tags := {(push.name, tag): push for push in batch for tag in push.tags}:
            steps.append((upserts.tag, [_tag_row(name, tag, p.facts.digest, p.at) for (name, tag), p in tags.items()]))
        steps.append((_RECOUNT, [{"repository": name} for name in names]))
        return steps

    @functools.cached_property
    def _twin(self) -> Engine | None:
        return sync_twin(self.engine)

    @functools.cached_property
    def _committer(self) -> ThreadPoolExecutor:
        """The thread of the SQLite group commits: their own, so a commit waiting for another process's write lock
        (up to the busy timeout) holds no thread of the storage I/O."""
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockyard-index")

    @functools.cached_property
    def _upserts(self) -> _Upserts:
        return _Upserts.of(self.engine)

    async def _manifest_deleted(self, name: str, digest: str) -> None:
        async with self._writer.begin() as connection:
            if not await self._lock(connection, name):
                return
            await connection.execute(delete(T).where(T.c.repository == name, T.c.digest == digest))
            await connection.execute(delete(B).where(B.c.repository == name, B.c.manifest == digest))
            await connection.execute(delete(M).where(M.c.repository == name, M.c.digest == digest))
            await self._refresh(connection, name)

    async def _tag_deleted(self, name: str, tag: str) -> None:
        async with self._writer.begin() as connection:
            if await self._lock(connection, name):
                await connection.execute(delete(T).where(T.c.repository == name, T.c.name == tag))
                await self._refresh(connection, name)

    async def _repository_deleted(self, name: str) -> None:
        async with self._writer.begin() as connection:
            await self._delete_repository(connection, name)

    async def _claim(self, connection: AsyncConnection, name: str, now: datetime) -> None:
        """Create the repository's row (or take it and move its ``pushed_at``): the first statement of a push."""
        await connection.execute(self._upserts.claim, _repository_row(name, now))

    @staticmethod
    async def _lock(connection: AsyncConnection, name: str) -> bool:
        """Take the repository's row for this transaction; False when it is not indexed."""
        found = await connection.scalar(select(R.c.name).where(R.c.name == name).with_for_update())
        return found is not None

    async def _put_manifest(self, connection: AsyncConnection, name: str, facts: ManifestFacts, now: datetime) -> None:
        upserts = self._upserts
        await connection.execute(upserts.manifest, _manifest_row(name, facts, now))
        await connection.execute(upserts.forget_blobs, {"r": name, "m": facts.digest})
        if rows := _blob_rows(name, facts):
            await connection.execute(upserts.blob, rows)

    async def _put_tag(
        self, connection: AsyncConnection, name: str, tag: str, digest: str, at: datetime, pulled: datetime | None
    ) -> None:
        await connection.execute(self._upserts.tag, _tag_row(name, tag, digest, at, pulled))

    async def _refresh(self, connection: AsyncConnection, name: str) -> None:
        """Recount ``tag_count`` and ``size``; drop the repository when its last manifest went."""
        manifests = await connection.scalar(select(func.count()).select_from(M).where(M.c.repository == name))
        if not manifests:
            await self._delete_repository(connection, name)
            return
        await self._recount(connection, name)

    @staticmethod
    async def _recount(connection: AsyncConnection, name: str) -> None:
        """``tag_count`` and ``size`` of repository ``name`` from its rows, in one statement."""
        await connection.execute(_RECOUNT, {"repository": name})

    @staticmethod
    async def _delete_repository(connection: AsyncConnection, name: str) -> None:
        # Children first: the foreign keys cascade too, but SQLite only with its pragma on.
        for table in (T, B, M):
            await connection.execute(delete(table).where(table.c.repository == name))
        await connection.execute(delete(R).where(R.c.name == name))

    async def _write_pulls(self, batch: dict[str, _Pulls]) -> None:
        async with self._writer.begin() as connection:
            for name, pulls in batch.items():
                await connection.execute(
                    update(R)
                    .where(R.c.name == name)
                    .values(pull_count=R.c.pull_count + pulls.count, last_pull_at=pulls.at)
                )
                for tag, at in pulls.tags.items():
                    await connection.execute(
                        update(T).where(T.c.repository == name, T.c.name == tag).values(last_pull_at=at)
                    )

    async def _replace(self, found: RepositorySnapshot) -> None:
        """Replace one repository's rows with ``found``, keeping its pull count and tags' last pulls."""
        name = found.name
        async with self._writer.begin() as connection:
            pull_count, last_pull_at, tag_pulls = await self._pulls_of(connection, name)
            await self._delete_repository(connection, name)
            await self._claim(connection, name, found.created_at)
            kept = {"pushed_at": found.pushed_at, "pull_count": pull_count, "last_pull_at": last_pull_at}
            await connection.execute(update(R).where(R.c.name == name).values(**kept))
            for facts, at in found.manifests:
                await self._put_manifest(connection, name, facts, at)
            for tag, digest, at in found.tags:
                await self._put_tag(connection, name, tag, digest, at, tag_pulls.get(tag))
            await self._refresh(connection, name)

    @staticmethod
    async def _pulls_of(
        connection: AsyncConnection, name: str
    ) -> tuple[int, datetime | None, dict[str, datetime | None]]:
        """The repository's pull count, last pull, and its tags' last pulls (zeros when not indexed)."""
        row = (await connection.execute(select(R.c.pull_count, R.c.last_pull_at).where(R.c.name == name))).first()
        tags = await connection.execute(select(T.c.name, T.c.last_pull_at).where(T.c.repository == name))
        tag_pulls: dict[str, datetime | None] = {row.name: row.last_pull_at for row in tags}
        return (row[0], row[1], tag_pulls) if row is not None else (0, None, tag_pulls)

    async def _drop_others(self, keep: set[str]) -> None:
        async with self._writer.begin() as connection:
            for name in set(await connection.scalars(select(R.c.name))) - keep:
                await self._delete_repository(connection, name)

    async def _safely(self, what: str, work: Awaitable[None], name: str | None = None) -> None:
        """Run one index write; a failure (database down, disk full) is logged and, for repository ``name``,
        repaired in the background: its rows are recreated from storage once the database takes writes again."""
        try:
            await work
        except Exception:  # storage is the truth and already changed
            rebuild = "'dockyard index rebuild' repairs the index"
            repair = f"repairing it from storage soon ({rebuild})" if name else rebuild
            log.exception("metadata index: %s failed; %s", what, repair)
            if name is not None:
                self._stale.add(name)
                if self._repairer is None:
                    self._repairer = asyncio.create_task(self._repair_later(), name="dockyard-index-repair")

    async def _repair_later(self) -> None:
        """Reindex the stale repositories from storage every :attr:`repair_interval` until all succeed."""
        try:
            while self._stale:
                await asyncio.sleep(self.repair_interval)
                for name in sorted(self._stale):
                    try:
                        await self.reindex(name)
                    except Exception as exc:  # still failing: the next round tries again
                        log.warning("metadata index: repairing %s failed (%s); retrying", name, exc)
                        break
                    self._stale.discard(name)
                    log.info("metadata index: %s repaired from storage", name)
        finally:
            self._repairer = None

    async def reindex(self, name: str) -> None:
        """Recreate the rows of repository ``name`` from storage (drop them when it has no manifest left)."""
        found = await snapshot(self.store, name)
        if found.manifests:
            await self._replace(found)
            return
        async with self._writer.begin() as connection:
            await self._delete_repository(connection, name)

    async def _flush_later(self) -> None:
        self._sleeping = True
        try:
            await asyncio.sleep(self.flush_interval)
        finally:
            self._sleeping = False
            self._flusher = None
        await self.flush()


@dataclass(frozen=True)
class _Upserts:
    """The group commit's statements for one dialect, each run with many parameter sets (``executemany``)."""

    claim: Any
    manifest: Any
    forget_blobs: Any
    blob: Any
    tag: Any

    @classmethod
    def of(cls, engine: AsyncEngine) -> _Upserts:
        def upsert(model: Any, keys: list[str], update: list[str]) -> Any:
            statement = insert(engine, model)
            if not update:
                return statement.on_conflict_do_nothing(index_elements=keys)
            return statement.on_conflict_do_update(
                index_elements=keys, set_={column: statement.excluded[column] for column in update}
            )

        return cls(
            claim=upsert(IndexedRepositoryRow, ["name"], ["pushed_at"]),
            manifest=upsert(IndexedManifestRow, ["repository", "digest"], list(_MANIFEST_FIELDS)),
            forget_blobs=delete(B).where(B.c.repository == bindparam("r"), B.c.manifest == bindparam("m")),
            blob=upsert(IndexedBlobRow, ["repository", "manifest", "digest"], []),
            tag=upsert(IndexedTagRow, ["repository", "name"], ["digest", "pushed_at"]),
        )


_MANIFEST_FIELDS = ("media_type", "artifact_type", "subject", "size", "platforms", "config", "pushed_at")


def _repository_row(name: str, at: datetime) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace_of(name),
        "created_at": at,
        "pushed_at": at,
        "tag_count": 0,
        "size": 0,
        "pull_count": 0,
        "last_pull_at": None,
    }


def _manifest_row(name: str, facts: ManifestFacts, at: datetime) -> dict[str, Any]:
    return {
        "repository": name,
        "digest": facts.digest,
        "media_type": facts.media_type,
        "artifact_type": facts.artifact_type,
        "subject": facts.subject,
        "size": facts.size,
        "platforms": facts.platforms,
        "config": facts.config,
        "pushed_at": at,
    }


def _blob_rows(name: str, facts: ManifestFacts) -> list[dict[str, Any]]:
    """The blob rows of manifest ``facts`` in repository ``name`` (inserted with ``ON CONFLICT DO NOTHING``)."""
    return [{"repository": name, "manifest": facts.digest, "digest": b.digest, "size": b.size} for b in facts.blobs]


def _tag_row(name: str, tag: str, digest: str, at: datetime, pulled: datetime | None = None) -> dict[str, Any]:
    return {"repository": name, "name": tag, "digest": digest, "pushed_at": at, "last_pull_at": pulled}


def _size_query(name: str | BindParameter[str]) -> Any:
    """Compressed bytes of repository ``name``: each distinct digest once, over the blobs its manifests
    reference and the manifests' own bytes (a manifest's ``size`` minus its blob rows)."""
    referenced = (
        select(func.coalesce(func.sum(B.c.size), 0))
        .where(B.c.repository == M.c.repository, B.c.manifest == M.c.digest)
        .scalar_subquery()
    )
    parts = union_all(
        select(B.c.digest, B.c.size).where(B.c.repository == name),
        select(M.c.digest, (M.c.size - referenced).label("size")).where(M.c.repository == name),
    ).subquery()
    per_digest = select(parts.c.digest, func.max(parts.c.size).label("size")).group_by(parts.c.digest).subquery()
    return select(func.coalesce(func.sum(per_digest.c.size), 0))


_RECOUNT = (
    update(R)
    .where(R.c.name == bindparam("repository"))
    .values(
        tag_count=select(func.count())
        .select_from(T)
        .where(T.c.repository == bindparam("repository"))
        .scalar_subquery(),
        size=_size_query(bindparam("repository")).scalar_subquery(),
    )
)
"""``tag_count`` and ``size`` of repository ``name`` from its rows (one statement, built once)."""

_Step = tuple[Any, list[dict[str, Any]]]
"""A statement and its parameter sets (run as one ``executemany``)."""


def _run_steps(engine: Engine, steps: list[_Step]) -> None:
    """Run ``steps`` in one write transaction of the synchronous ``engine`` (blocking: call it in a thread)."""
    with engine.execution_options(**{WRITE: True}).begin() as connection:
        for statement, parameters in steps:
            connection.execute(statement, parameters)


# What changes whenever a repository's set of tag names changes (see :meth:`Index.tag_names`).
_VERSION = select(R.c.created_at, R.c.pushed_at, R.c.tag_count).where(R.c.name == bindparam("name"))


@functools.cache
def _names_query(table: str, postgres: bool, after: bool, limit: bool) -> Select[Any]:
    """Names of repositories (``table`` "repositories") or of one repository's tags (``"tags"``, parameter
    ``name``) in byte order, those after parameter ``after`` and at most parameter ``limit`` when asked for. One
    statement object per shape, so that :mod:`catalog.reads` compiles each once."""
    column = R.c.name if table == "repositories" else T.c.name
    query = select(column) if table == "repositories" else select(column).where(T.c.repository == bindparam("name"))
    key = column.collate("C") if postgres else column  # PostgreSQL's default collation is not byte order
    query = query.order_by(key)
    if after:
        query = query.where(key > bindparam("after"))
    return query.limit(bindparam("limit", type_=Integer)) if limit else query
