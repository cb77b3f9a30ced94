"""dockyard's secure OCI layer applier: a layer tar stream becomes files under a root directory.

Not :meth:`tarfile.TarFile.extractall`: its filters are not enough (on Python 3.11.7 a hardlink can still overwrite a
file outside the target, and the ``data`` filter breaks real images: it drops setuid bits and refuses absolute symlinks
and device nodes). Every filesystem call here is made relative to a directory file descriptor opened with
``O_NOFOLLOW``, so no path is ever resolved by the kernel from a string that the layer controls.

Rules (docker's, made stricter where docker relies on a chroot):

* Entry names are relative to the root: a leading ``/`` or ``./`` is dropped and ``a/../b`` is ``b``; a name whose
  ``..`` climbs above the root is refused.
* Parent directories may be symlinks left by this or an earlier layer (``lib -> usr/lib``) only if the link is
  relative and resolves inside the root; a parent that is an absolute symlink (``evil -> /etc``), climbs out of the
  root or loops is refused. The last component of a name is never followed: an entry replaces what is there.
* A relative symlink whose target climbs out of the root from where it is created is refused (as docker does);
  absolute targets are kept verbatim: they are resolved inside the container, later.
* A hardlink must name a regular file already inside the root, reached without any symlink.
* OCI whiteouts: ``.wh.NAME`` removes ``NAME`` and ``.wh..wh..opq`` empties its directory, but only of content from
  earlier layers: entries of the same layer are kept whatever their order in the tar. With
  ``whiteout_format="overlay"`` (one lower dir per layer for overlayfs) they are written as overlayfs does instead:
  a 0/0 character device, and the ``trusted.overlay.opaque=y`` xattr. Other ``.wh..wh.*`` names (aufs metadata) are
  ignored, like docker does.
* Kept as docker keeps them: numeric uid/gid (``lchown``), modes including setuid/setgid/sticky (``chmod`` after
  ``chown``, which clears them), mtimes, symlinks, hardlinks, fifos, device nodes, and ``SCHILY.xattr.*`` PAX records
  (written after ``chown``, which clears ``security.capability``; ``ENOTSUP``/``EPERM`` are logged and skipped like
  docker does, and ``trusted.overlay.*`` is never taken from a layer). Directory modes and mtimes are set after all
  their children are written.

All or nothing: :func:`apply_layer` works in place on ``target`` (a fresh directory, or one holding only the layers
below, that the caller is building), and on any failure removes ``target`` entirely before raising, so nothing is left
half-extracted. :func:`apply_layers` builds in a staging sibling and renames it into place, so ``target`` appears only
complete.
"""

from __future__ import annotations

import errno
import gzip
import importlib
import io
import logging
import os
import secrets
import shutil
import stat
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

Compression = Literal["gzip", "zstd", "none", "auto"]
WhiteoutFormat = Literal["oci", "overlay"]
RelPath = tuple[str, ...]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PAX_PREFIX = "SCHILY.xattr."
_FORBIDDEN_XATTR_PREFIX = "trusted.overlay."
_MAX_SYMLINK_HOPS = 40
# Bounds on hostile trees: PATH_MAX, and a depth far beyond real images (node_modules reach ~50) that keeps every
# recursive walk of a root (Python's shutil.rmtree and os.walk recurse once per level) under the recursion limit.
MAX_NAME_BYTES = 4096
MAX_DEPTH = 512
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class LayerError(Exception):
    """A layer that cannot be applied. ``str()`` is one line naming the layer and, when known, the entry."""

    def __init__(self, label: str, entry: str | None, reason: str) -> None:
        where = f"layer {label}" if entry is None else f"layer {label}, entry {entry!r}"
        super().__init__(f"{where}: {reason}")
        self.label = label
        self.entry = entry
        self.reason = reason


