"""Checking the sign-in form's credentials: the same accounts, the same failed-login limits and the same
read-only personal access tokens as ``docker login`` (``auth.service``), so the form is no side door for guessing.

Before checking, a client or account over the failure limit is refused (:class:`TooManyAttempts`, 429) without
looking at the password; each failure is answered after the limiter's growing delay; a success clears the
account's failures. Unknown users and wrong passwords are the same failure (None).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from catalog import keys
from catalog.errors import CatalogError

__all__ = ["SignIn", "TooManyAttempts", "check_credentials"]


class TooManyAttempts(CatalogError):
    """Too many failed sign-ins from this client or for this account; ``retry_after`` in seconds."""

    status = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__("Too many failed sign-ins. Wait a few minutes and try again.")
        self.retry_after = max(1, round(retry_after))


@dataclass(frozen=True)
class SignIn:
    """Who signed in; ``read_only`` when the secret was a read-only personal access token."""

    user: str
    read_only: bool


async def check_credentials(request: web.Request, name: str, secret: str) -> SignIn | None:
    """The account ``secret`` belongs to (password or personal access token), None when wrong or without
    accounts. Raises :class:`TooManyAttempts` over the failure limit."""
    accounts = request.app[keys.CATALOG].accounts
    if accounts is None:
        return None
    from auth.guard import GUARD  # token mode only: the guard exists whenever accounts do

    limiter, client = request.app[GUARD].limiter, request.remote or "unknown"
    wait = limiter.retry_after(client, name)
    if wait is not None:
        raise TooManyAttempts(wait)
    found = await accounts.authenticate(name, secret)
    if found is None:
        await asyncio.sleep(limiter.failed(client, name))
        return None
    limiter.succeeded(name)
    return SignIn(found.user.name, found.read_only)
