"""The byte-moving client: blob uploads and downloads over :mod:`http.client`, one connection per operation.

Bodies leave with :func:`socket.socket.sendfile` from a page-cached file and arrive through ``readinto`` into one
reused buffer, so the client spends little CPU per byte (an aiohttp client tops out near 1.5 GB/s here, below what
the servers can do). Downloads check the size only; the digest of each server's copy is checked once, untimed, by
:func:`verify_blob`.

Also here: :func:`drop_page_cache`, which makes a later read of a server's blob files come from disk.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
from pathlib import Path

from bench.s3_push_pull import BenchError, BlobFile, expect, location_target, with_query
from bench.sidebyside.servers import Registry

IO_BUFFER = 4 << 20
TIMEOUT = 600.0
OCTETS = "application/octet-stream"


def connect(registry: Registry) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", registry.port, timeout=TIMEOUT, blocksize=IO_BUFFER)


def _send_file(
    conn: http.client.HTTPConnection, method: str, target: str, path: Path, offset: int, count: int, **headers: str
) -> http.client.HTTPResponse:
    """Send one request whose body is ``count`` bytes of ``path`` from ``offset`` (by sendfile)."""
    conn.putrequest(method, target, skip_accept_encoding=True)
    for name, value in {"Content-Type": OCTETS, "Content-Length": str(count), **headers}.items():
        conn.putheader(name, value)
    conn.endheaders()
    assert conn.sock is not None  # endheaders() connected
    with open(path, "rb") as fh:
        conn.sock.sendfile(fh, offset, count)
    return conn.getresponse()


def _start_upload(conn: http.client.HTTPConnection, registry: Registry, repo: str) -> str:
    conn.request("POST", f"/v2/{repo}/blobs/uploads/", body=b"", headers={"Content-Length": "0"})
    response = conn.getresponse()
    expect(response, 202, "POST upload", registry.server)
    response.read()
    return location_target(response, registry.server)


def monolithic_upload(registry: Registry, repo: str, blob: BlobFile) -> float:
    """POST an upload, then one ``PUT ?digest=`` carrying the whole blob (the spec's monolithic upload); the
    seconds from the POST to the 201."""
    conn = connect(registry)
    try:
        start = time.perf_counter()
        target = _start_upload(conn, registry, repo)
        response = _send_file(conn, "PUT", with_query(target, "digest", blob.digest), blob.path, 0, blob.size)
        expect(response, 201, "PUT upload", registry.server)
        response.read()
        return time.perf_counter() - start
    finally:
        conn.close()


def chunked_upload(registry: Registry, repo: str, blob: BlobFile, chunk: int) -> float:
    """POST, one ``PATCH`` per ``chunk`` bytes with ``Content-Range`` (following each ``Location``), then an empty
    ``PUT ?digest=``; the seconds of the whole sequence."""
    conn = connect(registry)
    try:
        start = time.perf_counter()
        target = _start_upload(conn, registry, repo)
        for offset in range(0, blob.size, chunk):
            count = min(chunk, blob.size - offset)
            content_range = f"{offset}-{offset + count - 1}"
            response = _send_file(conn, "PATCH", target, blob.path, offset, count, **{"Content-Range": content_range})
            expect(response, 202, "PATCH upload", registry.server)
            response.read()
            target = location_target(response, registry.server)
        conn.request("PUT", with_query(target, "digest", blob.digest), body=b"", headers={"Content-Length": "0"})
        response = conn.getresponse()
        expect(response, 201, "PUT upload", registry.server)
        response.read()
        return time.perf_counter() - start
    finally:
        conn.close()


def _read_blob(registry: Registry, repo: str, blob: BlobFile, hasher: hashlib._Hash | None) -> float:
    buffer = bytearray(IO_BUFFER)
    view = memoryview(buffer)
    received = 0
    conn = connect(registry)
    try:
        start = time.perf_counter()
        conn.request("GET", f"/v2/{repo}/blobs/{blob.digest}")
        response = conn.getresponse()
        expect(response, 200, "GET blob", registry.server)
        while n := response.readinto(buffer):
            received += n
            if hasher is not None:
                hasher.update(view[:n])
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    if received != blob.size:
        raise BenchError(f"{registry.name}: GET blob returned {received} bytes, expected {blob.size}")
    return elapsed


def download(registry: Registry, repo: str, blob: BlobFile) -> float:
    """GET the blob, counting the bytes (not hashing them); the seconds from request to last byte."""
    return _read_blob(registry, repo, blob, None)


def verify_blob(registry: Registry, repo: str, blob: BlobFile) -> None:
    """GET the blob and check its digest (untimed; also brings it into the page cache)."""
    hasher = hashlib.sha256()
    _read_blob(registry, repo, blob, hasher)
    if f"sha256:{hasher.hexdigest()}" != blob.digest:
        raise BenchError(f"{registry.name}: blob {blob.digest} came back with another digest")


def drop_page_cache(root: Path, min_size: int = 64 << 10) -> int:
    """Write back and evict from the page cache every file of at least ``min_size`` bytes under ``root`` (the
    blobs; small link and metadata files stay cached): ``fdatasync`` then ``posix_fadvise(DONTNEED)``, which
    drops clean pages only. Returns how many files were dropped."""
    dropped = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue  # e.g. a file renamed away meanwhile
            try:
                if os.fstat(fd).st_size >= min_size:
                    os.fdatasync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    dropped += 1
            finally:
                os.close(fd)
    return dropped
