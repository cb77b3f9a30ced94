"""The storage driver contract, modelled on CNCF Distribution's ``StorageDriver``.

Keys are absolute, slash-separated strings such as ``/v1/blobs/sha256/ab/abcd/data``; every component
matches ``[A-Za-z0-9._-]+`` and is neither ``.`` nor ``..`` (checked once, by :class:`storage.checked.Checked`).
"Directories" are implicit: a key is a directory when some longer key has it as a prefix. Drivers know
nothing about OCI; blobs, links, tags and uploads are the business of the layer above.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What :meth:`StorageDriver.stat` reports. ``size`` is 0 for directories; ``modified`` is a UNIX time."""

    path: str
    size: int
    modified: float
    is_dir: bool


@runtime_checkable
class Writer(Protocol):
    """An appending writer returned by :meth:`StorageDriver.writer`.

    Bytes written become visible at the key only after :meth:`commit`. :meth:`close` keeps what was written
    so a later ``writer(path, append=True)`` continues it (possibly in another process); :meth:`cancel`
    discards everything, including content from earlier writers of the same key.
    """

    @property
    def size(self) -> int:
        """Bytes in the file so far, including those of earlier writers when appending. After :meth:`close` or
        :meth:`commit` of a driver whose writers append in place (``appends_in_place``), the stored content's
        size, bytes that other writers appended meanwhile included."""
        ...

    async def write(self, data: bytes) -> None:
        """Append ``data``."""
        ...

    async def commit(self) -> None:
        """Flush and make the content durable and visible at the key. No writes after this."""
        ...

    async def cancel(self) -> None:
        """Discard the content. No writes after this."""
        ...

    async def close(self) -> None:
        """Release resources and keep the content for a later append. A writer opened with ``append=True``
        and closed without a write changes nothing (a missing file stays missing)."""
        ...


@runtime_checkable
class StorageDriver(Protocol):
    """The whole contract. Missing keys raise :class:`storage.errors.PathNotFound`."""

    name: str
    moves_are_cheap: bool
    """True when :meth:`move` renames in O(1); False when it copies the bytes (S3): callers then avoid it."""
    appends_in_place: bool
    """True when a writer opened to append adds its bytes to the stored content as it writes them, so the bytes of
    writers of one key at the same time all land, and a writer's size after it closes tells whether another one
    wrote (the filesystem); False when a writer's close or commit replaces the content with what it opened plus its
    own bytes, the last one winning (S3, memory)."""

    async def get_content(self, path: str) -> bytes:
        """The whole content of a (small) file."""
        ...

    async def put_content(self, path: str, data: bytes) -> None:
        """Replace the content at ``path`` atomically: readers see the old or the new bytes, never a mix."""
        ...

    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        """Stream the content from ``offset``; ``offset`` beyond the size raises ``InvalidOffset``."""
        ...

    async def writer(self, path: str, append: bool = False) -> Writer:
        """Open a writer; ``append`` continues content closed earlier, else any such content is dropped."""
        ...

    async def stat(self, path: str) -> FileInfo:
        """File or directory information."""
        ...

    async def stat_file(self, path: str) -> FileInfo:
        """The file at exactly ``path``, or PathNotFound: also for a directory and, where the backend keeps an
        unfinished writer's content apart from the key (S3), for that content. For records (links, markers,
        pointers), which are never directories nor written by writers: one request on S3, where
        :meth:`stat` may need three."""
        ...

    async def list(self, path: str) -> list[str]:
        """Full keys of the direct children of directory ``path``, sorted. Missing directory: PathNotFound."""
        ...

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """Every file below ``path``, at any depth, with size and time, in no particular order; nothing when
        ``path`` does not exist. One listing where the backend has one (S3: a flat, paginated listing),
        so callers that need a whole tree (garbage collection) never stat file by file."""
        ...

    async def move(self, source: str, dest: str) -> None:
        """Move a file, replacing ``dest`` atomically where the backend allows it."""
        ...

    async def delete(self, path: str) -> None:
        """Delete a file or a whole directory tree."""
        ...

    async def delete_record(self, path: str, keep: str | None = None) -> None:
        """Delete the record at exactly ``path`` (a file written by :meth:`put_content`: never a directory nor a
        writer's content); a missing one is no error. Empty directories above it go, as with :meth:`delete`, except
        ``keep`` (a directory above ``path``) and those above it: where directories are real (the filesystem), a
        caller about to use ``keep`` again spares removing and re-creating it. One request on S3, where
        :meth:`delete` needs a listing first."""
        ...

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        """A URL a client may fetch the content from directly, or None when the driver cannot redirect."""
        ...

    def local_path(self, path: str) -> Path | None:
        """The local file behind ``path`` (lets the server use sendfile), or None for remote backends."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...
