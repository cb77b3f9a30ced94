"""Who is asking: the ``Viewer`` of a request, from the web session cookie or from HTTP Basic credentials.

The web pages' session store registers itself under ``keys.SESSIONS``; the API also accepts
``Authorization: Basic`` with a password or personal access token (as ``docker login`` does), checked with the
same failed-login limits (``catalog.signin``). A read-only token makes a read-only viewer, whichever way it came.
Without accounts (``auth.mode: none``) everyone is anonymous and every repository is public.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from auth.basic import MalformedBasic, parse_basic
from catalog import keys
from catalog.signin import check_credentials
from catalog.views import ANONYMOUS, Viewer

__all__ = ["SessionLookup", "SignedIn", "viewer_of"]

VIEWER: web.RequestKey[Viewer] = web.RequestKey("catalog_viewer", Viewer)


class SignedIn(Protocol):
    """A signed-in user: who, and whether by a read-only access token."""

    @property
    def user(self) -> str: ...

    @property
    def read_only(self) -> bool: ...


class SessionLookup(Protocol):
    """The valid session of a request's cookie, or None."""

    def read(self, request: web.Request) -> SignedIn | None: ...


async def viewer_of(request: web.Request) -> Viewer:
    """The request's viewer (computed once per request): session first, then Basic credentials, else anonymous.
    Wrong or malformed Basic credentials are anonymous too (the API then simply shows public content); too many
    failures are ``TooManyAttempts`` (429)."""
    if VIEWER in request:
        return request[VIEWER]
    sessions = request.app.get(keys.SESSIONS)
    session = sessions.read(request) if sessions is not None else None
    user, read_only = (session.user, session.read_only) if session else await _basic_user(request)
    viewer = await request.app[keys.CATALOG].viewer(user, read_only=read_only) if user else ANONYMOUS
    request[VIEWER] = viewer
    return viewer


async def _basic_user(request: web.Request) -> tuple[str | None, bool]:
    """(user, read_only) of the request's Basic credentials, or (None, False)."""
    try:
        credentials = parse_basic(request.headers.get("Authorization", ""))
    except MalformedBasic:
        return None, False
    found = await check_credentials(request, *credentials) if credentials else None
    return (found.user.name, found.read_only) if found else (None, False)
