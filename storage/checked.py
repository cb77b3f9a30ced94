"""The one wrapper that checks every key before any driver sees it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from storage.driver import FileInfo, StorageDriver, Writer
from storage.paths import check_path


class Checked:
    """Wraps a driver: every key is validated by :func:`check_path`, so no driver can be handed a
    traversal (``..``), a relative key or an encoded trick. Otherwise a transparent pass-through."""

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name
        self.moves_are_cheap = inner.moves_are_cheap
        self.appends_in_place = inner.appends_in_place

    def _c(self, path: str) -> str:
        return check_path(path, self.name)

    async def get_content(self, path: str) -> bytes:
        return await self.inner.get_content(self._c(path))

    async def put_content(self, path: str, data: bytes) -> None:
        await self.inner.put_content(self._c(path), data)

    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        return self.inner.reader(self._c(path), offset)

    async def writer(self, path: str, append: bool = False) -> Writer:
        return await self.inner.writer(self._c(path), append)

    async def stat(self, path: str) -> FileInfo:
        return await self.inner.stat(self._c(path))

    async def stat_file(self, path: str) -> FileInfo:
        return await self.inner.stat_file(self._c(path))

    async def list(self, path: str) -> list[str]:
        return await self.inner.list(self._c(path))

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        return self.inner.walk(self._c(path))

    async def move(self, source: str, dest: str) -> None:
        await self.inner.move(self._c(source), self._c(dest))

    async def delete(self, path: str) -> None:
        await self.inner.delete(self._c(path))

    async def delete_record(self, path: str, keep: str | None = None) -> None:
        await self.inner.delete_record(self._c(path), None if keep is None else self._c(keep))

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        return await self.inner.redirect_url(self._c(path), method)

    def local_path(self, path: str) -> Path | None:
        return self.inner.local_path(self._c(path))

    async def close(self) -> None:
        await self.inner.close()
