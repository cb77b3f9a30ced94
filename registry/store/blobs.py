"""Content-addressed blobs: stored once under ``blobs/``, linked into each repository that holds them.

A blob's bytes are either its ``data`` file or, where the driver cannot rename cheaply (S3), the upload
object its ``object`` pointer names (see :mod:`registry.store.paths`). :meth:`BlobStore.locate` hides
which; everything that reads or deletes bytes goes through it.

A process also remembers, to spare storage requests (on S3 each is a round trip): the bytes of small blobs
(manifests, immutable for their digest), where the blobs a manifest push checked are (for :data:`LOCATED_FOR`
seconds, :meth:`BlobStore.linked`), and the newest write of each blob's records it made or saw (for
:data:`registry.store.usage.MARKER_REFRESH`). Deleting a blob in this process forgets all three.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from registry.errors import ErrorCode, RegistryError
from registry.reference import Digest
from registry.store import links
from registry.store.paths import key
from registry.store.recent import Recent
from registry.store.usage import MARKER_REFRESH, Usage
from storage.driver import StorageDriver
from storage.errors import PathNotFound

SMALL_CACHE_BYTES = 32 << 20  # immutable small blobs (manifests) kept in memory, least recently used first
_SMALL = 4 << 20
_FRESH_PRUNE_AT = 10_000
LOCATED_REMEMBERED = 10_000  # where recently located blobs are (see BlobStore.linked)
LOCATED_FOR = 60.0


@dataclass(frozen=True)
class BlobInfo:
    """A blob as the API serves it: its digest and size, plus how to send it."""

    digest: Digest
    size: int
    local_path: Path | None
    storage_key: str


@dataclass(frozen=True)
class Located:
    """Where a blob's bytes are: the storage key holding them, and their size."""

    storage_key: str
    size: int


def _check_size(digest: Digest, size: int, max_size: int | None) -> None:
    if max_size is not None and size > max_size:
        raise ValueError(f"blob {digest} has {size} bytes, more than {max_size}")