@dataclass(frozen=True)
class ApplyStats:
    """What one apply did: tar entries read, bytes of regular file data written, whiteout entries seen."""

    entries: int
    bytes: int
    whiteouts: int

    def __add__(self, other: ApplyStats) -> ApplyStats:
        return ApplyStats(self.entries + other.entries, self.bytes + other.bytes, self.whiteouts + other.whiteouts)


class _Source(Protocol):
    """A decompressed layer stream, as :mod:`tarfile` reads it."""

    def read(self, size: int, /) -> bytes: ...
    def write(self, data: bytes, /) -> object: ...
    def tell(self) -> int: ...
    def seek(self, pos: int, /) -> object: ...
    def close(self) -> object: ...


class _Refused(Exception):
    """Raised by the helpers with the reason alone; :func:`apply_layer` adds the layer and the entry."""


class _Restart(Exception):
    """A path resolved from a directory other than the root climbed above it: resolve it from the root instead."""


def apply_layer(
    stream: BinaryIO,
    target: Path,
    *,
    label: str,
    compression: Compression = "auto",
    whiteout_format: WhiteoutFormat = "oci",
) -> ApplyStats:
    """Apply the layer tar read from ``stream`` onto ``target`` (created if missing) and return what was done.

    ``target`` must be a directory this call may destroy: a fresh one, or one holding only the lower layers applied
    so far. On any failure (a refused entry, a corrupt stream, a full disk) ``target`` is removed entirely and
    :class:`LayerError` is raised, naming ``label`` and the offending entry (an exception raised by ``stream``
    itself, such as a digest check of the caller's, is its ``__cause__``). The stream is read once, front to back, and
    to its end (so a caller hashing it sees every byte); memory grows with the number of entries (their paths), never
    with file data.
    """
    if target.resolve() == Path("/"):
        raise ValueError("refusing to apply a layer onto /")
    target.mkdir(parents=True, exist_ok=True)
    try:
        return _apply(stream, target, label, compression, whiteout_format)
    except BaseException:
        _discard(target)
        raise


def apply_layers(layers: Sequence[tuple[str, Path]], target: Path) -> ApplyStats:
    """Flatten ``layers`` (``(label, blob path)``, bottom layer first; any compression) into the new dir ``target``.

    OCI whiteout semantics. ``target`` must not exist (or be an empty directory). The layers are applied into a
    staging sibling that is renamed to ``target`` at the end, so ``target`` exists only complete; on failure nothing
    is left and the first layer's :class:`LayerError` is raised.
    """
    staging = target.with_name(f".{target.name}.partial-{secrets.token_hex(6)}")
    total = ApplyStats(0, 0, 0)
    try:
        staging.mkdir(parents=True)
        for label, path in layers:
            with path.open("rb") as blob:
                total += apply_layer(blob, staging, label=label)
        os.rename(staging, target)
    except BaseException:
        _discard(staging)
        raise
    return total


def _apply(stream: BinaryIO, target: Path, label: str, compression: Compression, fmt: WhiteoutFormat) -> ApplyStats:
    root_fd = os.open(target, _DIR_FLAGS)
    applier = _Applier(root_fd, fmt, label)
    try:
        with _tar_reader(stream, compression) as (tar, data):
            applier.run(tar)
            applier.current = None
            _drain(data)
    except _Refused as exc:
        raise LayerError(label, applier.current, str(exc)) from None
    except Exception as exc:  # corrupt stream, I/O error, odd header: still one readable line, still rolled back
        raise LayerError(label, applier.current, f"{type(exc).__name__}: {exc}") from exc
    finally:
        os.close(root_fd)
    return applier.stats()


