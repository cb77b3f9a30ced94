"""Content-addressed blobs: stored once under ``blobs/``, linked into each repository that holds them."""

from __future__ import annotations

import asyncio
import time
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


@dataclass(frozen=True)
class BlobInfo:
    """A blob as the API serves it: its digest and size, plus how to send it."""

    digest: Digest
    size: int
    local_path: Path | None
    storage_key: str


class BlobStore:
    """Global blob bytes plus per-repository links. A blob is visible in a repository only once linked."""

    def __init__(self, driver: StorageDriver, usage: Usage | None = None) -> None:
        self.driver = driver
        self.usage = usage or Usage()

    async def claim(self, digests: Iterable[Digest]) -> None:
        """Declare that a write about to happen relies on ``digests`` (see :mod:`registry.store.usage`):
        record them in this process, and rewrite the ``used`` marker of each blob stored earlier."""
        wanted = list(dict.fromkeys(digests))
        await self.usage.record(wanted)
        await asyncio.gather(*(self._mark_used(digest) for digest in wanted))

    async def _mark_used(self, digest: Digest) -> None:
        stored = await links.modified(self.driver, key("blob_data", digest=digest))
        if 0 < stored < time.time() - MARKER_REFRESH:
            await self.driver.put_content(key("blob_used", digest=digest), b"")

    async def last_use(self, digest: Digest) -> float:
        """The latest of: the blob's storage time, its ``used`` marker, its use in this process (UNIX time)."""
        return max(
            self.usage.last_used(digest),
            await links.modified(self.driver, key("blob_data", digest=digest)),
            await links.modified(self.driver, key("blob_used", digest=digest)),
        )

    async def size(self, digest: Digest) -> int | None:
        """Size of the global blob, or None if the registry does not have it."""
        try:
            return (await self.driver.stat(key("blob_data", digest=digest))).size
        except PathNotFound:
            return None

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
        size = await self.size(digest) if await self.is_linked(name, digest) else None
        if size is None:
            raise RegistryError(
                ErrorCode.BLOB_UNKNOWN, f"blob {digest} unknown to repository {name}", {"digest": str(digest)}
            )
        data_key = key("blob_data", digest=digest)
        return BlobInfo(digest, size, self.driver.local_path(data_key), data_key)

    async def unlink(self, name: str, digest: Digest) -> None:
        """Remove the blob from repository ``name`` (the bytes stay until garbage collection)."""
        if not await links.delete_optional(self.driver, key("layer_link", name=name, digest=digest)):
            raise RegistryError(
                ErrorCode.BLOB_UNKNOWN, f"blob {digest} unknown to repository {name}", {"digest": str(digest)}
            )

    async def put_small(self, data: bytes, digest: Digest) -> None:
        """Store small content (a manifest) as a global blob, atomically, unless it is already there."""
        if await self.size(digest) is None:
            await self.driver.put_content(key("blob_data", digest=digest), data)

    async def read_small(self, digest: Digest) -> bytes:
        """The whole content of a (small) global blob."""
        return await self.driver.get_content(key("blob_data", digest=digest))
