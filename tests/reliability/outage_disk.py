"""A small filesystem for the disk-full tests: a size-limited tmpfs mounted (as root) under the test's directory.

:func:`small_filesystem` mounts it and always unmounts it (lazily, should a process still hold a file there);
:func:`fill` writes a filler file until only ``leave`` bytes stay free, so the next write that does not fit gets
``ENOSPC``; deleting the filler frees the space again.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.tools import require_root, require_tool

BLOCK = 64 << 10


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


@contextmanager
def small_filesystem(mountpoint: Path, size_mib: int) -> Iterator[Path]:
    """A ``size_mib`` MiB tmpfs at ``mountpoint`` for the ``with`` block."""
    require_root()
    mount, umount = require_tool("mount"), require_tool("umount")
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        done = subprocess.run([umount, str(mountpoint)], capture_output=True, check=False)
        if done.returncode != 0:  # still busy: detach now, the kernel frees it when the last user goes
            subprocess.run([umount, "-l", str(mountpoint)], check=True)


def fill(mountpoint: Path, leave: int, name: str = "filler") -> Path:
    """Write ``mountpoint/name`` (appending to it) until at most ``leave`` bytes stay free; returns its path."""
    filler = mountpoint / name
    with filler.open("ab", buffering=0) as out:
        while (room := free_bytes(mountpoint) - leave) > 0:
            try:
                out.write(b"\0" * min(BLOCK, room))
                out.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


def files_below(root: Path, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Every file below ``root`` (relative path → size), except names starting with one of ``skip``."""
    found = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            if not name.startswith(skip):
                path = Path(folder) / name
                found[str(path.relative_to(root))] = path.stat().st_size
    return found
