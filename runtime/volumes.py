"""Named and anonymous volumes: host directories that outlive the containers using them.

Layout under the runtime root (docker's ``local`` driver layout)::

    root/volumes/<name>/_data    the volume's content, bind-mounted into containers

A name follows docker's grammar (``[a-zA-Z0-9][a-zA-Z0-9_.-]+``); an anonymous volume is named by 64 random hex
digits. A volume's creation time is its directory's mtime at creation, kept in ``root/volumes/<name>/created``.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VOLUME_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
DATA_DIR = "_data"


class VolumeError(Exception):
    """A volume operation a user asked for cannot be done; ``str()`` is one line."""


def check_volume_name(name: str) -> str:
    """``name`` when it is a valid volume name, else :class:`VolumeError` with docker's explanation."""
    if not VOLUME_NAME_RE.fullmatch(name):
        raise VolumeError(
            f"{name!r} includes invalid characters for a local volume name, only "
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'
        )
    return name


@dataclass(frozen=True)
class Volume:
    """One volume: its name, where its data lives on the host, and when it was created (RFC 3339)."""

    name: str
    mountpoint: Path
    created: str

    def to_json(self) -> dict[str, Any]:
        """docker's ``volume inspect`` shape."""
        return {
            "CreatedAt": self.created,
            "Driver": "local",
            "Labels": {},
            "Mountpoint": str(self.mountpoint),
            "Name": self.name,
            "Options": {},
            "Scope": "local",
        }


class VolumeStore:
    """The volumes under ``root/volumes`` (created on first use)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "volumes"

    def _volume(self, name: str) -> Volume:
        folder = self.dir / name
        created_file = folder / "created"
        created = created_file.read_text().strip() if created_file.exists() else ""
        return Volume(name, folder / DATA_DIR, created)

    def exists(self, name: str) -> bool:
        """True when volume ``name`` exists."""
        return VOLUME_NAME_RE.fullmatch(name) is not None and (self.dir / name / DATA_DIR).is_dir()

    def get(self, name: str) -> Volume:
        """Volume ``name``; :class:`VolumeError` ``no such volume`` when missing."""
        if not self.exists(name):
            raise VolumeError(f"no such volume: {name}")
        return self._volume(name)

    def create(self, name: str | None = None) -> Volume:
        """Create volume ``name`` (None: an anonymous one); an existing volume is returned as is (as docker)."""
        name = check_volume_name(name) if name is not None else secrets.token_hex(32)
        folder = self.dir / name
        if not (folder / DATA_DIR).is_dir():
            (folder / DATA_DIR).mkdir(parents=True, exist_ok=True, mode=0o755)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            (folder / "created").write_text(stamp + "\n")
        return self._volume(name)

    def all(self) -> list[Volume]:
        """Every volume, sorted by name."""
        if not self.dir.is_dir():
            return []
        return [self._volume(p.name) for p in sorted(self.dir.iterdir()) if self.exists(p.name)]

    def remove(self, name: str) -> None:
        """Delete volume ``name`` and its data (the caller checks that no container uses it)."""
        self.get(name)
        shutil.rmtree(self.dir / name)
