"""What the registry asks of an access-control layer (token mode plugs one in; the open registry has none).

Handlers only need two answers beyond the per-route check the layer's middleware already made: which
repositories of a listing the caller may see, and whether it may read the source of a cross-repository
mount.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web


class AccessControl(Protocol):
    """Implemented by :class:`auth.guard.Guard`."""

    def may_pull(self, request: web.Request, name: str) -> bool:
        """True if the (already checked) request may read repository ``name``."""
        ...

    async def visible(self, request: web.Request, names: list[str]) -> list[str]:
        """The repositories of ``names`` the caller may pull, in the same order."""
        ...
