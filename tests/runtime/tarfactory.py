"""Test helpers for the layer applier and commit: layer tars built in memory (malicious and edge cases included), a
busybox layer from the host's ``busybox-static``, a manifest of a directory tree, and a real overlayfs mount.

Tars are written with :mod:`tarfile` entry by entry, so names like ``../x`` or ``/x`` and odd link targets reach the
archive exactly as given (``tarfile`` only sanitizes names when it reads files from disk).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from tests.support.tools import require_root, require_tool

MTIME = 1_700_000_000
BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = ("sh", "echo", "ls", "true", "false", "id", "stat")
ManifestEntry = tuple[str, int, int, int, int, str, str, int, tuple[tuple[str, bytes], ...]]


class TarBuilder:
    """Builds a layer tar in memory, one entry per call; every method returns ``self`` to chain."""

    def __init__(self) -> None:
        self._entries: list[tuple[tarfile.TarInfo, bytes | None]] = []

    def add(self, info: tarfile.TarInfo, data: bytes | None = None) -> TarBuilder:
        """Any entry, exactly as given."""
        if data is not None:
            info.size = len(data)
        self._entries.append((info, data))
        return self

    def dir(self, name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: int = MTIME) -> TarBuilder:
        return self.add(_info(name, tarfile.DIRTYPE, mode, uid, gid, mtime))

    def file(
        self,
        name: str,
        data: bytes = b"",
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        mtime: int = MTIME,
        xattrs: Mapping[str, bytes] | None = None,
    ) -> TarBuilder:
        info = _info(name, tarfile.REGTYPE, mode, uid, gid, mtime)
        if xattrs:
            info.pax_headers = {
                "SCHILY.xattr." + key: value.decode("utf-8", "surrogateescape") for key, value in xattrs.items()
            }
        return self.add(info, data)

    def symlink(self, name: str, target: str, *, uid: int = 0, gid: int = 0, mtime: int = MTIME) -> TarBuilder:
        info = _info(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime)
        info.linkname = target
        return self.add(info)

    def hardlink(self, name: str, target: str) -> TarBuilder:
        info = _info(name, tarfile.LNKTYPE, 0o644, 0, 0, MTIME)
        info.linkname = target
        return self.add(info)

    def fifo(self, name: str, *, mode: int = 0o644) -> TarBuilder:
        return self.add(_info(name, tarfile.FIFOTYPE, mode, 0, 0, MTIME))

    def device(self, name: str, major: int, minor: int, *, block: bool = False, mode: int = 0o666) -> TarBuilder:
        info = _info(name, tarfile.BLKTYPE if block else tarfile.CHRTYPE, mode, 0, 0, MTIME)
        info.devmajor, info.devminor = major, minor
        return self.add(info)

    def whiteout(self, path: str) -> TarBuilder:
        """``DIR/.wh.NAME`` for ``DIR/NAME``."""
        head, _, name = path.rpartition("/")
        return self.file(f"{head}/.wh.{name}" if head else f".wh.{name}", mode=0o600)

    def opaque(self, directory: str) -> TarBuilder:
        """``DIR/.wh..wh..opq``."""
        return self.file(f"{directory}/.wh..wh..opq", mode=0o600)

    def build(self, compression: Literal["none", "gzip"] = "none") -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in self._entries:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return gzip.compress(buffer.getvalue(), mtime=0) if compression == "gzip" else buffer.getvalue()


def _info(name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.mtime = mtime
    return info


def busybox_layer() -> bytes:
    """A gzip layer with the host's static busybox: ``/bin/busybox``, applet symlinks, ``/bin/cat`` as a hardlink."""
    if not BUSYBOX.exists():
        require_tool("busybox")  # fails under CI, skips elsewhere
    tar = TarBuilder().dir("bin").dir("etc").dir("tmp", mode=0o1777)
    tar.file("bin/busybox", BUSYBOX.read_bytes(), mode=0o755)
    for applet in BUSYBOX_APPLETS:
        tar.symlink(f"bin/{applet}", "busybox")
    tar.hardlink("bin/cat", "bin/busybox")
    tar.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    return tar.build("gzip")


def tree_manifest(root: Path) -> dict[str, ManifestEntry]:
    """path -> (type, mode, uid, gid, size, sha256, link target, rdev, user.* xattrs) for everything under ``root``.

    Directory sizes and all times are left out: they are not part of what a layer round trip must keep.
    """
    found: dict[str, ManifestEntry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            found[str(path.relative_to(root))] = _describe(path)
    return found


def _describe(path: Path) -> ManifestEntry:
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    size, digest, link = 0, "", ""
    xattrs: tuple[tuple[str, bytes], ...] = ()
    if stat.S_ISREG(kind):
        size, digest = st.st_size, hashlib.sha256(path.read_bytes()).hexdigest()
    if stat.S_ISLNK(kind):
        link = os.readlink(path)
    if stat.S_ISREG(kind) or stat.S_ISDIR(kind):
        names = sorted(n for n in os.listxattr(path, follow_symlinks=False) if n.startswith("user."))
        xattrs = tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in names)
    rdev = st.st_rdev if stat.S_ISCHR(kind) or stat.S_ISBLK(kind) else 0
    return (oct(kind), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, digest, link, rdev, xattrs)


@contextmanager
def overlay_mount(lower: Sequence[Path], merged: Path, *, upper: Path | None = None) -> Iterator[Path]:
    """Mount overlayfs at ``merged`` (``lower`` top-most first; read-only without ``upper``); always unmounted."""
    require_root()
    mount, umount = require_tool("mount"), require_tool("umount")
    options = "lowerdir=" + ":".join(str(p) for p in lower)
    if upper is not None:
        work = upper.with_name(upper.name + "-work")
        work.mkdir(exist_ok=True)
        options += f",upperdir={upper},workdir={work},redirect_dir=off,metacopy=off"
    merged.mkdir(parents=True, exist_ok=True)
    subprocess.run([mount, "-t", "overlay", "overlay", "-o", options, str(merged)], check=True, capture_output=True)
    try:
        yield merged
    finally:
        subprocess.run([umount, str(merged)], check=True, capture_output=True)