def _discard(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError:
        log.exception("could not remove %s after a failed layer apply", path)


# ----------------------------------------------------------------------------------------------- decompression


class _Prefixed(io.RawIOBase):
    """``head`` then the rest of ``rest``: lets the compression be sniffed on a stream that cannot seek."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def _read_head(stream: BinaryIO, size: int) -> bytes:
    head = b""
    while len(head) < size:
        more = stream.read(size - len(head))
        if not more:
            break
        head += more
    return head


def _sniff(head: bytes) -> Compression:
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


def _decompressor(raw: BinaryIO, compression: Compression) -> _Source:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "zstd":
        try:
            zstandard = importlib.import_module("zstandard")
        except ImportError:
            raise _Refused("zstd-compressed layer, but the 'zstandard' module is not installed") from None
        reader: _Source = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return reader
    return raw


@contextmanager
def _tar_reader(stream: BinaryIO, compression: Compression) -> Iterator[tuple[tarfile.TarFile, _Source]]:
    """The layer as a streaming (``r|``) tar, plus the decompressed stream under it (to drain at the end)."""
    head = _read_head(stream, len(_ZSTD_MAGIC))
    raw: BinaryIO = io.BufferedReader(_Prefixed(head, stream), _CHUNK)
    data = _decompressor(raw, _sniff(head) if compression == "auto" else compression)
    try:
        with tarfile.open(fileobj=data, mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
            yield tar, data
    finally:
        data.close()


def _drain(data: _Source) -> None:
    """Read to the end: verifies the gzip trailer and lets a hashing caller see every byte."""
    while data.read(_CHUNK):
        pass


# ----------------------------------------------------------------------------------------------- paths


def normalize(name: str) -> RelPath:
    """The components of a tar name relative to the root; ``..`` is applied lexically and may not leave the root.

    Names longer than :data:`MAX_NAME_BYTES` (PATH_MAX: no tool could use such a path inside the container, and
    docker's path-based applier fails on them too) or deeper than :data:`MAX_DEPTH` components are refused.
    """
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise _Refused(f"name longer than {MAX_NAME_BYTES} bytes")
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise _Refused("path climbs out of the root with '..'")
            parts.pop()
        else:
            parts.append(comp)
    _check_depth(len(parts))
    return tuple(parts)


def _check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Refused(f"path deeper than {MAX_DEPTH} directories")


def _show(parts: RelPath) -> str:
    return "/" + "/".join(parts)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _symlink_stays_inside(where: RelPath, target: str) -> bool:
    """Whether a relative symlink in directory ``where`` (a real path) points inside the root, lexically."""
    depth = len(where)
    for comp in target.split("/"):
        if comp == "..":
            depth -= 1
            if depth < 0:
                return False
        elif comp not in ("", "."):
            depth += 1
    return True


@dataclass
class _Dir:
    """An open directory inside the root and its real path there (symlinks resolved)."""

    fd: int
    real: RelPath


# ----------------------------------------------------------------------------------------------- the applier


class _Applier:
    """Applies the members of one tar stream under ``root_fd``; one instance per layer."""

    def __init__(self, root_fd: int, fmt: WhiteoutFormat, label: str) -> None:
        self.root_fd = root_fd
        self.fmt = fmt
        self.label = label
        self.current: str | None = None
        self.touched: set[RelPath] = set()  # real paths this layer wrote, with all their ancestors
        self.dirs: dict[RelPath, tarfile.TarInfo] = {}  # directory metadata, applied at the end
        self.entries = 0
        self.bytes = 0
        self.whiteouts = 0
        # The parent directory of the last entry, kept open: tars list siblings together, and resolving a path
        # component by component costs a few syscalls per level. Removing a directory or a symlink (the only things
        # a path goes through) makes it stale; it is only closed when the next entry needs another one.
        self.parent: tuple[RelPath, _Dir] | None = None
        self.parent_stale = False

    def stats(self) -> ApplyStats:
        return ApplyStats(self.entries, self.bytes, self.whiteouts)

    def run(self, tar: tarfile.TarFile) -> None:
        try:
            while (member := tar.next()) is not None:
                # A streaming read needs no index of members: drop it so memory stays flat however many entries.
                tar.members.clear()  # type: ignore[attr-defined]  # TarFile.members is not in typeshed
                self.current = member.name
                self.entries += 1
                self.entry(tar, member)
        finally:
            self.forget_parent()
        self.finish_dirs()

    # -- resolution

    def open_dir(self, parts: RelPath, *, create: bool, follow: bool, start: _Dir | None = None) -> _Dir | None:
        """Open the directory ``parts`` inside the root, component by component, never letting the kernel follow.

        Missing components are created (mode 0755) when ``create``, else ``None`` is returned. Relative symlinks
        are followed when ``follow`` and as long as they stay inside the root; anything else is refused. With
        ``start`` (an open directory, not closed here), ``parts`` are resolved from it instead of the root; a symlink
        that climbs above ``start`` raises :class:`_Restart` (the caller resolves the full path from the root).
        """
        base_fd, base = (start.fd, start.real) if start is not None else (self.root_fd, ())
        stack: list[int] = []
        names = list(base)
        pending = list(reversed(parts))
        hops = 0
        try:
            while pending:
                comp = pending.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if not stack:
                        raise _Restart() if base else _Refused("a symlink in the path leads out of the root")
                    os.close(stack.pop())
                    names.pop()
                    continue
                fd = stack[-1] if stack else base_fd
                st = _lstat(comp, fd)
                if st is None:
                    if not create:
                        return None
                    _check_depth(len(names) + 1)
                    self.make_implicit_dir(fd, comp, (*names, comp))
                elif stat.S_ISLNK(st.st_mode):
                    hops += 1
                    pending.extend(reversed(self.symlink_hop(fd, comp, (*names, comp), follow, hops).split("/")))
                    continue
                elif not stat.S_ISDIR(st.st_mode):
                    raise _Refused(f"{_show((*names, comp))} is not a directory")
                stack.append(os.open(comp, _DIR_FLAGS, dir_fd=fd))
                names.append(comp)
            top = stack.pop() if stack else os.dup(base_fd)
            return _Dir(top, tuple(names))
        finally:
            for fd in stack:
                os.close(fd)

    def symlink_hop(self, dir_fd: int, name: str, real: RelPath, follow: bool, hops: int) -> str:
        """The target of the symlink ``real`` met in a path, if it may be followed."""
        target = os.readlink(name, dir_fd=dir_fd)
        if not follow:
            raise _Refused(f"path goes through the symlink {_show(real)} -> {target!r}")
        if target.startswith("/"):
            raise _Refused(f"parent {_show(real)} is a symlink to the absolute path {target!r}; not writing through it")
        if hops > _MAX_SYMLINK_HOPS:
            raise _Refused(f"too many levels of symlinks at {_show(real)}")
        return target

    def make_implicit_dir(self, dir_fd: int, name: str, real: RelPath) -> None:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
        os.chmod(name, 0o755, dir_fd=dir_fd)  # undo the umask: docker makes missing parents 0755
        self.touch(real)

    def touch(self, real: RelPath) -> None:
        """Record ``real`` and its ancestors (a recorded path's ancestors are always recorded: stop at the first)."""
        for i in range(len(real), 0, -1):
            prefix = real[:i]
            if prefix in self.touched:
                return
            self.touched.add(prefix)

    def remove(self, dir_fd: int, name: str, real: RelPath) -> None:
        """Remove whatever ``name`` is (a directory with all its content), never following a symlink."""
        st = _lstat(name, dir_fd)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=dir_fd)
            if real in self.touched:  # only this layer's own directories have metadata waiting (rarely replaced)
                self.dirs = {path: info for path, info in self.dirs.items() if path[: len(real)] != real}
        else:
            os.unlink(name, dir_fd=dir_fd)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            self.parent_stale = True

    # -- entries

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = normalize(member.name)
        if parts and parts[-1].startswith(WHITEOUT_PREFIX):
            self.whiteout(parts)
        elif not parts:
            if not member.isdir():
                raise _Refused("entry names the root itself but is not a directory")
            self.dirs.pop((), None)
            self.dirs[()] = member
        else:
            self.create(tar, member, self.parent_dir(parts[:-1]), parts[-1])

    def parent_dir(self, parts: RelPath) -> _Dir:
        """``parts`` opened (and created) like :meth:`open_dir` does, reusing the last one while it is valid."""
        found = None
        if self.parent is not None and not self.parent_stale:
            cached_parts, cached = self.parent
            if cached_parts == parts:
                return cached
            if parts[: len(cached_parts)] == cached_parts:  # a subdirectory of the last one: go on from there
                try:
                    found = self.open_dir(parts[len(cached_parts) :], create=True, follow=True, start=cached)
                except _Restart:
                    found = None
        self.forget_parent()
        if found is None:
            found = self.open_dir(parts, create=True, follow=True)
        assert found is not None  # create=True never gives None
        _check_depth(len(found.real) + 1)  # symlinks may make the real path deeper than the name
        self.parent = (parts, found)
        return found

    def forget_parent(self) -> None:
        if self.parent is not None:
            os.close(self.parent[1].fd)
        self.parent, self.parent_stale = None, False

    def create(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: _Dir, name: str) -> None:
        real = (*parent.real, name)
        if member.isdir():
            self.make_dir(parent, name, real, member)
        elif member.isreg():
            self.make_file(tar, member, parent, name, real)
        elif member.issym():
            self.make_symlink(member, parent, name, real)
        elif member.islnk():
            self.make_hardlink(member, parent, name, real)
        elif member.isfifo() or member.ischr() or member.isblk():
            self.make_node(member, parent, name, real)
        else:
            raise _Refused(f"unsupported tar entry type {member.type!r}")
        self.touch(real)

    def make_dir(self, parent: _Dir, name: str, real: RelPath, member: tarfile.TarInfo) -> None:
        st = _lstat(name, parent.fd)
        if st is None or not stat.S_ISDIR(st.st_mode):
            self.remove(parent.fd, name, real)
            os.mkdir(name, 0o700, dir_fd=parent.fd)
        self.dirs.pop(real, None)
        self.dirs[real] = member

    def make_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: _Dir, name: str, real: RelPath) -> None:
        self.remove(parent.fd, name, real)
        fd = os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=parent.fd)
        try:
            self.bytes += _copy_data(tar, member, fd)
            self.set_owner_mode(fd, member)  # after the data: a write would clear security.capability
            self.set_xattrs(fd, member)
            os.utime(fd, ns=_times(member))
        finally:
            os.close(fd)

    def make_symlink(self, member: tarfile.TarInfo, parent: _Dir, name: str, real: RelPath) -> None:
        target = member.linkname
        if not target:
            raise _Refused("symlink with an empty target")
        if not target.startswith("/") and not _symlink_stays_inside(parent.real, target):
            raise _Refused(f"symlink target {target!r} points out of the root")
        self.remove(parent.fd, name, real)
        os.symlink(target, name, dir_fd=parent.fd)
        os.chown(name, member.uid, member.gid, dir_fd=parent.fd, follow_symlinks=False)
        self.set_xattrs(f"/proc/self/fd/{parent.fd}/{name}", member)
        os.utime(name, ns=_times(member), dir_fd=parent.fd, follow_symlinks=False)

    def make_hardlink(self, member: tarfile.TarInfo, parent: _Dir, name: str, real: RelPath) -> None:
        """A hardlink to a regular file already in the root; the link shares that file's metadata."""
        try:
            source_parts = normalize(member.linkname)
            if not source_parts:
                raise _Refused("it is the root directory")
            source = self.open_dir(source_parts[:-1], create=False, follow=False)
        except _Refused as exc:
            raise _Refused(f"hardlink target {member.linkname!r}: {exc}") from None
        if source is None:
            raise _Refused(f"hardlink target {member.linkname!r} does not exist in the layers")
        try:
            st = _lstat(source_parts[-1], source.fd)
            if st is None or not stat.S_ISREG(st.st_mode):
                kind = "does not exist in the layers" if st is None else "is not a regular file"
                raise _Refused(f"hardlink target {member.linkname!r} {kind}")
            existing = _lstat(name, parent.fd)
            if existing is not None and (existing.st_dev, existing.st_ino) == (st.st_dev, st.st_ino):
                return
            self.remove(parent.fd, name, real)
            os.link(source_parts[-1], name, src_dir_fd=source.fd, dst_dir_fd=parent.fd, follow_symlinks=False)
        finally:
            os.close(source.fd)

    def make_node(self, member: tarfile.TarInfo, parent: _Dir, name: str, real: RelPath) -> None:
        self.remove(parent.fd, name, real)
        if member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=parent.fd)
        else:
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent.fd)
        os.chown(name, member.uid, member.gid, dir_fd=parent.fd, follow_symlinks=False)
        os.chmod(name, stat.S_IMODE(member.mode), dir_fd=parent.fd)  # a node we just made: not a symlink
        self.set_xattrs(f"/proc/self/fd/{parent.fd}/{name}", member)
        os.utime(name, ns=_times(member), dir_fd=parent.fd, follow_symlinks=False)

    # -- whiteouts

    def whiteout(self, parts: RelPath) -> None:
        self.whiteouts += 1
        name, where = parts[-1], parts[:-1]
        if name == OPAQUE_MARKER:
            self.opaque(where)
            return
        if name.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs metadata (.wh..wh.plnk and friends): docker ignores it too
        victim = name[len(WHITEOUT_PREFIX) :]
        if victim in ("", ".", ".."):
            raise _Refused("malformed whiteout name")
        parent = self.open_dir(where, create=self.fmt == "overlay", follow=True)
        if parent is None:
            return  # nothing below to hide
        try:
            real = (*parent.real, victim)
            if real in self.touched:
                return  # a whiteout only hides lower layers, never this layer's own entries
            self.remove(parent.fd, victim, real)
            if self.fmt == "overlay":
                os.mknod(victim, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent.fd)
        finally:
            os.close(parent.fd)

    def opaque(self, where: RelPath) -> None:
        """Empty ``where`` of lower content; in overlay format also mark it opaque for overlayfs."""
        directory = self.open_dir(where, create=self.fmt == "overlay", follow=True)
        if directory is None:
            return
        try:
            self.touch(directory.real)
            if self.fmt == "overlay":
                os.setxattr(directory.fd, OVERLAY_OPAQUE_XATTR, b"y")
        finally:
            os.close(directory.fd)
        self.prune(directory.real)

    def prune(self, top: RelPath) -> None:
        """Remove from ``top`` (recursively) everything this layer did not write."""
        work = [top]
        while work:
            directory = self.open_dir(work.pop(), create=False, follow=False)
            if directory is None:
                continue
            try:
                for name in os.listdir(directory.fd):
                    child = (*directory.real, name)
                    if child not in self.touched:
                        self.remove(directory.fd, name, child)
                    elif (st := _lstat(name, directory.fd)) is not None and stat.S_ISDIR(st.st_mode):
                        work.append(child)
            finally:
                os.close(directory.fd)

    # -- metadata

    def finish_dirs(self) -> None:
        """Directory ownership, mode, xattrs and mtime, now that nothing more is written inside them."""
        cursor: _Dir | None = None
        try:
            for real, member in reversed(self.dirs.items()):
                self.current = member.name
                cursor = self.move_to(cursor, real)
                if cursor is None:
                    continue  # replaced later in the layer by something that is not a directory
                self.set_owner_mode(cursor.fd, member)
                self.set_xattrs(cursor.fd, member)
                os.utime(cursor.fd, ns=_times(member))
        finally:
            if cursor is not None:
                os.close(cursor.fd)

    def move_to(self, cursor: _Dir | None, real: RelPath) -> _Dir | None:
        """Open the real path ``real`` (no symlink followed) from the open directory ``cursor`` (closed here): up
        through ``..`` to the common ancestor, then down; a deep tree then costs a few syscalls per directory, not
        one per level. ``..`` of a directory reached without symlinks is its real parent inside the root."""
        common, fd = 0, os.dup(self.root_fd)
        if cursor is not None:
            os.close(fd)
            common, fd = _common_prefix(cursor.real, real), cursor.fd
            for _ in range(len(cursor.real) - common):
                up = os.open("..", _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = up
        try:
            return self.open_dir(real[common:], create=False, follow=False, start=_Dir(fd, real[:common]))
        except _Refused:
            return None
        finally:
            os.close(fd)

    def set_owner_mode(self, fd: int, member: tarfile.TarInfo) -> None:
        os.chown(fd, member.uid, member.gid)
        os.chmod(fd, stat.S_IMODE(member.mode))  # after chown, which clears setuid/setgid

    def set_xattrs(self, target: int | str, member: tarfile.TarInfo) -> None:
        """The layer's ``SCHILY.xattr.*`` records; ``target`` is an fd or a path whose last part is not followed."""
        for key, value in sorted(member.pax_headers.items()):
            if not key.startswith(XATTR_PAX_PREFIX):
                continue
            name = key[len(XATTR_PAX_PREFIX) :]
            if name.startswith(_FORBIDDEN_XATTR_PREFIX):
                log.warning("layer %s, entry %r: xattr %s ignored", self.label, member.name, name)
                continue
            raw = value.encode("utf-8", "surrogateescape")
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, raw)
                else:
                    os.setxattr(target, name, raw, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
                log.warning("layer %s, entry %r: xattr %s not kept: %s", self.label, member.name, name, exc.strerror)


def _copy_data(tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> int:
    """Write ``member``'s data into the new file ``fd`` and return how many bytes were read.

    Runs of zeros become holes (chunks of zeros are skipped, then the size is set), and a GNU/PAX sparse member's
    holes are never read at all: a layer of huge sparse or zero-filled files (a decompression bomb of zeros) costs
    the time to decompress it, not the disk space it claims. A short member is refused."""
    sparse: list[tuple[int, int]] | None = getattr(member, "sparse", None)  # typeshed: int | None, wrongly
    if sparse is None:
        source = tar.extractfile(member)
        assert source is not None  # a regular member always has a file object
        read = _copy_run(source, fd, 0, member.size)
    else:  # the data blocks are stored one after the other; the stream only seeks forward
        stream, read = tar.fileobj, 0
        assert stream is not None
        for offset, size in sparse:
            stream.seek(member.offset_data + read)
            read += _copy_run(stream, fd, offset, size)
    os.ftruncate(fd, member.size)
    return read


def _copy_run(source: _Source, fd: int, offset: int, size: int) -> int:
    """Copy ``size`` bytes from ``source`` to ``fd`` at ``offset``, skipping chunks of zeros."""
    done = 0
    while done < size:
        chunk = source.read(min(_CHUNK, size - done))
        if not chunk:
            raise _Refused(f"truncated: {done} of {size} bytes")
        if chunk.count(0) != len(chunk):
            os.pwrite(fd, chunk, offset + done)
        done += len(chunk)
    return done


def _common_prefix(a: RelPath, b: RelPath) -> int:
    """How many leading components ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _times(member: tarfile.TarInfo) -> tuple[int, int]:
    """(atime, mtime) in nanoseconds: both the entry's mtime, like docker."""
    mtime = member.mtime
    ns = mtime * 1_000_000_000 if isinstance(mtime, int) else round(mtime * 1e9)
    return ns, ns
