"""The S3 appending writer: bytes go into a multipart upload whose state lives in the bucket.

S3 parts (except the last) must be at least 5 MiB, so a writer keeps at most one part's worth of bytes
in memory; when it is closed without being committed, what it holds becomes a part when S3 accepts it as one
(at least 5 MiB: the next writer then has no bytes to read back), else it is saved as a small side object, the
tail; the multipart state (upload id, parts) is saved as JSON next to it. Any process can then reopen the writer
with ``append=True`` and continue: uploads survive restarts and move between replicas. A writer closed without a
write leaves everything as it found it. Side objects use names outside the key grammar (``~``), so listings never
show them.
"""

from __future__ import annotations

import io
import json
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from storage.errors import StorageError
from storage.s3_settings import MIN_PART

if TYPE_CHECKING:
    from storage.s3 import S3Driver

STATE_SUFFIX = "~mpu.json"
TAIL_SUFFIX = "~tail"


@dataclass
class MultipartState:
    """The persisted state of an unfinished writer."""

    upload_id: str | None = None
    parts: list[dict[str, Any]] = field(default_factory=list)
    parts_size: int = 0

    def to_json(self) -> bytes:
        return json.dumps({"upload_id": self.upload_id, "parts": self.parts, "parts_size": self.parts_size}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> MultipartState:
        data = json.loads(raw)
        return cls(data["upload_id"], data["parts"], data["parts_size"])


class _Pending:
    """Bytes written but not yet sent, kept as the pieces they came in: a part is sent from its pieces, never
    copied into one buffer (growing a buffer and slicing parts off it held three copies of a part at once)."""

    def __init__(self, initial: bytes) -> None:
        self._pieces: deque[bytes | memoryview] = deque([initial] if initial else [])
        self.size = len(initial)

    def add(self, data: bytes) -> None:
        if data:
            self._pieces.append(data)
            self.size += len(data)

    def take(self, limit: int | None = None) -> list[bytes | memoryview]:
        """The pieces of the first ``limit`` bytes (all of them by default), no longer pending."""
        if limit is None or limit >= self.size:
            taken = list(self._pieces)
            self._pieces.clear()
            self.size = 0
            return taken
        taken = []
        missing = limit
        while missing:
            piece = self._pieces.popleft()
            if len(piece) > missing:
                view = memoryview(piece)
                piece = view[:missing]
                self._pieces.appendleft(view[missing:])
            taken.append(piece)
            missing -= len(piece)
        self.size -= limit
        return taken

    def take_all(self) -> bytes:
        """Everything pending, joined (for a small object), no longer pending."""
        return b"".join(self.take())


class PartBody(io.RawIOBase):
    """A part's pieces read as one seekable file (what botocore sends, and re-reads for checksums and retries),
    so a part is never joined into a copy of itself."""

    def __init__(self, pieces: list[bytes | memoryview]) -> None:
        super().__init__()
        self._pieces = [memoryview(p).cast("B") for p in pieces]
        self._size = sum(len(p) for p in self._pieces)
        self._pos = 0
        self._index = 0  # the piece holding self._pos
        self._start = 0  # where that piece starts

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = min(max(base + offset, 0), self._size)
        self._index, self._start = 0, 0
        while self._index < len(self._pieces) and self._start + len(self._pieces[self._index]) <= self._pos:
            self._start += len(self._pieces[self._index])
            self._index += 1
        return self._pos

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        done = 0
        while done < len(target) and self._index < len(self._pieces):
            piece = self._pieces[self._index]
            within = self._pos - self._start
            count = min(len(piece) - within, len(target) - done)
            target[done : done + count] = piece[within : within + count]
            done += count
            self._pos += count
            if self._pos - self._start == len(piece):
                self._start += len(piece)
                self._index += 1
        return done


class S3Writer:
    """Implements :class:`storage.driver.Writer` over one S3 multipart upload."""

    def __init__(self, driver: S3Driver, path: str, state: MultipartState, tail: bytes, resumed: bool = False) -> None:
        """``resumed``: side objects of an earlier writer were found (and ``state`` and ``tail`` read from them when
        both were there); :meth:`commit` then deletes them."""
        self._driver = driver
        self._resumed = resumed
        self._path = path
        self._key = driver.s3_key(path)
        self._state = state
        self._pending = _Pending(tail)
        self._done = False
        self._written = False

    @property
    def size(self) -> int:
        return self._state.parts_size + self._pending.size

    async def write(self, data: bytes) -> None:
        if self._done:
            raise StorageError(self._path, self._driver.name, "write after commit, cancel or close")
        self._written = True
        self._pending.add(data)
        chunk = self._driver.config.multipart_chunk_size
        while self._pending.size >= chunk:
            await self._upload_part(PartBody(self._pending.take(chunk)))

    async def _upload_part(self, data: PartBody) -> None:
        if self._state.upload_id is None:
            response = await self._driver.call(
                self._path,
                "create_multipart_upload",
                Bucket=self._driver.bucket,
                Key=self._key,
                **self._driver.sse_args(),
            )
            self._state.upload_id = response["UploadId"]
        number = len(self._state.parts) + 1
        response = await self._driver.call(
            self._path,
            "upload_part",
            Bucket=self._driver.bucket,
            Key=self._key,
            UploadId=self._state.upload_id,
            PartNumber=number,
            Body=data,
        )
        self._state.parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._state.parts_size += len(data)

    async def commit(self) -> None:
        self._done = True
        if self._state.upload_id is None:
            await self._driver.put_object(self._path, self._pending.take_all())
        else:
            if self._pending.size:
                await self._upload_part(PartBody(self._pending.take()))
            await self._driver.call_assembling(
                self._path,
                "complete_multipart_upload",
                Bucket=self._driver.bucket,
                Key=self._key,
                UploadId=self._state.upload_id,
                MultipartUpload={"Parts": self._state.parts},
            )
        if self._resumed:  # the upload is complete: only the side objects remain (nothing to abort)
            await self._driver.delete_keys(self._driver.side_keys(self._path))

    async def cancel(self) -> None:
        # this writer's state started from the persisted one, so aborting it aborts everything recorded
        self._done = True
        self._pending = _Pending(b"")
        await self._driver.abort(self._path, self._key, self._state)
        await self._driver.delete_keys([self._key, *self._driver.side_keys(self._path)])

    async def close(self) -> None:
        if self._done:
            return
        self._done = True
        if not self._written:
            return
        if self._pending.size >= MIN_PART:
            await self._upload_part(PartBody(self._pending.take()))
        await self._driver.put_object(self._path, self._pending.take_all(), suffix=TAIL_SUFFIX)
        await self._driver.put_object(self._path, self._state.to_json(), suffix=STATE_SUFFIX)
