"""Content-addressed blobs: stored once under ``blobs/``, linked into each repository that holds them.

A blob's bytes are either its ``data`` file or, where the driver cannot rename cheaply (S3), the upload
object its ``object`` pointer names (see :mod:`registry.store.paths`). :meth:`BlobStore.locate` hides
which; everything that reads or deletes bytes goes through it.
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
from registry.store.usage import MARKER_REFRESH, Usage
from storage.driver import StorageDriver
from storage.errors import PathNotFound

SMALL_CACHE_BYTES = 32 << 20  # immutable small blobs (manifests) kept in memory, least recently used first
_SMALL = 4 << 20
_WRITTEN_PRUNE_AT = 10_000


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
        self._written: dict[Digest, float] = {}

    # -- where the bytes are ------------------------------------------------------------------------

    async def locate(self, digest: Digest) -> Located | None:
        """The key and size of the blob's bytes, or None if the registry does not have it."""
        pointer = await links.read_optional(self.driver, key("blob_object", digest=digest))
        if pointer is not None:
            record = json.loads(pointer)
            return Located(str(record["key"]), int(record["size"]))
        try:
            data = key("blob_data", digest=digest)
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
        if await self.locate(digest) is not None:
            await self._mark_used(digest)
            await links.delete_optional(self.driver, source)
            return
        if self.driver.moves_are_cheap:
            await self.driver.move(source, key("blob_data", digest=digest))
        else:
            record = json.dumps({"key": source, "size": size}).encode()
            await self.driver.put_content(key("blob_object", digest=digest), record)
        self._wrote(digest)

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
        often, not once per push). What this process itself wrote that recently is known without asking
        storage (a manifest pushed right after its blobs costs no marker request)."""
        recent = time.time() - MARKER_REFRESH
        if self._written.get(digest, 0.0) >= recent:
            return
        if (
            0 < await self._stored_at(digest) < recent
            and await links.modified(self.driver, key("blob_used", digest=digest)) < recent
        ):
            await self.driver.put_content(key("blob_used", digest=digest), b"")
            self._wrote(digest)

    def _wrote(self, digest: Digest) -> None:
        """Remember that this process just wrote the blob's bytes, pointer or marker (times older than
        :data:`MARKER_REFRESH` are of no use, and are dropped once many have piled up)."""
        now = time.time()
        if len(self._written) >= _WRITTEN_PRUNE_AT:
            self._written = {d: t for d, t in self._written.items() if t >= now - MARKER_REFRESH}
        self._written[digest] = now

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

    async def stat(self, name: str, digest: Digest) -> BlobInfo:
        """The blob of repository ``name``, or BLOB_UNKNOWN. Counts as a use (clients HEAD a blob to skip
        uploading it, then push a manifest naming it)."""
        await self.usage.record([digest])
        located = await self.locate(digest) if await self.is_linked(name, digest) else None
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
        if await self.locate(digest) is None:
            await self.driver.put_content(key("blob_data", digest=digest), data)
            self._wrote(digest)
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
        dropped = self._small.pop(digest, None)
        if dropped is not None:
            self._small_bytes -= len(dropped)
