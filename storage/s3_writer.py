"""The S3 appending writer: bytes go into a multipart upload whose state lives in the bucket.

S3 parts (except the last) must be at least 5 MiB, so a writer keeps at most one part's worth of bytes
in memory; when it is closed without being committed, what it holds becomes a part when S3 accepts it as one
(at least 5 MiB: the next writer then has no bytes to read back), else it is saved as a small side object, the
tail; the multipart state (upload id, parts) is saved as JSON next to it. A writer closed without a write leaves
everything as it found it. Any process can then reopen the writer with
``append=True`` and continue: uploads survive restarts and move between replicas. Side objects use
names outside the key grammar (``~``), so listings never show them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from storage.errors import StorageError

if TYPE_CHECKING:
    from storage.s3 import S3Driver

STATE_SUFFIX = "~mpu.json"
TAIL_SUFFIX = "~tail"
MIN_PART = 5 << 20
"""S3's smallest part (except the last one of an upload)."""


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
        self._buffer = bytearray(tail)
        self._done = False
        self._written = False

    @property
    def size(self) -> int:
        return self._state.parts_size + len(self._buffer)

    async def write(self, data: bytes) -> None:
        if self._done:
            raise StorageError(self._path, self._driver.name, "write after commit, cancel or close")
        self._written = True
        self._buffer += data
        chunk = self._driver.config.multipart_chunk_size
        while len(self._buffer) >= chunk:
            await self._upload_part(bytes(self._buffer[:chunk]))
            del self._buffer[:chunk]

    async def _upload_part(self, data: bytes) -> None:
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
            await self._driver.put_object(self._path, bytes(self._buffer))
        else:
            if self._buffer:
                await self._upload_part(bytes(self._buffer))
            await self._driver.call_assembling(
                self._path,
                "complete_multipart_upload",
                Bucket=self._driver.bucket,
                Key=self._key,
                UploadId=self._state.upload_id,
                MultipartUpload={"Parts": self._state.parts},
            )
        self._buffer = bytearray()
        if self._resumed:  # the upload is complete: only the side objects remain (nothing to abort)
            await self._driver.delete_keys(self._driver.side_keys(self._path))

    async def cancel(self) -> None:
        # this writer's state started from the persisted one, so aborting it aborts everything recorded
        self._done = True
        self._buffer = bytearray()
        await self._driver.abort(self._path, self._key, self._state)
        await self._driver.delete_keys([self._key, *self._driver.side_keys(self._path)])

    async def close(self) -> None:
        if self._done:
            return
        self._done = True
        if not self._written:
            return
        if len(self._buffer) >= MIN_PART:
            await self._upload_part(bytes(self._buffer))
            self._buffer = bytearray()
        await self._driver.put_object(self._path, bytes(self._buffer), suffix=TAIL_SUFFIX)
        await self._driver.put_object(self._path, self._state.to_json(), suffix=STATE_SUFFIX)
        self._buffer = bytearray()
