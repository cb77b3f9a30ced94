"""Streaming blob responses: zero-copy ``sendfile`` from local files, chunked streaming otherwise.

Memory stays flat whatever the blob size: the bytes never pass through Python objects on the
filesystem driver, and in bounded chunks on the others.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator

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


class BlobResponse(web.StreamResponse):
    """Sends ``count`` bytes from ``offset`` of a stored file: sendfile when local, streamed otherwise."""

    def __init__(
        self, driver: StorageDriver, storage_key: str, offset: int, count: int, status: int, headers: dict[str, str]
    ) -> None:
        super().__init__(status=status, headers=headers)
        self._driver = driver
        self._key = storage_key
        self._offset = offset
        self._count = count
        self.content_length = count
        self.body_bytes_sent = 0  # sendfile bypasses aiohttp's writer, so the access log reads this

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        writer = await super().prepare(request)
        if request.method == "HEAD" or self._count == 0 or writer is None:
            return writer
        local = self._driver.local_path(self._key)
        if local is None or request.transport is None or not await self._sendfile(request, writer, os.fspath(local)):
            await self._stream(writer, request.transport)  # counted by aiohttp's writer itself
        await super().write_eof()
        return writer

    async def _sendfile(self, request: web.BaseRequest, writer: AbstractStreamWriter, path: str) -> bool:
        """Send with the kernel's sendfile; False (nothing sent) where the transport cannot, e.g. TLS."""
        with open(path, "rb") as fh:
            await writer.drain()
            transport = request.transport
            assert transport is not None
            try:
                await asyncio.get_running_loop().sendfile(transport, fh, self._offset, self._count, fallback=False)
            except NotImplementedError:
                return False
        self.body_bytes_sent = self._count
        return True

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
