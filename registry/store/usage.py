"""When digests were last relied upon: what lets garbage collection run while pushes go on.

Two records, read together by GC (:func:`registry.store.gc.collect`):

* In this process, :class:`Usage` remembers when each digest was last used by a push (a manifest naming
  it, an upload or mount re-linking it) or read (blob HEAD/GET, which is how clients decide to skip an
  upload). A GC running in the same process (``gc.interval``) deletes a digest's records only while
  holding :attr:`Usage.lock` and after checking this record, and a push records its digests under that
  same lock before validating them. Either the deletion finished first (the push then finds the blob
  missing and answers MANIFEST_BLOB_UNKNOWN, storing nothing) or the use is recorded first (GC keeps it).
* Across processes (``dockyard gc`` next to a running server, or replicas), a push that relies on a
  blob stored earlier rewrites the blob's ``used`` marker in storage (unless data or marker were written
  within the last :data:`MARKER_REFRESH` seconds). GC keeps every blob whose data or marker is newer than
  its grace period. What is left is the moment between GC's last check of a blob and its deletion: a
  push from another process that validates the blob exactly then can still lose the race; the grace
  period, and running GC inside the server (``gc.interval``), close it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from registry.reference import Digest

MARKER_REFRESH = 1.0
_PRUNE_AT = 200_000
_KEEP_FOR = 24 * 3600.0


class Usage:
    """In-process last-use times of digests (wall clock), and the lock GC deletions hold."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self._last: dict[Digest, float] = {}

    async def record(self, digests: Iterable[Digest]) -> None:
        """Note that ``digests`` are in use now; waits for a GC deletion in progress to finish first."""
        async with self.lock:
            now = time.time()
            for digest in digests:
                self._last[digest] = now
        if len(self._last) > _PRUNE_AT:
            self._prune(now - _KEEP_FOR)

    def last_used(self, digest: Digest) -> float:
        """Wall-clock time of the digest's last recorded use in this process, 0.0 if none."""
        return self._last.get(digest, 0.0)

    def _prune(self, older_than: float) -> None:
        self._last = {d: t for d, t in self._last.items() if t >= older_than}
