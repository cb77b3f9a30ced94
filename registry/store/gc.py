"""Online garbage collection: mark and sweep over the registry's own records, while it keeps serving.

For each repository, in turn:

1. **Scan** its records (``_layers``, ``_manifests``, ``_referrers``, ``_uploads``; nested repositories
   are their own).
2. **Decide** which manifests stay. Without ``delete_untagged``: all of them. With it: those reachable from
   a tag, through index children, through referrers of a kept manifest (signatures, SBOMs) or as the
   subject of a kept referrer, plus any manifest used within the grace period. The others are deleted.
3. **Mark** what kept manifests need: their config and layers, their children, their own bytes.
4. **Sweep** the repository: layer links that no kept manifest needs, tags and referrer records that
   point at a manifest no longer there, and upload sessions older than ``upload_max_age``.

Then, across the registry, blobs that no repository marked are deleted, then upload objects no session or blob
owns, then (on local storage) the temporary files and empty directories a killed writer left behind.

Nothing used within the grace period is deleted: see :mod:`registry.store.usage` for how "used" is
recorded so that a push racing the sweep never ends with a manifest whose blobs are gone. Every deletion
re-checks the last use under :attr:`Usage.lock` right before deleting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from registry.errors import RegistryError
from registry.manifests import ParsedManifest, parse_manifest
from registry.reference import Digest
from registry.store import Store, links
from registry.store.paths import ROOT, key
from registry.store.repos import repositories
from storage.driver import FileInfo
from storage.errors import PathNotFound
from storage.filesystem import purge_temporaries

log = logging.getLogger("dockyard.gc")
T = TypeVar("T")
DEFAULT_GRACE = 3600.0
DEFAULT_UPLOAD_MAX_AGE = 7 * 86400.0
CLOCK_SLACK = 2.0  # S3 reports whole seconds; markers are refreshed at most once a second


@dataclass(frozen=True)
class GcOptions:
    """What a run may delete. Times are in seconds."""

    grace: float = DEFAULT_GRACE
    delete_untagged: bool = False
    upload_max_age: float = DEFAULT_UPLOAD_MAX_AGE
    dry_run: bool = False


@dataclass
class GcReport:
    """What a run deleted (or, with ``dry_run``, would delete)."""

    dry_run: bool = False
    repositories: int = 0
    manifests_deleted: list[str] = field(default_factory=list)  # "<repository>@<digest>"
    records_deleted: int = 0  # layer links, dangling tags and referrer records
    uploads_purged: int = 0
    upload_bytes: int = 0
    temporaries_purged: int = 0  # files a killed writer left (local storage)
    blobs_deleted: int = 0
    blob_bytes: int = 0
    blobs_kept: int = 0

    def summary(self) -> str:
        """One line for the log or the terminal."""
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"gc {verb} {len(self.manifests_deleted)} manifests, {self.blobs_deleted} blobs "
            f"({self.blob_bytes} bytes), {self.uploads_purged} stale uploads ({self.upload_bytes} bytes), "
            f"{self.temporaries_purged} stale temporary files and {self.records_deleted} repository records; "
            f"kept {self.blobs_kept} blobs in "
            f"{self.repositories} repositories"
        )


@dataclass
class _Repo:
    """The records of one repository, as scanned."""

    name: str
    layers: set[Digest] = field(default_factory=set)
    revisions: dict[Digest, float] = field(default_factory=dict)  # digest -> revision link mtime
    tags: dict[str, Digest | None] = field(default_factory=dict)  # tag -> digest (None: unreadable)
    referrers: list[tuple[Digest, Digest]] = field(default_factory=list)  # (subject, referrer)
    uploads: dict[str, list[FileInfo]] = field(default_factory=dict)  # session id -> its files


class Collector:
    """One garbage-collection run over one store."""

    def __init__(self, store: Store, options: GcOptions) -> None:
        self.store = store
        self.driver = store.driver
        self.options = options
        self.started = time.time()
        self.cutoff = self.started - options.grace - CLOCK_SLACK
        self.report = GcReport(dry_run=options.dry_run)
        self.marked: set[Digest] = set()
        self.sessions: set[str] = set()  # upload sessions seen (their objects are handled with them)
        self.pointed: set[str] = set()  # upload objects that are blobs' bytes

    async def run(self) -> GcReport:
        """Collect every repository, then the blobs none of them needs."""
        async for name in repositories(self.driver):
            self.report.repositories += 1
            await self._collect_repository(await self._scan(name))
        await self._sweep_blobs()
        await self._sweep_objects()
        await self._sweep_temporaries()
        return self.report

    # -- scan ---------------------------------------------------------------------------------------

    async def _scan(self, name: str) -> _Repo:
        repo = _Repo(name)
        base = key("repo", name=name)
        for entry in await links.children(self.driver, base):
            if entry.startswith("_"):
                async for info in self.driver.walk(f"{base}/{entry}"):
                    await self._classify(repo, info, info.path[len(base) + 1 :].split("/"))
        return repo

    async def _classify(self, repo: _Repo, info: FileInfo, parts: list[str]) -> None:
        match parts:
            case ["_layers", algorithm, hexpart, "link"]:
                if digest := links.digest_of_names(algorithm, hexpart):
                    repo.layers.add(digest)
            case ["_manifests", "revisions", algorithm, hexpart, "link"]:
                if digest := links.digest_of_names(algorithm, hexpart):
                    repo.revisions[digest] = info.modified
            case ["_manifests", "tags", tag, "link"]:
                content = await links.read_optional(self.driver, info.path)
                repo.tags[tag] = links.digest_of_names(*content.decode().partition(":")[::2]) if content else None
            case ["_referrers", algorithm, hexpart, entry]:
                subject = links.digest_of_names(algorithm, hexpart)
                referrer = links.digest_of_names(*entry.partition("-")[::2])
                if subject and referrer:
                    repo.referrers.append((subject, referrer))
            case ["_uploads", upload_id, _]:
                repo.uploads.setdefault(upload_id, []).append(info)

    # -- decide and mark ----------------------------------------------------------------------------

    async def _collect_repository(self, repo: _Repo) -> None:
        parsed = {digest: p for digest in repo.revisions if (p := await self._parse(repo.name, digest))}
        keep = await self._kept_manifests(repo, parsed) if self.options.delete_untagged else set(repo.revisions)
        for digest in sorted(set(repo.revisions) - keep, key=str):
            await self._delete_manifest(repo, digest, parsed.get(digest))
        needed: set[Digest] = set(keep)
        for digest in keep:
            if manifest := parsed.get(digest):
                needed.update(d.parsed_digest() for d in (*manifest.blobs, *manifest.children))
        self.marked |= needed
        await self._sweep_repository(repo, needed, keep)

    async def _parse(self, name: str, digest: Digest) -> ParsedManifest | None:
        """The stored manifest, parsed as on push; None when its record or bytes are gone or unreadable."""
        record = await links.read_optional(self.driver, key("revision_link", name=name, digest=digest))
        if record is None:
            return None
        try:
            return parse_manifest(await self.store.blobs.read_small(digest), json.loads(record)["mediaType"])
        except (PathNotFound, RegistryError, ValueError, KeyError, TypeError):
            return None

    async def _kept_manifests(self, repo: _Repo, parsed: dict[Digest, ParsedManifest]) -> set[Digest]:
        """Manifests reachable from tags, recent use, index children and referrer chains."""
        referrers: dict[Digest, set[Digest]] = {}
        for digest, manifest in parsed.items():
            if manifest.subject is not None:
                referrers.setdefault(manifest.subject.parsed_digest(), set()).add(digest)
        pending = [d for d in repo.tags.values() if d in repo.revisions]
        pending += [d for d in repo.revisions if await self._recent(d, repo.revisions[d])]
        keep: set[Digest] = set()
        while pending:
            digest = pending.pop()
            if digest in keep or digest not in repo.revisions:
                continue
            keep.add(digest)
            found = parsed.get(digest)
            if found is not None:
                pending += [c.parsed_digest() for c in found.children]
                pending += [found.subject.parsed_digest()] if found.subject else []
            pending += referrers.get(digest, set())
        return keep

    async def _recent(self, digest: Digest, *times: float) -> bool:
        """True if ``digest`` (or one of its records, by ``times``) was used within the grace period."""
        return max(times, default=0.0) >= self.cutoff or await self.store.blobs.last_use(digest) >= self.cutoff

    # -- sweep --------------------------------------------------------------------------------------

    async def _delete_manifest(self, repo: _Repo, digest: Digest, manifest: ParsedManifest | None) -> None:
        revision = key("revision_link", name=repo.name, digest=digest)
        async with self.store.blobs.usage.lock:
            if await self._recent(digest, await links.modified(self.driver, revision)):
                return
            if not self.options.dry_run:
                if manifest is not None and manifest.subject is not None:
                    subject = manifest.subject.parsed_digest()
                    await self._delete(key("referrer", name=repo.name, digest=subject, referrer=digest))
                await self._delete(key("revision", name=repo.name, digest=digest))
                self.store.manifests.forget(repo.name, digest)
        repo.revisions.pop(digest, None)
        self.report.manifests_deleted.append(f"{repo.name}@{digest}")

    async def _sweep_repository(self, repo: _Repo, needed: set[Digest], keep: set[Digest]) -> None:
        for digest in repo.layers:
            if digest not in needed:
                await self._delete_record(key("layer_link", name=repo.name, digest=digest), digest)
        for tag, target in repo.tags.items():
            if target not in keep:
                link = key("tag_link", name=repo.name, tag=tag)
                await self._delete_record(link, target, key("tag", name=repo.name, tag=tag))
        for subject, referrer in repo.referrers:
            if referrer not in keep:
                await self._delete_record(key("referrer", name=repo.name, digest=subject, referrer=referrer), referrer)
        for upload_id, files in repo.uploads.items():
            await self._purge_upload(repo.name, upload_id, files)

    async def _delete_record(self, path: str, digest: Digest | None, folder: str = "") -> None:
        """Delete one repository record (or its ``folder``) unless it, or the digest it names, was
        written or used within the grace period. Re-checked under the usage lock, right before deleting."""
        async with self.store.blobs.usage.lock:
            recent = digest is not None and await self._recent(digest)
            if recent or await links.modified(self.driver, path) >= self.cutoff:
                return
            if not self.options.dry_run:
                await self._delete(folder or path)
        self.report.records_deleted += 1

    async def _purge_upload(self, name: str, upload_id: str, files: list[FileInfo]) -> None:
        started = await links.read_optional(self.driver, key("upload_started", name=name, upload=upload_id))
        try:
            begun = float(started) if started else max(f.modified for f in files)
        except ValueError:
            begun = max(f.modified for f in files)
        self.sessions.add(upload_id)
        if begun >= self.started - self.options.upload_max_age:
            return
        size = await self._size(self.store.uploads.data_key(name, upload_id))
        if not self.options.dry_run:
            await self.store.uploads.discard(name, upload_id)
        self.report.uploads_purged += 1
        self.report.upload_bytes += size

    async def _sweep_blobs(self) -> None:
        stored = await self._stored_blobs()
        pointers = [digest for digest, files in stored.items() if "object" in files]
        for found in await _bounded(self.store.blobs.locate(d) for d in pointers):
            if found is not None:
                self.pointed.add(found.storage_key)
        for digest, files in stored.items():
            listed = max(f.modified for f in files.values())
            if digest in self.marked or max(listed, self.store.blobs.usage.last_used(digest)) >= self.cutoff:
                self.report.blobs_kept += 1
                continue
            async with self.store.blobs.usage.lock:
                located = await self.store.blobs.locate(digest)
                if await self._recent(digest):  # checked again, fresh, right before deleting
                    self.report.blobs_kept += 1
                    continue
                if not self.options.dry_run:
                    await self.store.blobs.remove(digest)
            self.report.blobs_deleted += 1
            self.report.blob_bytes += located.size if located else 0

    async def _stored_blobs(self) -> dict[Digest, dict[str, FileInfo]]:
        """Every blob folder's files (``data``, ``object``, ``used``) by digest, from one listing."""
        root = key("blobs")
        stored: dict[Digest, dict[str, FileInfo]] = {}
        async for info in self.driver.walk(root):
            parts = info.path[len(root) + 1 :].split("/")
            if len(parts) == 4 and (digest := links.digest_of_names(parts[0], parts[2])):
                stored.setdefault(digest, {})[parts[3]] = info
        return stored

    async def _sweep_objects(self) -> None:
        """Upload objects that neither a live session nor a blob owns (an interrupted publish, a removed
        repository's sessions, a duplicate upload that lost the race) go once older than the grace period."""
        root = key("objects")
        async for info in self.driver.walk(root):
            upload_id = info.path[len(root) + 1 :]
            if upload_id in self.sessions or info.path in self.pointed or info.modified >= self.cutoff:
                continue
            async with self.store.blobs.usage.lock:
                try:
                    fresh = await self.driver.stat(info.path)
                except PathNotFound:
                    continue  # published (renamed) or discarded meanwhile
                if fresh.modified >= self.cutoff:
                    continue
                if not self.options.dry_run:
                    await self._delete(info.path)
            self.report.uploads_purged += 1
            self.report.upload_bytes += fresh.size

    async def _sweep_temporaries(self) -> None:
        """Temporary files and empty directories a killed writer left behind, older than the grace period: the
        storage's own leftovers, invisible to listings (only local storage has them; see
        :func:`storage.filesystem.purge_temporaries`)."""
        local = self.driver.local_path(ROOT)
        if local is None or not local.is_dir():
            return
        purged = await asyncio.to_thread(purge_temporaries, local, self.cutoff, self.options.dry_run)
        self.report.temporaries_purged += purged

    async def _size(self, path: str) -> int:
        try:
            return (await self.driver.stat(path)).size
        except PathNotFound:
            return 0

    async def _delete(self, path: str) -> None:
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(path)


async def _bounded(work: Iterable[Awaitable[T]], limit: int = 16) -> list[T]:
    """Await ``work`` concurrently, at most ``limit`` at a time, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(item: Awaitable[T]) -> T:
        async with gate:
            return await item

    return await asyncio.gather(*(one(item) for item in work))


async def collect(store: Store, options: GcOptions) -> GcReport:
    """Run one garbage collection over ``store``; see the module docstring."""
    return await Collector(store, options).run()


async def run_periodically(store: Store, interval: float, options: GcOptions) -> None:
    """``gc.interval`` inside ``dockyard serve``: collect every ``interval`` seconds until cancelled.
    A failed run is logged and retried at the next interval; it never stops the server."""
    while True:
        await asyncio.sleep(interval)
        try:
            report = await collect(store, options)
        except Exception:  # a GC failure must not take the registry down
            log.exception("garbage collection failed; retrying in %.0f s", interval)
            continue
        log.info(report.summary())
