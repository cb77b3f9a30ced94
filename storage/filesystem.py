"""The filesystem driver: keys map to files below a root directory.

Reading and writing file content runs in worker threads, so the event loop never waits for the disk's data.
Metadata calls run on the calling thread: a ``stat`` (of :meth:`FilesystemDriver.stat` and of the small-file cache,
:mod:`storage.smallfiles`), the rename of :meth:`~FilesystemDriver.move`, the unlink of
:meth:`~FilesystemDriver.delete_record`, and the write of a small record by :meth:`~FilesystemDriver.put_content`
(without ``fsync_puts``: into the page cache). On a local disk each takes microseconds to a fraction of a millisecond
(creating an inode measured 10-250 us here), no more than handing it to a thread and back (130-160 us measured
here, ``bench/RESULTS.md``), and the registry makes several per request (stats in every one; a blob upload's
final PUT renames, links and unlinks). Whole-file writes go to a temporary sibling (a name outside the key grammar,
so listings never show it) and are renamed into place; one left by a killed process is removed by
:func:`purge_temporaries`, which garbage collection runs.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from stat import S_ISDIR
from typing import BinaryIO, TypeVar, cast

from storage.driver import FileInfo, Writer
from storage.errors import InvalidOffset, PathNotFound, StorageError, StorageFull, StorageUnavailable
from storage.smallfiles import SmallFiles, read_with_stat
from storage.writeback import write_back

T = TypeVar("T")
READ_CHUNK = 1 << 20
PATHS_REMEMBERED = 4096
_IOV_MAX = os.sysconf("SC_IOV_MAX")  # buffers per writev (1024 on Linux)
WRITE_AT_ONCE = 256 << 10
"""A writer keeps smaller writes in memory until this many bytes are pending (see :class:`FilesystemWriter`)."""
INLINE_PUT = 64 << 10
""":meth:`FilesystemDriver.put_content` writes content up to this size on the calling thread (see the module)."""
_TMP_MARK = "~tmp~"
_TMP_SEQUENCE = itertools.count()  # with the pid: a temporary name no other live writer uses


@contextmanager
def os_errors(path: str, driver: str = "filesystem") -> Iterator[None]:
    """Translate ``OSError`` into the storage error family."""
    try:
        yield
    except FileNotFoundError as exc:
        raise PathNotFound(path, driver) from exc
    except NotADirectoryError as exc:
        raise PathNotFound(path, driver, "a parent is not a directory") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(path, driver, "no space left on device") from exc
        if exc.errno in (errno.EIO, errno.EROFS):
            raise StorageUnavailable(path, driver, exc.strerror or str(exc)) from exc
        raise StorageError(path, driver, exc.strerror or str(exc)) from exc


async def _run(path: str, func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` in a worker thread, its ``OSError`` translated."""
    with os_errors(path):
        return await asyncio.to_thread(func, *args)


