"""A cache of small files' bytes for the filesystem driver, checked against the file on every hit.

The registry reads the same few small files on every manifest request: the tag link, the revision link and the
manifest itself. Each read through a worker thread costs far more than the read; a hit here costs one ``stat`` on
the calling thread (microseconds for a file in the dentry cache) and no thread hand-off.

A hit is served only while the file is the very file that was read: same device, inode, size, modification and
change time. dockyard replaces files by renaming a new one into place (a new inode) and appends change size and
times, so any writer, in this process or in another worker or replica on the same disk, invalidates the entry.
One corner is closed explicitly: a file whose change time is less than :data:`SETTLE_NS` old is not cached,
so that a later file can never carry the same inode number *and* the same (coarse, clock-tick) timestamps as a
cached one. Memory is bounded: files over :data:`MAX_FILE` bytes are never kept, and the least recently used
entries go once :data:`MAX_TOTAL` bytes are held.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

MAX_FILE = 256 * 1024
MAX_TOTAL = 8 * 1024 * 1024
SETTLE_NS = 50_000_000  # 50 ms: far above the kernel's timestamp granularity (one clock tick, 1 to 10 ms)


class _Identity(NamedTuple):
    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


def identity(st: os.stat_result) -> _Identity:
    """What must not change for a cached copy of the file to stay valid."""
    return _Identity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_with_stat(path: Path) -> tuple[bytes, os.stat_result]:
    """The file's bytes and the ``fstat`` of the same open file (so both describe one file, even if it is
    replaced meanwhile)."""
    with path.open("rb") as fh:
        st = os.fstat(fh.fileno())
        return fh.read(), st


class SmallFiles:
    """Bytes of small files keyed by path, valid while :func:`identity` of the file is unchanged."""

    def __init__(self, max_file: int = MAX_FILE, max_total: int = MAX_TOTAL) -> None:
        self.max_file = max_file
        self.max_total = max_total
        self.total = 0
        self._entries: OrderedDict[Path, tuple[_Identity, bytes]] = OrderedDict()

    def get(self, path: Path) -> bytes | None:
        """The cached bytes of ``path`` if they are still its content, else None. One ``stat``; raises the
        ``OSError`` of that ``stat`` (``FileNotFoundError`` for a missing file)."""
        entry = self._entries.get(path)
        st = os.stat(path)
        if entry is None:
            return None
        if entry[0] != identity(st):
            self._drop(path)
            return None
        self._entries.move_to_end(path)
        return entry[1]

    def put(self, path: Path, data: bytes, st: os.stat_result) -> None:
        """Remember ``data`` as the content of ``path`` as described by ``st`` (the ``fstat`` of the read)."""
        self._drop(path)
        if len(data) > self.max_file or len(data) != st.st_size or time.time_ns() - st.st_ctime_ns < SETTLE_NS:
            return
        self._entries[path] = (identity(st), data)
        self.total += len(data)
        while self.total > self.max_total:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def _drop(self, path: Path) -> None:
        entry = self._entries.pop(path, None)
        if entry is not None:
            self.total -= len(entry[1])
