"""The machine's limits, measured in the same run as the rows they bound.

- SHA-256 on one core: :func:`hashlib.sha256` over one in-memory buffer (the hash every upload must compute);
- loopback sendfile: :func:`os.sendfile` of a page-cached file into a 127.0.0.1 TCP connection whose other end a
  thread drains with ``recv_into`` (what serving a cached blob costs at best, without HTTP);
- loopback copy: the same, but the sender reads the cached file with :func:`os.preadv` into one reused 1 MiB
  buffer and sends it with ``sendall`` (how dockyard serves a local blob; information only, no target uses it);
- cold read of the disk: :func:`os.preadv` of a file written back and evicted from the page cache with
  ``posix_fadvise(DONTNEED)``, into one reused 1 MiB buffer (the ceiling of a download with a cold cache);
- durable write to the disk: 1 MiB ``write`` calls of one reused buffer into a new file, then :func:`os.fsync`, open to
  fsync, with and without early write-back (the better counts) (the ceiling of a monolithic upload that makes the blob
  durable before it answers, receiving and hashing left out).

The files live in the run's work dir, on the filesystem of the servers' storage. Each function returns MB/s
(10^6 bytes per second), the best of ``repeats`` runs.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from storage.writeback import write_back

RECV_BUFFER = 4 << 20
PIECE = 1 << 20

Sender = Callable[[socket.socket, int, int], None]  # (connection, file descriptor, size): send the whole file


def sha256_mb_s(size: int, repeats: int = 3) -> float:
    """SHA-256 throughput of one core over a ``size``-byte buffer."""
    data = os.urandom(size)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        hashlib.sha256(data).digest()
        best = min(best, time.perf_counter() - start)
    return size / 1e6 / best


def _write_file(path: Path, size: int, early_writeback: bool = False) -> float:
    """Write ``size`` bytes to a new file at ``path`` in 1 MiB pieces of one random buffer, then fsync; the
    seconds from open to the end of the fsync. With ``early_writeback``, the disk is asked to start writing as the
    bytes are written, by the rule dockyard's writer follows (:func:`~storage.writeback.write_back`)."""
    piece = memoryview(os.urandom(PIECE))
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    written_back = 0
    try:
        for offset in range(0, size, PIECE):
            os.write(fd, piece[: min(PIECE, size - offset)])
            if early_writeback:
                written_back = write_back(fd, written_back, min(offset + PIECE, size))
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def _read_pieces(fd: int, size: int, each: Callable[[memoryview], object] | None = None) -> None:
    """Read ``size`` bytes of ``fd`` from its start with :func:`os.preadv` into one reused 1 MiB buffer, passing
    every piece read to ``each``."""
    buffer = bytearray(PIECE)
    view = memoryview(buffer)
    offset = 0
    while offset < size:
        n = os.preadv(fd, [buffer], offset)
        if n == 0:
            raise RuntimeError(f"read limit: file ended at {offset} bytes of {size}")
        if each is not None:
            each(view[:n])
        offset += n


def _drain(conn: socket.socket, expected: int, done: list[int]) -> None:
    buffer = bytearray(RECV_BUFFER)
    received = 0
    with conn:
        while received < expected and (n := conn.recv_into(buffer)):
            received += n
    done.append(received)


def _loopback_once(path: Path, size: int, send: Sender) -> float:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = socket.create_connection(listener.getsockname())
        receiver, _ = listener.accept()
    done: list[int] = []
    thread = threading.Thread(target=_drain, args=(receiver, size, done))
    thread.start()
    with sender, open(path, "rb") as fh:
        start = time.perf_counter()
        send(sender, fh.fileno(), size)
        thread.join()
        elapsed = time.perf_counter() - start
    if done != [size]:
        raise RuntimeError(f"loopback limit: received {done} bytes of {size}")
    return elapsed


def _loopback_mb_s(path: Path, size: int, repeats: int, send: Sender) -> float:
    """Best MB/s of ``send`` moving a page-cached ``size``-byte file (written just before) into a loopback
    connection."""
    _write_file(path, size)
    try:
        best = min(_loopback_once(path, size, send) for _ in range(repeats))
    finally:
        path.unlink()
    return size / 1e6 / best


def _send_by_sendfile(sock: socket.socket, fd: int, size: int) -> None:
    offset = 0
    while offset < size:
        offset += os.sendfile(sock.fileno(), fd, offset, size - offset)


def _send_by_copy(sock: socket.socket, fd: int, size: int) -> None:
    _read_pieces(fd, size, sock.sendall)


def sendfile_mb_s(workdir: Path, size: int, repeats: int = 3) -> float:
    """Loopback sendfile throughput of a ``size``-byte file that is in the page cache (written just before)."""
    return _loopback_mb_s(workdir / "sendfile-limit.bin", size, repeats, _send_by_sendfile)


def copy_mb_s(workdir: Path, size: int, repeats: int = 3) -> float:
    """Loopback throughput of a page-cached ``size``-byte file read with ``preadv`` into one reused 1 MiB buffer
    and sent with ``sendall`` (the copy dockyard serves local blobs with)."""
    return _loopback_mb_s(workdir / "copy-limit.bin", size, repeats, _send_by_copy)


def cold_read_mb_s(workdir: Path, size: int, repeats: int = 3) -> float:
    """Sequential read throughput of a ``size``-byte file that is not in the page cache (evicted before every
    read): what a download with a cold cache can reach at best on this disk."""
    path = workdir / "cold-read-limit.bin"
    _write_file(path, size)
    best = float("inf")
    try:
        for _ in range(repeats):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # the pages are clean: fsynced when written
                start = time.perf_counter()
                _read_pieces(fd, size)
                best = min(best, time.perf_counter() - start)
            finally:
                os.close(fd)
    finally:
        path.unlink()
    return size / 1e6 / best


def durable_write_mb_s(workdir: Path, size: int, repeats: int = 2) -> float:
    """Throughput of writing ``size`` bytes to a new file and fsyncing it (open to fsync): what a monolithic
    upload that makes the blob durable before answering can reach at best, receiving and hashing left out. The
    best of writing everything before one fsync and of starting the write-back early (either can win: on this
    machine's disk early write-back is faster up to a few hundred MiB and slower beyond)."""
    path = workdir / "durable-write-limit.bin"
    best = float("inf")
    for _ in range(repeats):
        for early in (False, True):
            try:
                best = min(best, _write_file(path, size, early))
            finally:
                path.unlink(missing_ok=True)
    return size / 1e6 / best