class BlobStore:
    """Global blob bytes plus per-repository links. A blob is visible in a repository only once linked."""

    def __init__(self, driver: StorageDriver, usage: Usage | None = None) -> None:
        self.driver = driver
        self.usage = usage or Usage()
        self._small: OrderedDict[Digest, bytes] = OrderedDict()
        self._small_bytes = 0
        self._fresh: dict[Digest, float] = {}
        self._marking: dict[Digest, asyncio.Future[None]] = {}  # marker checks under way
        self._located: Recent[Digest, tuple[Located, float]] = Recent(LOCATED_REMEMBERED)  # time.monotonic() of lookup

    # -- where the bytes are ------------------------------------------------------------------------

    async def locate(self, digest: Digest) -> Located | None:
        """The key and size of the blob's bytes, or None if the registry does not have it."""
        return await self._pointed(digest) or await self._data(digest)

    async def _pointed(self, digest: Digest) -> Located | None:
        """Where the blob's pointer says its bytes are; None without a pointer."""
        pointer = await links.read_optional(self.driver, key("blob_object", digest=digest))
        if pointer is None:
            return None
        record = json.loads(pointer)
        return Located(str(record["key"]), int(record["size"]))

    async def _data(self, digest: Digest) -> Located | None:
        """The blob's bytes at its own key; None when they are not there."""
        data = key("blob_data", digest=digest)
        try:
            return Located(data, (await self.driver.stat_file(data)).size)
        except PathNotFound:
            return None

    async def size(self, digest: Digest) -> int | None:
        """Size of the global blob, or None if the registry does not have it."""
        located = await self.locate(digest)
        return located.size if located else None

    async def publish(self, digest: Digest, source: str, size: int) -> None:
        """Make the verified bytes at ``source`` the blob ``digest``: renamed into place where that is
        cheap, else left where they are with a pointer (no copy of the bytes either way). When the
        registry already has the blob, ``source`` is deleted instead, and the blob counts as used (see
        :meth:`claim`)."""
        await self.usage.record([digest])
        # both records asked for at once: a new blob has neither (one round trip, not two)
        if any(await asyncio.gather(self._pointed(digest), self._data(digest))):
            await self._mark_used(digest)
            await links.delete_optional(self.driver, source)
            return
        if self.driver.moves_are_cheap:
            located = Located(key("blob_data", digest=digest), size)
            await self.driver.move(source, located.storage_key)
        else:
            located = Located(source, size)
            record = json.dumps({"key": source, "size": size}).encode()
            await self.driver.put_content(key("blob_object", digest=digest), record)
        self._keep_located(digest, located)
        self._saw_fresh(digest, time.time())

    async def remove(self, digest: Digest) -> None:
        """Delete the blob's bytes, wherever they are, and its records."""
        located = await self.locate(digest)
        if located is not None and located.storage_key != key("blob_data", digest=digest):
            await links.delete_optional(self.driver, located.storage_key)
        await links.delete_optional(self.driver, key("blob", digest=digest))
        self._forget(digest)

    async def quarantine(self, digest: Digest, located: Located) -> None:
        """Move corrupt bytes aside to ``quarantine/`` so they are no longer served (scrub --repair)."""
        await self.driver.move(located.storage_key, key("quarantine", digest=digest))
        await links.delete_optional(self.driver, key("blob_object", digest=digest))
        self._forget(digest)

    # -- usage, for garbage collection --------------------------------------------------------------

    async def claim(self, digests: Iterable[Digest]) -> None:
        """Declare that a write about to happen relies on ``digests`` (see :mod:`registry.store.usage`):
        record them in this process, and rewrite the ``used`` marker of each blob stored earlier."""
        wanted = list(dict.fromkeys(digests))
        await self.usage.record(wanted)
        await asyncio.gather(*(self._mark_used(digest) for digest in wanted))

    async def _mark_used(self, digest: Digest) -> None:
        """Rewrite the blob's ``used`` marker unless its data or the marker itself is newer than
        :data:`MARKER_REFRESH` seconds (a blob named by every push, e.g. a base layer, is rewritten at most that
        often, not once per push). The newest of those times this process wrote or read is remembered, so a blob
        named again within the refresh (a manifest pushed right after its blobs, many tags of one image) costs no
        storage request; uses of a blob while its check is under way rely on that one check (32 clients pushing
        images on one base layer make one check, not 32)."""
        if self._fresh.get(digest, 0.0) >= time.time() - MARKER_REFRESH:
            return
        check = self._marking.get(digest)
        if check is None:
            check = asyncio.ensure_future(self._refresh_marker(digest))
            self._marking[digest] = check
            check.add_done_callback(lambda _: self._marking.pop(digest, None))
        await asyncio.shield(check)

    async def _refresh_marker(self, digest: Digest) -> None:
        recent = time.time() - MARKER_REFRESH
        stored = await self._stored_at(digest)
        if stored == 0.0:
            return  # not stored: nothing to keep
        if stored < recent:
            stored = max(stored, await links.modified(self.driver, key("blob_used", digest=digest)))
            if stored < recent:
                await self.driver.put_content(key("blob_used", digest=digest), b"")
                stored = time.time()
        self._saw_fresh(digest, stored)

    def _saw_fresh(self, digest: Digest, moment: float) -> None:
        """Remember that storage holds a write of the blob's data, pointer or marker made at ``moment`` (times older
        than :data:`MARKER_REFRESH` are of no use, and are dropped once many have piled up)."""
        if len(self._fresh) >= _FRESH_PRUNE_AT:
            oldest = time.time() - MARKER_REFRESH
            self._fresh = {d: t for d, t in self._fresh.items() if t >= oldest}
        self._fresh[digest] = max(moment, self._fresh.get(digest, 0.0))

    async def _stored_at(self, digest: Digest) -> float:
        """When the blob's pointer, else its data, was written; 0.0 when it has neither."""
        for kind in ("blob_object", "blob_data"):
            if stored := await links.modified(self.driver, key(kind, digest=digest)):
                return stored
        return 0.0

    async def last_use(self, digest: Digest) -> float:
        """The latest of: the blob's storage time, its ``used`` marker, its use in this process (UNIX time)."""
        return max(
            self.usage.last_used(digest),
            await self._stored_at(digest),
            await links.modified(self.driver, key("blob_used", digest=digest)),
        )

    # -- repository links ---------------------------------------------------------------------------

    async def is_linked(self, name: str, digest: Digest) -> bool:
        """True if repository ``name`` holds the blob (as a layer/config or as one of its manifests)."""
        for kind in ("layer_link", "revision_link"):
            if await links.exists(self.driver, key(kind, name=name, digest=digest)):
                return True
        return False

    async def link(self, name: str, digest: Digest) -> None:
        """Record that repository ``name`` holds the blob. The blob must already be stored globally."""
        await self.driver.put_content(key("layer_link", name=name, digest=digest), str(digest).encode())

    async def linked(self, name: str, digest: Digest) -> Located | None:
        """Where the bytes of a blob of repository ``name`` are, or None when the repository does not link it: what a
        manifest push checks of each blob it names, and what a blob GET or HEAD asks (:meth:`stat`).

        The link is always read from storage; the place of the bytes comes from memory when this process located
        the blob less than :data:`LOCATED_FOR` seconds ago. A blob's place never changes, and garbage collection
        deletes a blob's bytes only after every link to it (a collection running meanwhile is the race
        :mod:`registry.store.usage` describes, not widened by this); a blob quarantined by ``scrub --repair`` in
        another process is seen within that time."""
        if not await self.is_linked(name, digest):
            return None
        remembered = self._located.get(digest)
        if remembered is not None and remembered[1] > time.monotonic() - LOCATED_FOR:
            return remembered[0]
        located = await self.locate(digest)
        if located is not None:
            self._keep_located(digest, located)
        return located

    def _keep_located(self, digest: Digest, located: Located) -> None:
        self._located.put(digest, (located, time.monotonic()))

    async def stat(self, name: str, digest: Digest) -> BlobInfo:
        """The blob of repository ``name``, or BLOB_UNKNOWN. Counts as a use (clients HEAD a blob to skip
        uploading it, then push a manifest naming it)."""
        await self.usage.record([digest])
        located = await self.linked(name, digest)
        if located is None:
            raise RegistryError(
                ErrorCode.BLOB_UNKNOWN, f"blob {digest} unknown to repository {name}", {"digest": str(digest)}
            )
        return BlobInfo(digest, located.size, self.driver.local_path(located.storage_key), located.storage_key)

    async def unlink(self, name: str, digest: Digest) -> None:
        """Remove the blob from repository ``name`` (the bytes stay until garbage collection)."""
        if not await links.delete_optional(self.driver, key("layer_link", name=name, digest=digest)):
            raise RegistryError(
                ErrorCode.BLOB_UNKNOWN, f"blob {digest} unknown to repository {name}", {"digest": str(digest)}
            )

    # -- small blobs (manifests) --------------------------------------------------------------------

    async def put_small(self, data: bytes, digest: Digest) -> None:
        """Store small content (a manifest) as a global blob, atomically, unless it is already there; it is
        then in memory for :meth:`read_small`."""
        data_key = key("blob_data", digest=digest)
        # manifests live at ``data``: asked first, a manifest pushed again (another tag) costs one request
        pointer_key = key("blob_object", digest=digest)
        if not await links.exists(self.driver, data_key) and not await links.exists(self.driver, pointer_key):
            await self.driver.put_content(data_key, data)
            self._saw_fresh(digest, time.time())
            self._keep_located(digest, Located(data_key, len(data)))
        self._remember(digest, data)

    async def read_small(self, digest: Digest, max_size: int | None = None) -> bytes:
        """The whole content of a (small) global blob; ValueError when it is larger than ``max_size``. Content never
        changes for a digest, so it is served from memory once read; a deleted blob leaves the cache with
        :meth:`remove`."""
        cached = self._small.get(digest)
        if cached is not None:
            self._small.move_to_end(digest)
            _check_size(digest, len(cached), max_size)
            return cached
        located = await self.locate(digest)
        if located is None:
            raise PathNotFound(key("blob_data", digest=digest), self.driver.name)
        _check_size(digest, located.size, max_size)
        data = await self.driver.get_content(located.storage_key)
        self._remember(digest, data)
        return data

    def _remember(self, digest: Digest, data: bytes) -> None:
        """Cache ``data`` if small and if it is what ``digest`` says (bytes rotten on disk are not kept)."""
        if len(data) > _SMALL or Digest.of(data, digest.algorithm) != digest:
            return
        self._small[digest] = data
        self._small_bytes += len(data)
        while self._small_bytes > SMALL_CACHE_BYTES:
            _, dropped = self._small.popitem(last=False)
            self._small_bytes -= len(dropped)

    def _forget(self, digest: Digest) -> None:
        """Drop what this process remembers of a blob it deletes."""
        self._located.pop(digest)
        self._fresh.pop(digest, None)
        dropped = self._small.pop(digest, None)
        if dropped is not None:
            self._small_bytes -= len(dropped)
