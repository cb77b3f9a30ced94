"""The machine's limits, measured in the same run as the rows they bound.

- SHA-256 on one core: :func:`hashlib.sha256` over one in-memory buffer (the hash every upload must compute);
- loopback sendfile: :func:`os.sendfile` of a page-cached file into a 127.0.0.1 TCP connection whose other end a
  thread drains with ``recv_into`` (what serving a cached blob costs at best, without HTTP).

Both return MB/s (10^6 bytes per second), the best of ``repeats`` runs.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

RECV_BUFFER = 4 << 20


def sha256_mb_s(size: int, repeats: int = 3) -> float:
    """SHA-256 throughput of one core over a ``size``-byte buffer."""
    data = os.urandom(size)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        hashlib.sha256(data).digest()
        best = min(best, time.perf_counter() - start)
    return size / 1e6 / best


def _drain(conn: socket.socket, expected: int, done: list[int]) -> None:
    buffer = bytearray(RECV_BUFFER)
    received = 0
    with conn:
        while received < expected and (n := conn.recv_into(buffer)):
            received += n
    done.append(received)


def _sendfile_once(path: Path, size: int) -> float:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = socket.create_connection(listener.getsockname())
        receiver, _ = listener.accept()
    done: list[int] = []
    thread = threading.Thread(target=_drain, args=(receiver, size, done))
    thread.start()
    with sender, open(path, "rb") as fh:
        start = time.perf_counter()
        offset = 0
        while offset < size:
            offset += os.sendfile(sender.fileno(), fh.fileno(), offset, size - offset)
        thread.join()
        elapsed = time.perf_counter() - start
    if done != [size]:
        raise RuntimeError(f"sendfile limit: received {done} bytes of {size}")
    return elapsed


def sendfile_mb_s(workdir: Path, size: int, repeats: int = 3) -> float:
    """Loopback sendfile throughput of a ``size``-byte file that is in the page cache (written just before)."""
    path = workdir / "sendfile-limit.bin"
    with open(path, "wb") as fh:
        for _ in range(0, size, 1 << 20):
            fh.write(os.urandom(1 << 20))
    try:
        best = min(_sendfile_once(path, size) for _ in range(repeats))
    finally:
        path.unlink()
    return size / 1e6 / best
