"""One layer blob, read as a stream: the entries of its tar, and the head of one file's content.

Nothing is unpacked to disk and no layer is held in memory whole. The blob streams from the storage driver
(``reader``) one chunk at a time into a worker thread (:class:`_Bridge`), which decompresses it — gzip,
uncompressed tar, or zstd when the ``zstandard`` module is installed; sniffed from the magic bytes, since
media types are not always truthful — and reads the tar with :mod:`tarfile`'s streaming mode (``r|``). Regular
files are hashed (sha256) as they pass. Worker threads come from the :class:`LayerReader`'s own small pool: the
storage drivers use the default executor themselves, so sharing it could deadlock.

Entry paths are normalised to ``/a/b`` (``./``, doubled and trailing slashes dropped, ``..`` applied lexically);
an entry whose name climbs out of the root, or of a type an image cannot hold, is left out and named in
:attr:`LayerListing.skipped` instead of failing the layer. OCI whiteouts become entries of kind ``whiteout``
(``DIR/.wh.NAME`` deletes ``DIR/NAME`` from the layers below) and ``opaque`` (``DIR/.wh..wh..opq`` hides what the
layers below hold inside ``DIR``); other ``.wh..wh.`` names (aufs metadata) are skipped.

A listing never changes for a digest, so :class:`LayerReader` keeps listings in a least-recently-used cache bounded
by the number of entries, and concurrent requests for the same digest share one read.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import gzip
import hashlib
import importlib
import io
import stat
import tarfile
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, Literal, TypeVar, cast

from catalog.errors import CatalogError, InvalidInput, NotFound
from registry.reference import Digest
from registry.store.blobs import BlobStore
from storage.driver import StorageDriver
from storage.errors import PathNotFound

__all__ = [
    "TEXT_LIMIT",
    "EntryKind",
    "FileHead",
    "LayerEntry",
    "LayerListing",
    "LayerReader",
    "UnreadableLayer",
    "normalise",
]

T = TypeVar("T")
EntryKind = Literal["file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque"]

TEXT_LIMIT = 256 << 10
CACHE_ENTRIES = 200_000
WORKERS = 4
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_CHUNK = 1 << 20
_CHUNK_WAIT = 300.0  # seconds a worker waits for the next chunk before giving up (the loop may be gone)
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_TYPE_BITS = {
    "file": stat.S_IFREG,
    "hardlink": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
    "fifo": stat.S_IFIFO,
}


class UnreadableLayer(CatalogError):
    """The layer blob is not a readable (compressed) tar: corrupt, truncated, or not a layer at all."""

    status = 422


class _BadPath(ValueError):
    """A tar entry name that does not stay inside the image root."""


@dataclass(frozen=True, slots=True)
class LayerEntry:
    """One tar entry. ``path``: normalised absolute path (for whiteouts: the path deleted; for ``opaque``: the
    directory). ``mode``: permission bits with setuid/setgid/sticky (``0o7777``). ``link_target``: the symlink's
    target as written, or the hardlink's normalised target path. ``sha256``: hex digest of a regular file's
    content (and of a hardlink's, when its target came earlier in the same layer)."""

    path: str
    kind: EntryKind
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    link_target: str | None = None
    sha256: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def mode_string(self) -> str:
        """``ls``-style mode, e.g. ``-rwsr-xr-x`` or ``drwxrwxrwt`` (a hardlink shows as the file it is)."""
        return stat.filemode(_TYPE_BITS.get(self.kind, stat.S_IFREG) | self.mode)


@dataclass(frozen=True, slots=True)
class LayerListing:
    """Every usable entry of a layer in tar order, plus one line per entry left out (name and reason)."""

    digest: str
    entries: tuple[LayerEntry, ...]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FileHead:
    """The start of a regular file: ``text`` is None when the content is binary (a NUL byte, or not UTF-8)."""

    size: int
    text: str | None
    truncated: bool
    binary: bool


def normalise(name: str) -> str:
    """``/``-rooted path of a tar name; ``..`` is applied lexically and may not climb out (:class:`_BadPath`)."""
    parts: list[str] = []
    for component in name.split("/"):
        if component in ("", "."):
            continue
        if component == "..":
            if not parts:
                raise _BadPath("climbs out of the image root")
            parts.pop()
        else:
            parts.append(component)
    return "/" + "/".join(parts)


# ----------------------------------------------------------------------------------------------- async → thread


class _Bridge(io.RawIOBase):
    """A blocking, read-only file over an async chunk stream: the worker thread asks the event loop for one
    chunk at a time, so at most one chunk is buffered (back-pressure comes free)."""

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._chunks = chunks
        self._loop = loop
        self._pending = memoryview(b"")
        self._ended = False
        self.abandoned = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._ended:
            if self.abandoned:
                raise InterruptedError("the layer read was abandoned")
            chunk = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result(_CHUNK_WAIT)
            self._ended = chunk is None
            self._pending = memoryview(chunk or b"")
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    async def _next(self) -> bytes | None:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return None

    async def aclose(self) -> None:
        closer = getattr(self._chunks, "aclose", None)
        if closer is not None:
            await closer()


def _zstd(raw: IO[bytes]) -> IO[bytes]:
    try:
        zstandard = importlib.import_module("zstandard")
    except ImportError:
        raise InvalidInput("zstd layers are not supported (the 'zstandard' module is not installed)") from None
    reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return reader


def _decompressed(raw: io.RawIOBase) -> IO[bytes]:
    buffered = io.BufferedReader(raw, _CHUNK)
    head = buffered.peek(len(_ZSTD_MAGIC))
    if head.startswith(_GZIP_MAGIC):
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb"))
    if head.startswith(_ZSTD_MAGIC):
        return _zstd(buffered)
    return buffered


def _read_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the bytes are not a readable layer" (zstandard's own error, when installed)."""
    errors: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
    try:
        return (*errors, importlib.import_module("zstandard").ZstdError)
    except ImportError:
        return errors


# ----------------------------------------------------------------------------------------------- tar entries


def _kind(member: tarfile.TarInfo) -> EntryKind | None:
    checks: tuple[tuple[Callable[[], bool], EntryKind], ...] = (
        (member.isreg, "file"),
        (member.isdir, "dir"),
        (member.issym, "symlink"),
        (member.islnk, "hardlink"),
        (member.ischr, "char"),
        (member.isblk, "block"),
        (member.isfifo, "fifo"),
    )
    return next((kind for check, kind in checks if check()), None)


def _whiteout(path: str) -> LayerEntry | None:
    """The whiteout/opaque entry a ``.wh.`` name stands for; None for aufs metadata (``.wh..wh.*``)."""
    parent, _, name = path.rpartition("/")
    if name == OPAQUE_MARKER:
        return LayerEntry(parent or "/", "opaque")
    if name.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return None
    return LayerEntry(f"{parent}/{name[len(WHITEOUT_PREFIX) :]}", "whiteout")


def _hash(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    content = tar.extractfile(member)
    digest = hashlib.sha256()
    if content is not None:
        while chunk := content.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Scan:
    """Turns tar members into :class:`LayerEntry` values, remembering regular files for later hardlinks."""

    def __init__(self) -> None:
        self.entries: list[LayerEntry] = []
        self.skipped: list[str] = []
        self._files: dict[str, LayerEntry] = {}

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        try:
            path = normalise(member.name)
            entry = self._entry(tar, member, path)
        except _BadPath as exc:
            self.skipped.append(f"{member.name!r}: {exc}")
            return
        if entry is not None:
            self.entries.append(entry)
            if entry.kind == "file":
                self._files[entry.path] = entry

    def _entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> LayerEntry | None:
        if path == "/":
            return None  # the root's own entry ("./") carries nothing to show
        if path.rsplit("/", 1)[-1].startswith(WHITEOUT_PREFIX):
            return _whiteout(path)
        kind = _kind(member)
        if kind is None:
            raise _BadPath(f"unsupported tar entry type {member.type!r}")
        mode, uid, gid = member.mode & 0o7777, member.uid, member.gid
        if kind == "file":
            return LayerEntry(path, kind, member.size, mode, uid, gid, sha256=_hash(tar, member))
        if kind == "hardlink":
            target = normalise(member.linkname)
            known = self._files.get(target)
            size, digest = (known.size, known.sha256) if known else (0, None)
            return LayerEntry(path, kind, size, mode, uid, gid, target, digest)
        return LayerEntry(path, kind, 0, mode, uid, gid, member.linkname if kind == "symlink" else None)


def _open_tar(data: IO[bytes]) -> tarfile.TarFile:
    return tarfile.open(fileobj=data, mode="r|", encoding="utf-8", errors="backslashreplace")


def _list_entries(raw: io.RawIOBase, digest: str) -> LayerListing:
    data = _decompressed(raw)
    scan = _Scan()
    with _open_tar(data) as tar:
        for member in tar:
            scan.add(tar, member)
    while data.read(_CHUNK):  # to the end: checks the gzip trailer (a truncated blob fails here)
        pass
    return LayerListing(digest, tuple(scan.entries), tuple(scan.skipped))


def _read_head(raw: io.RawIOBase, path: str, occurrence: int, limit: int) -> tuple[int, bytes] | None:
    """Size and first ``limit + 1`` bytes of the ``occurrence``-th (0-based) regular entry at ``path``."""
    with _open_tar(_decompressed(raw)) as tar:
        for member in tar:
            try:
                found = member.isreg() and normalise(member.name) == path
            except _BadPath:
                continue
            if found and occurrence == 0:
                content = tar.extractfile(member)
                return member.size, content.read(limit + 1) if content is not None else b""
            occurrence -= found
    return None


def _classify(size: int, head: bytes, limit: int) -> FileHead:
    truncated = len(head) > limit
    head = head[:limit]
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=not truncated)
    except UnicodeDecodeError:
        return FileHead(size, None, truncated, binary=True)
    if "\x00" in text:
        return FileHead(size, None, truncated, binary=True)
    return FileHead(size, text, truncated, binary=False)


# ----------------------------------------------------------------------------------------------- the reader


class LayerReader:
    """Reads layer blobs of one store; caches listings (LRU, at most ``cache_entries`` entries in all)."""

    def __init__(self, driver: StorageDriver, blobs: BlobStore, cache_entries: int = CACHE_ENTRIES) -> None:
        self.driver = driver
        self.blobs = blobs
        self.cache_entries = cache_entries
        self._cache: OrderedDict[str, LayerListing] = OrderedDict()
        self._cached_entries = 0
        self._loading: dict[str, asyncio.Future[LayerListing]] = {}
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="dockyard-layer")
        self._closing: set[asyncio.Future[None]] = set()

    async def listing(self, digest: Digest) -> LayerListing:
        """The layer's entries. NotFound: the blob is not in storage; UnreadableLayer: not a readable tar;
        InvalidInput: zstd without ``zstandard``. Cancelling one caller does not cancel a read others share."""
        key = str(digest)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load(digest))
            loading.add_done_callback(lambda done: self._loaded(key, done))
        return await asyncio.shield(loading)

    async def head(self, digest: Digest, path: str, occurrence: int = 0, limit: int = TEXT_LIMIT) -> FileHead:
        """The first ``limit`` bytes of regular file ``path`` (its ``occurrence``-th entry in the layer, when a
        layer writes a path twice) as text, streaming the layer only up to it. NotFound: no such file."""
        found = await self._run(digest, lambda raw: _read_head(raw, path, occurrence, limit))
        if found is None:
            raise NotFound(f"no file {path} in layer {digest}")
        return _classify(*found, limit)

    def close(self) -> None:
        """Stop the worker threads (reads in progress finish first)."""
        self._pool.shutdown(wait=False)

    async def _load(self, digest: Digest) -> LayerListing:
        listing = await self._run(digest, lambda raw: _list_entries(raw, str(digest)))
        self._remember(listing)
        return listing

    def _loaded(self, key: str, done: asyncio.Future[LayerListing]) -> None:
        self._loading.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved here, so a read nobody waits for any more does not warn

    def _remember(self, listing: LayerListing) -> None:
        size = len(listing.entries)
        if size > self.cache_entries:
            return
        self._cache[listing.digest] = listing
        self._cached_entries += size
        while self._cached_entries > self.cache_entries:
            _, dropped = self._cache.popitem(last=False)
            self._cached_entries -= len(dropped.entries)

    async def _run(self, digest: Digest, work: Callable[[io.RawIOBase], T]) -> T:
        """Run ``work`` in a worker thread over the blob's stream, translating unreadable bytes."""
        located = await self.blobs.locate(digest)
        if located is None:
            raise NotFound(f"layer {digest} is missing from storage")
        loop = asyncio.get_running_loop()
        bridge = _Bridge(self.driver.reader(located.storage_key), loop)
        job: Future[T] = self._pool.submit(work, bridge)
        try:
            return await asyncio.wrap_future(job)
        except PathNotFound:
            raise NotFound(f"layer {digest} is missing from storage") from None
        except _read_errors() as exc:
            raise UnreadableLayer(f"layer {digest} is not a readable tar layer: {exc}") from None
        finally:
            bridge.abandoned = True
            if job.done():
                await bridge.aclose()
            else:  # cancelled while the thread reads: close the stream once the thread has let go of it
                job.add_done_callback(lambda _: self._close_soon(bridge, loop))

    def _close_soon(self, bridge: _Bridge, loop: asyncio.AbstractEventLoop) -> None:
        """From the worker thread: close ``bridge``'s stream on the event loop (unless the loop is gone)."""
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing is left to close on
            loop.call_soon_threadsafe(self._start_close, bridge)

    def _start_close(self, bridge: _Bridge) -> None:
        task = asyncio.ensure_future(bridge.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