async def _now(path: str, func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` on the event loop's thread, its ``OSError`` translated: for metadata calls (see the module
    docstring). Then it lets the loop run other tasks, so that a caller making many such calls in a row (the
    ``used`` markers of every blob a manifest names) never holds the loop for all of them."""
    with os_errors(path):
        result = func(*args)
    await asyncio.sleep(0)
    return result


def _in_parent(target: Path, action: Callable[[], T], attempts: int = 5) -> T:
    """Run ``action``, which needs ``target``'s parent directory; when that is missing, create it (and its parents)
    and run ``action`` again; if a concurrent prune removed it in between, again, up to ``attempts`` times. (A prune
    racing ``mkdir`` itself shows as FileExistsError: the directory existed, then was gone before ``mkdir`` could
    check it; or as FileNotFoundError: ``mkdir`` created an ancestor, which was pruned before it could create the
    next level in it.) The directory usually exists: trying first saves a ``mkdir`` and a ``stat`` per write."""
    for attempt in range(attempts):
        try:
            return action()
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
        with suppress(FileExistsError, FileNotFoundError):
            target.parent.mkdir(parents=True, exist_ok=True)
    raise AssertionError("unreachable")


def _open_new(path: Path, mode: str) -> BinaryIO:
    """Open for writing, creating parent directories."""
    return _in_parent(path, lambda: cast(BinaryIO, open(path, mode)))


def _prune(directory: Path, root: Path) -> None:
    """Remove empty directories from ``directory`` up to (not including) ``root``."""
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def _write_atomic(target: Path, data: bytes, fsync: bool) -> None:
    tmp = target.with_name(f"{target.name}{_TMP_MARK}{os.getpid()}-{next(_TMP_SEQUENCE)}")
    try:
        with _open_new(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _move(source: Path, dest: Path, root: Path) -> None:
    if not source.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(source))
    _in_parent(dest, lambda: os.replace(source, dest))
    _prune(source.parent, root)


def _delete(target: Path, root: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink()
    _prune(target.parent, root)


def _delete_record(target: Path, root: Path, keep: Path | None) -> None:
    target.unlink(missing_ok=True)
    _prune(target.parent, keep if keep is not None and keep in target.parents else root)


def purge_temporaries(root: Path, older_than: float, dry_run: bool = False) -> int:
    """Remove what a killed writer left below ``root``: temporary files of :meth:`FilesystemDriver.put_content` (the
    process died between writing and renaming one) and empty directories (it died between a delete and the prune),
    when last modified before ``older_than`` (a UNIX time; a write in progress is newer). Returns how many temporary
    files were (with ``dry_run``: would be) removed. Blocking: run it in a thread. Safe next to running writers: a
    writer whose parent directory is pruned under it creates it again (``_in_parent``)."""
    removed = 0
    for folder, _dirs, names in os.walk(root, topdown=False):
        here = Path(folder)
        try:
            stale = here.lstat().st_mtime < older_than  # before removing anything in it, which updates it
        except FileNotFoundError:
            continue  # pruned with a child
        for name in names:
            if _TMP_MARK in name and _modified_before(here / name, older_than):
                removed += 1
                if not dry_run:
                    (here / name).unlink(missing_ok=True)
        if stale and here != root and not dry_run:
            _prune(here, root)
    return removed


def _modified_before(path: Path, moment: float) -> bool:
    try:
        return path.lstat().st_mtime < moment
    except FileNotFoundError:
        return False


def _list(target: Path) -> list[str]:
    if not target.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such directory", str(target))
    return sorted(e.name for e in os.scandir(target) if _TMP_MARK not in e.name)


def _walk(target: Path, root: Path) -> list[FileInfo]:
    found: list[FileInfo] = []
    for folder, _, names in os.walk(target):
        for name in names:
            if _TMP_MARK in name:
                continue
            full = Path(folder) / name
            try:
                st = full.stat()
            except FileNotFoundError:
                continue  # deleted while walking
            found.append(FileInfo("/" + str(full.relative_to(root)), st.st_size, st.st_mtime, is_dir=False))
    return found


class FilesystemWriter:
    """Appends to the file at the key; :meth:`commit` fsyncs it once.

    Writes smaller than :data:`WRITE_AT_ONCE` wait in memory until that much is pending, and the file is opened by
    the first thread call that writes: a small blob costs one thread hand-off in all (open, write, fsync and close
    in :meth:`commit`) instead of four. After each :func:`~storage.writeback.write_back` step of bytes, and at
    :meth:`close`, the disk is asked to start writing what came so far (:mod:`storage.writeback`), so the final fsync
    has little left to do.
    """

    def __init__(self, key: str, target: Path, append: bool, size: int, root: Path) -> None:
        self._key = key
        self._root = root
        self._target = target
        self._flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
        self._fd: int | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._size = size
        self._written_back = size
        self._closed = False
        self._lock = threading.Lock()  # a close after a cancelled write waits for that write's thread
        self._finishing: asyncio.Future[None] | None = None  # the thread call of commit or close, once started

    @property
    def size(self) -> int:
        """Bytes in the file, counting pending ones; after a failed write, what the file really holds."""
        return self._size

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise ValueError(f"write to the closed writer of {self._key}")
        self._pending.append(data)
        self._pending_size += len(data)
        self._size += len(data)
        if self._pending_size >= WRITE_AT_ONCE:
            await _run(self._key, self.flush)

    async def commit(self) -> None:
        await self._finish(durable=True)

    async def cancel(self) -> None:
        self._closed = True

        def discard() -> None:
            with self._lock:
                self._pending.clear()
                self._close_file()
                self._target.unlink(missing_ok=True)
                _prune(self._target.parent, self._root)

        await _run(self._key, discard)

    async def close(self) -> None:
        if self._finishing is not None:  # after a commit or close, even a cancelled one: once its thread is done
            await asyncio.gather(self._finishing, return_exceptions=True)
            return
        if self._fd is None and not self._pending:  # nothing written: the file is left as it was, or missing
            self._closed = True
        if not self._closed:
            await self._finish(durable=False)

    async def _finish(self, durable: bool) -> None:
        """Write what is pending, fsync when ``durable``, close: one thread call. The file exists afterwards, empty
        if nothing was written."""
        self._closed = True

        def finish() -> None:
            with self._lock:
                try:
                    fd = self._flush()
                    self._size = os.fstat(fd).st_size  # others' appends included (appends_in_place)
                    if durable:
                        os.fsync(fd)
                    else:  # e.g. one chunk of an upload: its bytes go to disk while the next chunks arrive
                        self._written_back = write_back(fd, self._written_back, self._size, at_least=1)
                finally:
                    self._close_file()

        self._finishing = asyncio.ensure_future(_run(self._key, finish))
        await asyncio.shield(self._finishing)  # a cancelled request leaves the thread call running, for close

    def flush(self) -> None:
        """Write the pending pieces now (blocking: runs in a worker thread)."""
        with self._lock:
            self._flush()

    def _flush(self) -> int:
        """Write the pending pieces (opening the file on the first call) and start the write-back of each full
        step; returns the file descriptor. On failure nothing stays pending and :attr:`size` is the file's."""
        pieces, self._pending, self._pending_size = self._pending, [], 0
        try:
            if self._fd is None:
                self._fd = _in_parent(self._target, lambda: os.open(self._target, self._flags, 0o666))
            _write_all(self._fd, pieces)
        except BaseException:
            self._size = os.fstat(self._fd).st_size if self._fd is not None else self._size - sum(map(len, pieces))
            raise
        self._written_back = write_back(self._fd, self._written_back, self._size)
        return self._fd

    def _close_file(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _write_all(fd: int, pieces: list[bytes]) -> None:
    """Write ``pieces`` in order, in as few ``writev`` calls as the kernel allows (one may write less than asked)."""
    views = [memoryview(piece) for piece in pieces if piece]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        while written:
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0], written = views[0][written:], 0


class FilesystemDriver:
    """Stores keys as files below ``root``; ``fsync_puts`` makes :meth:`put_content` durable too."""

    name = "filesystem"
    moves_are_cheap = True
    appends_in_place = True

    def __init__(self, root: Path, fsync_puts: bool = False) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._fsync_puts = fsync_puts
        self._small = SmallFiles()
        self._paths: dict[str, Path] = {}

    def _full(self, path: str) -> Path:
        """The file of key ``path``; recently used ones are remembered (joining a ``Path`` costs more than the
        ``stat`` that usually follows, and a push names the same keys several times)."""
        full = self._paths.get(path)
        if full is None:
            if len(self._paths) >= PATHS_REMEMBERED:
                self._paths.clear()
            full = self._paths[path] = self.root / path.lstrip("/") if path != "/" else self.root
        return full

    async def get_content(self, path: str) -> bytes:
        """The file's bytes; small files come from :class:`~storage.smallfiles.SmallFiles` while unchanged
        (one ``stat`` on the event loop's thread, see that module), anything else is read in a worker thread."""
        full = self._full(path)
        with os_errors(path):
            cached = self._small.get(full)
        if cached is not None:
            return cached
        data, st = await _run(path, read_with_stat, full)
        self._small.put(full, data, st)
        return data

    async def put_content(self, path: str, data: bytes) -> None:
        """Small content is written on this thread (see the module docstring), unless ``fsync_puts``; larger content,
        or a durable write, in a worker thread."""
        if self._fsync_puts or len(data) > INLINE_PUT:
            await _run(path, _write_atomic, self._full(path), data, self._fsync_puts)
        else:
            await _now(path, _write_atomic, self._full(path), data, False)

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        full = self._full(path)
        fh: BinaryIO = await _run(path, full.open, "rb")
        try:
            size = os.fstat(fh.fileno()).st_size
            if offset > size:
                raise InvalidOffset(path, self.name, f"offset {offset} beyond size {size}")
            fh.seek(offset)
            while chunk := await _run(path, fh.read, READ_CHUNK):
                yield chunk
        finally:
            fh.close()

    async def writer(self, path: str, append: bool = False) -> Writer:
        """A writer that opens the file with its first write to disk (see :class:`FilesystemWriter`); the size it
        continues from comes from a ``stat`` on this thread."""
        full = self._full(path)
        size = 0
        if append:
            with os_errors(path), suppress(FileNotFoundError):
                size = os.stat(full).st_size
        return FilesystemWriter(path, full, append, size, self.root)

    async def stat(self, path: str) -> FileInfo:
        """One ``stat`` on the calling thread (see the module docstring)."""
        with os_errors(path):
            st = os.stat(self._full(path))
        is_dir = S_ISDIR(st.st_mode)
        return FileInfo(path=path, size=0 if is_dir else st.st_size, modified=st.st_mtime, is_dir=is_dir)

    async def stat_file(self, path: str) -> FileInfo:
        info = await self.stat(path)
        if info.is_dir:
            raise PathNotFound(path, self.name)
        return info

    async def list(self, path: str) -> list[str]:
        names = await _run(path, _list, self._full(path))
        prefix = "" if path == "/" else path
        return [f"{prefix}/{name}" for name in names]

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        for info in await _run(path, _walk, self._full(path), self.root):
            yield info

    async def move(self, source: str, dest: str) -> None:
        """A rename on this thread (see the module docstring)."""
        await _now(source, _move, self._full(source), self._full(dest), self.root)

    async def delete(self, path: str) -> None:
        if path == "/":
            raise StorageError(path, self.name, "refusing to delete the root")
        await _run(path, _delete, self._full(path), self.root)

    async def delete_record(self, path: str, keep: str | None = None) -> None:
        """An unlink on this thread (see the module docstring)."""
        await _now(path, _delete_record, self._full(path), self.root, None if keep is None else self._full(keep))

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:  # noqa: ARG002
        return None

    def local_path(self, path: str) -> Path | None:
        return self._full(path)

    async def close(self) -> None:
        return None
