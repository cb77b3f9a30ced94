"""An in-memory driver for fast tests. Same contract as the others; content is lost with the process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

from storage.driver import FileInfo, Writer
from storage.errors import InvalidOffset, PathNotFound, StorageError

READ_CHUNK = 1 << 20


class MemoryWriter:
    """Buffers the bytes; commit, or a close after a write, stores them under the key."""

    def __init__(self, driver: MemoryDriver, path: str, initial: bytes) -> None:
        self._driver = driver
        self._path = path
        self._buffer = bytearray(initial)
        self._done = False
        self._written = False

    @property
    def size(self) -> int:
        return len(self._buffer)

    async def write(self, data: bytes) -> None:
        if self._done:
            raise StorageError(self._path, self._driver.name, "write after commit, cancel or close")
        self._written = True
        self._buffer += data

    async def commit(self) -> None:
        self._driver.files[self._path] = (bytes(self._buffer), time.time())
        self._done = True

    async def cancel(self) -> None:
        self._driver.files.pop(self._path, None)
        self._done = True

    async def close(self) -> None:
        if not self._done and self._written:
            await self.commit()
        self._done = True


class MemoryDriver:
    """Keys in a dict: ``files[key] = (content, modified)``. Directories are implied by longer keys."""

    name = "memory"
    moves_are_cheap = True
    appends_in_place = False

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, float]] = {}

    def _get(self, path: str) -> bytes:
        try:
            return self.files[path][0]
        except KeyError:
            raise PathNotFound(path, self.name) from None

    def _children(self, path: str) -> set[str]:
        prefix = "/" if path == "/" else path + "/"
        return {prefix + key[len(prefix) :].split("/", 1)[0] for key in self.files if key.startswith(prefix)}

    async def get_content(self, path: str) -> bytes:
        return self._get(path)

    async def put_content(self, path: str, data: bytes) -> None:
        self.files[path] = (bytes(data), time.time())

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        data = self._get(path)
        if offset > len(data):
            raise InvalidOffset(path, self.name, f"offset {offset} beyond size {len(data)}")
        for start in range(offset, len(data), READ_CHUNK):
            yield data[start : start + READ_CHUNK]

    async def writer(self, path: str, append: bool = False) -> Writer:
        initial = self.files.get(path, (b"", 0.0))[0] if append else b""
        return MemoryWriter(self, path, initial)

    async def stat(self, path: str) -> FileInfo:
        if path in self.files:
            data, modified = self.files[path]
            return FileInfo(path=path, size=len(data), modified=modified, is_dir=False)
        children = self._children(path)
        if not children:
            raise PathNotFound(path, self.name)
        newest = max(m for k, (_, m) in self.files.items() if k.startswith(path.rstrip("/") + "/"))
        return FileInfo(path=path, size=0, modified=newest, is_dir=True)

    async def stat_file(self, path: str) -> FileInfo:
        if path not in self.files:
            raise PathNotFound(path, self.name)
        return await self.stat(path)

    async def list(self, path: str) -> list[str]:
        children = self._children(path)
        if not children:
            raise PathNotFound(path, self.name)
        return sorted(children)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        prefix = path.rstrip("/") + "/"
        for key, (data, modified) in list(self.files.items()):
            if key.startswith(prefix):
                yield FileInfo(path=key, size=len(data), modified=modified, is_dir=False)

    async def move(self, source: str, dest: str) -> None:
        self.files[dest] = (self._get(source), time.time())
        del self.files[source]

    async def delete(self, path: str) -> None:
        doomed = [k for k in self.files if k == path or k.startswith(path.rstrip("/") + "/")]
        if not doomed:
            raise PathNotFound(path, self.name)
        for key in doomed:
            del self.files[key]

    async def delete_record(self, path: str, keep: str | None = None) -> None:  # noqa: ARG002 - no directories
        self.files.pop(path, None)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:  # noqa: ARG002
        return None

    def local_path(self, path: str) -> Path | None:  # noqa: ARG002
        return None

    async def close(self) -> None:
        return None
