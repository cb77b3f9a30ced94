"""Commit: an overlayfs upper directory becomes one OCI layer (a gzip-compressed PAX tar).

What the upper dir holds is exactly the container's change set. Translated to OCI:

* files, directories, symlinks, fifos and device nodes become tar entries with numeric uid/gid, mode (setuid
  included), whole-second mtime and the xattrs ``user.*`` and ``security.capability`` (``SCHILY.xattr.*`` PAX
  records; overlay's own ``trusted.overlay.*`` never leaves the host); sockets are skipped, as docker does;
* files sharing an inode inside the upper dir become one regular entry and hardlinks to it;
* an overlay whiteout (a 0/0 character device) becomes ``.wh.NAME``; an opaque directory (``trusted.overlay.opaque``
  is ``y``) becomes its directory entry followed at once by ``DIR/.wh..wh..opq``.

Deterministic: the same upper dir always gives byte-identical output (entries sorted by name bytes, no user or group
names, no atime/ctime, gzip with mtime 0, no file name and a fixed level), so committing the same container twice
gives the same digest. The container must not be running while its upper dir is read (pause or stop it first):
a file that changes type under the walk is refused rather than read.

Overlay must be mounted with ``redirect_dir=off`` and ``metacopy=off`` (the kernel defaults here): with them the upper
dir is not a self-contained change set, so such upper dirs are refused (:class:`LayerDiffError`).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from runtime.applier import OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX, XATTR_PAX_PREFIX

RelPath = tuple[str, ...]

GZIP_LEVEL = 6
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_UNSUPPORTED_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")


class LayerDiffError(Exception):
    """The upper dir cannot be turned into a layer; the message names the path."""


@dataclass(frozen=True)
class LayerDigests:
    """``diff_id``: digest of the uncompressed tar (the image config's rootfs); ``digest``/``size``: of the blob."""

    diff_id: str
    digest: str
    size: int


def write_layer(upper: Path, out: BinaryIO, *, lower: Sequence[Path] | None = None) -> LayerDigests:
    """Write the change set in ``upper`` to ``out`` as a gzip-compressed OCI layer and return its digests.

    ``lower``: the directories overlay was mounted with (``lowerdir``, top-most first). When given, a directory of
    ``upper`` that is not opaque and whose mode, owner and xattrs equal those of the directory overlay shows from the
    lower dirs is left out: it was only copied up to hold a changed child (docker's diff makes the same choice, so
    such a directory's mtime is not carried). Without ``lower`` every directory of ``upper`` is written.
    """
    blob = _HashingWriter(out)
    with gzip.GzipFile(filename="", mode="wb", fileobj=blob, compresslevel=GZIP_LEVEL, mtime=0) as compressed:
        plain = _HashingWriter(compressed)
        with tarfile.open(
            fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"
        ) as tar:
            _Differ(tar, list(lower) if lower is not None else None).run(upper)
    return LayerDigests(diff_id=plain.digest(), digest=blob.digest(), size=blob.size)


class _HashingWriter:
    """Passes writes on to ``sink`` while counting and hashing them (SHA-256)."""

    def __init__(self, sink: BinaryIO | gzip.GzipFile) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._sink.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def read(self, size: int, /) -> bytes:
        raise OSError(errno.EBADF, f"write-only stream: cannot read {size} bytes")

    def tell(self) -> int:
        return self.size

    def seek(self, pos: int, /) -> int:
        raise OSError(errno.ESPIPE, f"stream cannot seek to {pos}")

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        """The sink belongs to the caller: nothing to close."""

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _sorted_names(dir_fd: int) -> list[str]:
    return sorted(os.listdir(dir_fd), key=os.fsencode)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _kept_xattrs(fd: int) -> dict[str, bytes]:
    """The xattrs a layer carries, read from an open file or directory."""
    names = sorted(name for name in os.listxattr(fd) if name.startswith("user.") or name == "security.capability")
    return {name: os.getxattr(fd, name) for name in names}


def _overlay_xattr(fd: int, name: str) -> bytes | None:
    try:
        return os.getxattr(fd, name)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            return None
        raise


@dataclass
class _Walk:
    """One directory being walked: its fd, its path in the upper dir, and the names left to visit."""

    fd: int
    rel: RelPath
    names: Iterator[str] = field(default_factory=lambda: iter(()))


class _Differ:
    """Walks an upper dir depth first, in sorted order, writing one tar entry (or none) per path."""

    def __init__(self, tar: tarfile.TarFile, lower: list[Path] | None) -> None:
        self.tar = tar
        self.lower = lower
        self.links: dict[tuple[int, int], str] = {}  # (st_dev, st_ino) of regular files -> first tar name

    def run(self, upper: Path) -> None:
        root = os.open(upper, _DIR_FLAGS)
        stack = [_Walk(root, (), iter(_sorted_names(root)))]
        try:
            while stack:
                top = stack[-1]
                name = next(top.names, None)
                if name is None:
                    os.close(stack.pop().fd)
                    continue
                child = self.visit(top.fd, (*top.rel, name))
                if child is not None:
                    stack.append(child)
        finally:
            for walk in stack:
                os.close(walk.fd)

    def visit(self, dir_fd: int, rel: RelPath) -> _Walk | None:
        """Emit the entry for ``rel``; a directory is returned open, to be walked next."""
        name = rel[-1]
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if _is_whiteout(st):
            self.emit_marker((*rel[:-1], WHITEOUT_PREFIX + name), st, mode=0o600)
            return None
        if name.startswith(WHITEOUT_PREFIX):
            raise LayerDiffError(f"/{'/'.join(rel)}: names starting with {WHITEOUT_PREFIX!r} are reserved by OCI")
        if stat.S_ISDIR(st.st_mode):
            return self.visit_dir(dir_fd, rel)
        if stat.S_ISREG(st.st_mode):
            self.visit_file(dir_fd, rel, st)
        elif stat.S_ISLNK(st.st_mode):
            info = _info(rel, st, tarfile.SYMTYPE)
            info.linkname = os.readlink(name, dir_fd=dir_fd)
            self.tar.addfile(info)
        elif stat.S_ISFIFO(st.st_mode):
            self.tar.addfile(_info(rel, st, tarfile.FIFOTYPE))
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            info = _info(rel, st, tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE)
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tar.addfile(info)
        return None  # sockets are not kept

    def visit_dir(self, dir_fd: int, rel: RelPath) -> _Walk:
        fd = os.open(rel[-1], _DIR_FLAGS, dir_fd=dir_fd)
        try:
            st = os.fstat(fd)
            if _overlay_xattr(fd, "trusted.overlay.redirect") is not None:
                raise LayerDiffError(f"/{'/'.join(rel)}: overlay redirect_dir was on; mount with redirect_dir=off")
            opaque = _overlay_xattr(fd, OVERLAY_OPAQUE_XATTR) == b"y"
            xattrs = _kept_xattrs(fd)
            if opaque or not self.same_as_lower(rel, st, xattrs):
                self.tar.addfile(_info(rel, st, tarfile.DIRTYPE, xattrs))
            if opaque:
                self.emit_marker((*rel, OPAQUE_MARKER), st, mode=stat.S_IMODE(st.st_mode) & 0o777)
        except BaseException:
            os.close(fd)
            raise
        return _Walk(fd, rel, iter(_sorted_names(fd)))

    def visit_file(self, dir_fd: int, rel: RelPath, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            info = _info(rel, st, tarfile.LNKTYPE)
            info.linkname = self.links[key]
            self.tar.addfile(info)
            return
        fd = os.open(rel[-1], _FILE_FLAGS, dir_fd=dir_fd)
        with open(fd, "rb", closefd=True) as data:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != key:
                raise LayerDiffError(f"/{'/'.join(rel)}: changed while being committed (stop the container first)")
            for unsupported in _UNSUPPORTED_XATTRS:
                if _overlay_xattr(fd, unsupported) is not None:
                    raise LayerDiffError(f"/{'/'.join(rel)}: {unsupported} is set; mount overlay with metacopy=off")
            info = _info(rel, now, tarfile.REGTYPE, _kept_xattrs(fd))
            info.size = now.st_size
            self.tar.addfile(info, data)
        if st.st_nlink > 1:
            self.links[key] = info.name

    def emit_marker(self, rel: RelPath, st: os.stat_result, *, mode: int) -> None:
        """An empty regular file standing for a whiteout or an opaque marker."""
        info = _info(rel, st, tarfile.REGTYPE)
        info.mode = mode
        self.tar.addfile(info)

    def same_as_lower(self, rel: RelPath, st: os.stat_result, xattrs: dict[str, bytes]) -> bool:
        """Whether the lower dirs already show ``rel`` as a directory with this mode, owner and xattrs."""
        if self.lower is None:
            return False
        found = _lower_lookup(self.lower, rel)
        if found is None:
            return False
        low = os.lstat(found)
        if not stat.S_ISDIR(low.st_mode):
            return False
        if (low.st_mode, low.st_uid, low.st_gid) != (st.st_mode, st.st_uid, st.st_gid):
            return False
        fd = os.open(found, _DIR_FLAGS)
        try:
            return _kept_xattrs(fd) == xattrs
        finally:
            os.close(fd)


def _info(rel: RelPath, st: os.stat_result, kind: bytes, xattrs: dict[str, bytes] | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo("/".join(rel))
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = st.st_mtime_ns // 1_000_000_000
    if xattrs:
        info.pax_headers = {XATTR_PAX_PREFIX + k: v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()}
    return info


def _lower_lookup(lower: Sequence[Path], rel: RelPath) -> Path | None:
    """The path overlay would show for ``rel`` from the lower dirs (top-most first), or None if it shows nothing."""
    for layer in lower:
        state = _ancestors_in(layer, rel)
        if state == "blocked":
            return None
        if state != "absent":
            path = layer.joinpath(*rel)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = None
            if st is not None:
                return None if _is_whiteout(st) else path
            if state == "opaque":
                return None
    return None


def _ancestors_in(layer: Path, rel: RelPath) -> str:
    """How ``layer`` treats the parents of ``rel``.

    ``"present"``: all are plain directories; ``"absent"``: one is missing (the layer has nothing there);
    ``"opaque"``: one is opaque (lower layers are hidden below it); ``"blocked"``: one is not a directory (a whiteout,
    a file, a symlink), so no layer shows ``rel``.
    """
    opaque = False
    for i in range(1, len(rel)):
        path = layer.joinpath(*rel[:i])
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return "opaque" if opaque else "absent"
        if not stat.S_ISDIR(st.st_mode):
            return "blocked"
        try:
            opaque = opaque or os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
                raise
    return "opaque" if opaque else "present"
