"""Checking credentials — the web sign-in form's and HTTP Basic on the catalog API's — with the same accounts, the
same failed-login limits and the same read-only personal access tokens as ``docker login`` (``auth.service``), so
neither is a side door for guessing.

Before checking, a client or account over the failure limit is refused (:class:`TooManyAttempts`, 429) without
looking at the password; each failure is answered after the limiter's growing delay; a success clears the
account's failures. Unknown users and wrong passwords are the same failure (None).
"""

from __future__ import annotations

from aiohttp import web

from auth.accounts import Authenticated
from auth.ratelimit import TooManyLogins
from catalog import keys
from catalog.errors import CatalogError

__all__ = ["TooManyAttempts", "check_credentials"]


class TooManyAttempts(CatalogError):
    """Too many failed sign-ins from this client or for this account; ``retry_after`` in seconds."""

    status = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__("Too many failed sign-ins. Wait a few minutes and try again.")
        self.retry_after = max(1, round(retry_after))


async def check_credentials(request: web.Request, name: str, secret: str) -> Authenticated | None:
    """Who ``secret`` (password or personal access token of ``name``) signs in (``read_only`` for a read-only
    token), None when wrong or without accounts. Raises :class:`TooManyAttempts` over the failure limit."""
    try:
        return await request.app[keys.CATALOG].sign_in(request.remote or "unknown", name, secret)
    except TooManyLogins as exc:
        raise TooManyAttempts(exc.retry_after) from None
