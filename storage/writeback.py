"""Start the disk write-back of a file's dirty pages early, so that its final ``fsync`` has little left to do.

A blob is fsynced once, before it is published. Left alone, the kernel writes its dirty pages only when that
fsync asks, and a 100 MiB upload then waits ~70-110 ms for the disk after its last byte arrived (on the
benchmark machine, a third of the upload's time). :func:`start_writeback` asks for the write-back of a range as
soon as it is written (``sync_file_range(SYNC_FILE_RANGE_WRITE)``: the call queues the I/O and returns), so the
disk works while the rest of the body arrives. Durability is unchanged: only the fsync makes a promise.
"""

from __future__ import annotations

import ctypes
import sys

WRITEBACK_STEP = 8 << 20
"""Bytes written between two write-back requests once a file is large: large enough for few calls, small enough
that the final fsync waits for little."""
FIRST_WRITEBACK = 256 << 10
"""The first write-back request of a file covers this much (see :func:`writeback_step`)."""


def writeback_step(written_back: int) -> int:
    """Bytes to write after the first ``written_back`` before asking for their write-back: as many as came before,
    from :data:`FIRST_WRITEBACK` up to :data:`WRITEBACK_STEP`. A small blob thus goes to the disk while the rest of it
    arrives (its fsync then waits for its last piece only), a large one in few calls."""
    return min(WRITEBACK_STEP, max(FIRST_WRITEBACK, written_back))


_SYNC_FILE_RANGE_WRITE = 2


def _load() -> ctypes._NamedFuncPointer | None:
    if not sys.platform.startswith("linux"):
        return None
    function = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


_sync_file_range = _load()


def write_back(fd: int, written_back: int, written: int, at_least: int | None = None) -> int:
    """Start the write-back of bytes ``[written_back, written)`` of ``fd`` once there are at least ``at_least`` of
    them (by default :func:`writeback_step` of ``written_back``); returns where the written-back bytes now end, for
    the next call. The one rule of dockyard's writer, which the benchmark's durable-write ceiling follows too."""
    if written - written_back < (writeback_step(written_back) if at_least is None else at_least):
        return written_back
    start_writeback(fd, written_back, written - written_back)
    return written


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Queue the write-back of bytes ``[offset, offset + length)`` of ``fd`` to its disk, without waiting for it.

    A no-op where the system has no ``sync_file_range`` (it is advice: failures are ignored too, the fsync that
    follows reports any real I/O error).
    """
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
