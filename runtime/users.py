"""Resolve docker's ``User`` string inside a container's root filesystem, as runc and docker do.

The forms are ``""`` (root), ``name``, ``uid``, ``name:group``, ``uid:gid`` (and the mixed
``name:gid`` / ``uid:group``). Names are looked up in the *container's* ``/etc/passwd`` and
``/etc/group``, read through :func:`secure_join` so a symlink in the image can never make dockyard
read the host's files. The rules follow runc's ``GetExecUser`` (which docker uses):

- a user matches a passwd entry by name, or, when numeric, by uid; a numeric user needs no entry
  (gid 0 and HOME ``/`` then, unless an entry supplies them);
- an explicit group replaces the passwd gid and suppresses supplementary groups; without one, the
  supplementary groups are every group whose member list names the user (the primary one included);
- an unknown *name* (user or group) is an error with a one-line message; out-of-range ids too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_ID = 2**31 - 1  # the kernel's uid_t/gid_t limit that runc accepts
MAX_SYMLINKS = 40  # like the kernel's ELOOP limit
MAX_DB_SIZE = 16 * 1024 * 1024  # a passwd/group file larger than this is refused


class UserError(ValueError):
    """A ``User`` string that cannot be resolved in the container; ``str()`` is a one-line message."""


@dataclass(frozen=True)
class PasswdEntry:
    """One line of ``/etc/passwd``."""

    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    """One line of ``/etc/group``."""

    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class ResolvedUser:
    """The process identity for the runtime spec: ``uid``, ``gid``, supplementary gids and HOME."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str
    name: str | None = None


def secure_join(root: Path, path: str) -> Path:
    """``path`` resolved inside ``root`` as if ``root`` were ``/``: symlinks are followed but never out.

    Absolute symlink targets restart at ``root``; ``..`` stops at ``root``. Missing components are
    kept as they are (the result may not exist). More than :data:`MAX_SYMLINKS` links → ``UserError``.
    """
    pending = list(PurePosixPath("/", path).parts[1:])
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if not candidate.is_symlink():
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise UserError(f"too many levels of symbolic links resolving {path} in the container")
        target = PurePosixPath(os.readlink(candidate))
        if target.is_absolute():
            resolved = []
        pending = [p for p in target.parts if p != "/"] + pending
    return root.joinpath(*resolved)


def _read_db(rootfs: Path, path: str) -> str:
    """The text of a regular file at ``path`` inside ``rootfs``; ``""`` when it is missing."""
    target = secure_join(rootfs, path)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return ""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_DB_SIZE:
            raise UserError(f"{path} in the container is not a regular file of reasonable size")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(MAX_DB_SIZE).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def _fields(text: str, minimum: int) -> Iterator[list[str]]:
    """Colon-separated fields of each meaningful line (comments, blanks and NIS ``+``/``-`` skipped)."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "+", "-")):
            continue
        fields = line.split(":")
        if len(fields) >= minimum:
            yield fields


def _parse_int(text: str) -> int | None:
    """A non-negative decimal id, or None when ``text`` is not one."""
    return int(text) if text.isascii() and text.isdigit() else None


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Entries of a passwd file; lines with non-numeric ids are skipped, as libc does."""
    entries = []
    for fields in _fields(text, 4):
        uid, gid = _parse_int(fields[2]), _parse_int(fields[3])
        if uid is None or gid is None:
            continue
        home = fields[5] if len(fields) > 5 else ""
        entries.append(PasswdEntry(fields[0], uid, gid, home))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """Entries of a group file; lines with a non-numeric gid are skipped."""
    entries = []
    for fields in _fields(text, 3):
        gid = _parse_int(fields[2])
        if gid is None:
            continue
        members = tuple(m for m in (fields[3].split(",") if len(fields) > 3 else []) if m)
        entries.append(GroupEntry(fields[0], gid, members))
    return entries


def _checked_id(value: int, kind: str, spec: str) -> int:
    if value > MAX_ID:
        raise UserError(f"{kind} {spec} is out of range (at most {MAX_ID})")
    return value


def _find_user(entries: list[PasswdEntry], spec: str) -> PasswdEntry | None:
    """The first entry whose name is ``spec`` or, for a numeric ``spec``, whose uid matches."""
    number = _parse_int(spec)
    for entry in entries:
        if entry.name == spec or (number is not None and entry.uid == number):
            return entry
    return None


def _find_group(entries: list[GroupEntry], spec: str) -> GroupEntry | None:
    number = _parse_int(spec)
    for entry in entries:
        if entry.name == spec or (number is not None and entry.gid == number):
            return entry
    return None


def _resolve_uid(passwd: list[PasswdEntry], spec: str) -> tuple[int, int, str, str | None]:
    """(uid, gid, home, name) for the user part of a ``User`` string."""
    entry = _find_user(passwd, spec)
    if entry is not None:
        return entry.uid, entry.gid, entry.home or "/", entry.name
    number = _parse_int(spec)
    if number is None:
        raise UserError(f"unable to find user {spec}: no matching entries in passwd file")
    return _checked_id(number, "uid", spec), 0, "/", None


def _resolve_gid(groups: list[GroupEntry], spec: str) -> int:
    entry = _find_group(groups, spec)
    if entry is not None:
        return entry.gid
    number = _parse_int(spec)
    if number is None:
        raise UserError(f"unable to find group {spec}: no matching entries in group file")
    return _checked_id(number, "gid", spec)


def _supplementary(groups: list[GroupEntry], name: str | None) -> tuple[int, ...]:
    """Gids of the groups listing ``name`` as a member, in file order, without duplicates (as runc)."""
    if name is None:
        return ()
    gids: list[int] = []
    for entry in groups:
        if name in entry.members and entry.gid not in gids:
            gids.append(entry.gid)
    return tuple(gids)


def resolve_user(rootfs: Path, user: str) -> ResolvedUser:
    """Resolve docker's ``User`` string (see the module docstring) inside ``rootfs``.

    Raises :class:`UserError` for an unknown user or group name, an empty part (``"1000:"``) or an
    id above :data:`MAX_ID`. Only ``/etc/passwd`` and ``/etc/group`` of ``rootfs`` are read.
    """
    user_part, sep, group_part = (user or "0").partition(":")
    if not user_part or (sep and not group_part):
        raise UserError(f"invalid user {user!r}: expected user[:group]")
    passwd = parse_passwd(_read_db(rootfs, "/etc/passwd"))
    uid, gid, home, name = _resolve_uid(passwd, user_part)
    groups = parse_group(_read_db(rootfs, "/etc/group"))
    if sep:
        return ResolvedUser(uid, _resolve_gid(groups, group_part), (), home, name)
    return ResolvedUser(uid, gid, _supplementary(groups, name), home, name)
