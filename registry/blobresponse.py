"""Blob responses: a local file copied through one reused buffer, any other backend (or TLS) streamed in chunks.

Memory stays flat whatever the blob size: one :data:`COPY_BUFFER` per response on the filesystem driver, bounded
chunks on the others.

Why a copy and not ``sendfile``: on these machines, loopback ``sendfile`` of a page-cached file (the kernel splices
it through a pipe of 16 pages at a time) moved 1.6-1.9 GB/s, a ``preadv`` + ``send`` of 1 MiB pieces 2.4-2.9 GB/s
(``bench/RESULTS.md``). Cached pieces are read on the event loop with ``RWF_NOWAIT``, which never waits for the
disk; a piece that is not cached is read in a worker thread, so a cold blob never blocks the loop.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import TypeGuard

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from registry.errors import ErrorCode, RegistryError
from storage.driver import StorageDriver

MAX_DIGITS = 19  # 10**19 bytes is more than any blob
_SPEC = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range against ``size``; returns ``(start, end_inclusive)``.

    None means "send the whole blob" (no header, a multi-range or another unit, which HTTP lets a
    server ignore). An unsatisfiable or malformed range raises 416 with ``Content-Range: bytes */size``.
    Only ASCII digits count (``²`` is a digit to ``str.isdigit``, not to HTTP), and a number longer than
    :data:`MAX_DIGITS` is simply larger than any blob.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _SPEC.fullmatch(spec.strip())
    if match is None or not (match[1] or match[2]):
        raise _unsatisfiable(size)
    if not match[1]:  # suffix range: the last N bytes
        length = _number(match[2])
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - length, 0), size - 1
    start = _number(match[1])
    end = _number(match[2]) if match[2] else size - 1
    if start >= size or end < start:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _number(digits: str) -> int:
    """``digits`` (ASCII) as an int, capped: anything past :data:`MAX_DIGITS` significant digits is ``10**MAX_DIGITS``
    (more than any blob holds), so ``int()`` never sees thousands of digits."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= MAX_DIGITS else 10**MAX_DIGITS


def _unsatisfiable(size: int) -> RegistryError:
    return RegistryError(
        ErrorCode.RANGE_INVALID, "requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"}
    )


STREAM_BUFFER = 8 << 20
COPY_BUFFER = 1 << 20  # one read and one send per MiB: larger pieces measured no faster


def read_cached(fd: int, view: memoryview, offset: int) -> int:
    """Read into ``view`` from ``offset`` of ``fd`` what the page cache holds, without waiting for the disk: the
    bytes read, 0 when the first page is not cached (or the kernel cannot say: then the caller reads in a thread)."""
    with suppress(OSError):  # BlockingIOError: not cached; EOPNOTSUPP/EINVAL: no RWF_NOWAIT on this filesystem
        return os.preadv(fd, [view], offset, os.RWF_NOWAIT)
    return 0


def _plain_socket(transport: asyncio.BaseTransport | None) -> TypeGuard[asyncio.WriteTransport]:
    """Whether ``transport`` writes straight to a TCP socket (not through TLS, whose transport buffers differently:
    a TLS download is streamed in chunks)."""
    return (
        isinstance(transport, asyncio.WriteTransport)
        and transport.get_extra_info("socket") is not None
        and transport.get_extra_info("sslcontext") is None
    )


class ShortBlob(OSError):
    """A stored blob file ended before the size its link promised (the response is cut and the connection closed)."""


class BlobResponse(web.StreamResponse):
    """Sends ``count`` bytes from ``offset`` of a stored file: copied when local, streamed otherwise."""

    def __init__(
        self, driver: StorageDriver, storage_key: str, offset: int, count: int, status: int, headers: dict[str, str]
    ) -> None:
        super().__init__(status=status, headers=headers)
        self._driver = driver
        self._key = storage_key
        self._offset = offset
        self._count = count
        self.content_length = count

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        writer = await super().prepare(request)
        if request.method == "HEAD" or self._count == 0 or writer is None:
            return writer
        local = self._driver.local_path(self._key)
        transport = request.transport
        if local is not None and _plain_socket(transport):
            await self._copy(writer, transport, os.fspath(local))
        else:
            await self._stream(writer, transport)
        await super().write_eof()
        return writer

    async def _copy(self, writer: AbstractStreamWriter, transport: asyncio.WriteTransport, path: str) -> None:
        """Read a piece into the buffer, hand it to the transport, wait until the kernel has taken all of it (the
        transport may keep a view of the buffer until then, Python 3.12+), then reuse the buffer."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        low, high = transport.get_write_buffer_limits()
        transport.set_write_buffer_limits(high=0)  # drain() waits until the transport's buffer is empty
        reading: asyncio.Future[int] | None = None
        try:
            view = memoryview(bytearray(min(COPY_BUFFER, self._count)))
            offset, end = self._offset, self._offset + self._count
            while offset < end:
                piece = view[: end - offset]
                if not (read := read_cached(fd, piece, offset)):
                    reading = asyncio.get_running_loop().run_in_executor(None, os.preadv, fd, [piece], offset)
                    read = await asyncio.shield(reading)  # a cancelled request leaves the read running
                if read == 0:
                    raise ShortBlob(f"{path} ends at {offset} bytes, {end} expected")
                await writer.write(piece[:read])
                await writer.drain()
                offset += read
        finally:
            transport.set_write_buffer_limits(high=high, low=low)
            if reading is not None and not reading.done():  # cancelled while a thread reads: it closes the fd
                reading.add_done_callback(lambda _: os.close(fd))
            else:
                os.close(fd)

    async def _stream(self, writer: AbstractStreamWriter, transport: asyncio.BaseTransport | None = None) -> None:
        if isinstance(transport, asyncio.WriteTransport):
            transport.set_write_buffer_limits(high=STREAM_BUFFER)  # fewer drain waits per remote chunk
        remaining = self._count
        chunks: AsyncIterator[bytes] = self._driver.reader(self._key, self._offset)
        async for chunk in chunks:
            piece = chunk[:remaining]
            await writer.write(piece)
            remaining -= len(piece)
            if remaining <= 0:
                break
        await chunks.aclose()  # type: ignore[attr-defined]
