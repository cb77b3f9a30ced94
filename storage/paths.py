"""The one key grammar every driver accepts."""

from __future__ import annotations

import re

from storage.errors import InvalidPath

_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")
_KEY = re.compile(r"(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._-]+)+")  # the whole grammar below, in one match


def check_path(path: str, driver: str) -> str:
    """Return ``path`` if it is a valid key, else raise :class:`InvalidPath`.

    A valid key starts with ``/``, has no empty, ``.`` or ``..`` component and only ``[A-Za-z0-9._-]``
    characters. ``/`` alone (the root) is valid. No encoding tricks can pass: there is no decoding here.
    """
    if path == "/" or _KEY.fullmatch(path):
        return path
    if not path.startswith("/") or path.endswith("/"):
        raise InvalidPath(path, driver, "keys are absolute and have no trailing slash")
    for part in path[1:].split("/"):
        if part in ("", ".", "..") or not _COMPONENT.fullmatch(part):
            raise InvalidPath(path, driver, f"invalid key component {part!r}")
    raise AssertionError(f"{path!r} matches no rule")  # unreachable: _KEY is the rules above


def parent(path: str) -> str:
    """The parent key of ``path`` (``/`` for top-level keys)."""
    head = path.rsplit("/", 1)[0]
    return head or "/"
