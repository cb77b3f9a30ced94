"""Mounts of a container's root filesystem: the overlay, its unmount, and the lock around both.

Kept apart from :mod:`runtime.containers` so that the supervisor (which :mod:`runtime.containers` imports) can
unmount the root filesystem of a container that ended by itself: a container that is not running holds no mount.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

OVERLAY_OPTIONS = "redirect_dir=off,metacopy=off"
ROOTFS = "rootfs"  # in the container dir (the runtime bundle): the mounted root filesystem
ROOTFS_LOCK = "rootfs.lock"  # in the container dir: flock'ed while the rootfs is mounted for a start or unmounted
_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def rootfs_lock(container_dir: Path) -> Iterator[None]:
    """Hold the container's rootfs lock (an exclusive ``flock``) for a mount or unmount decision."""
    with open(container_dir / ROOTFS_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _check(result: int, what: str, path: Path) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} {path}: {os.strerror(err)}")


def is_mounted(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """True when something is mounted exactly at ``path``."""
    wanted = str(path.absolute())
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4].replace("\\040", " ") == wanted:
            return True
    return False


def mount_overlay(target: Path, lowers: Sequence[Path], upper: Path, work: Path, links: Path) -> None:
    """Mount an overlay on ``target``: ``lowers`` top-most first, through short symlinks in ``links``."""
    shutil.rmtree(links, ignore_errors=True)
    links.mkdir(parents=True)
    for index, lower in enumerate(lowers):
        (links / str(index)).symlink_to(lower.absolute())
    for folder in (upper, work, target):
        folder.mkdir(parents=True, exist_ok=True)
    names = ":".join(str(i) for i in range(len(lowers)))
    data = f"lowerdir={names},upperdir={upper.absolute()},workdir={work.absolute()},{OVERLAY_OPTIONS}"
    previous = os.getcwd()
    os.chdir(links)  # relative lower dirs keep the options within one page
    try:
        result = _libc.mount(b"overlay", str(target.absolute()).encode(), b"overlay", 0, data.encode())
        _check(result, "cannot mount the overlay on", target)
    finally:
        os.chdir(previous)


def unmount(target: Path) -> None:
    """Unmount ``target`` if mounted (lazily when busy); OSError when it stays mounted."""
    if not is_mounted(target):
        return
    if _libc.umount2(str(target.absolute()).encode(), 0) != 0:
        _check(_libc.umount2(str(target.absolute()).encode(), _MNT_DETACH), "cannot unmount", target)
