"""Who is asking: the ``Viewer`` of a request, from the web session cookie or from HTTP Basic credentials.

The web pages' session store registers itself under ``keys.SESSIONS``; the API also accepts
``Authorization: Basic`` with a password or personal access token (as ``docker login`` does). Without accounts
(``auth.mode: none``) everyone is anonymous and every repository is public.
"""

from __future__ import annotations

import base64
import binascii
from typing import Protocol

from aiohttp import web

from catalog import keys
from catalog.views import ANONYMOUS, Viewer

__all__ = ["SessionLookup", "viewer_of"]

VIEWER: web.RequestKey[Viewer] = web.RequestKey("catalog_viewer", Viewer)


class SessionLookup(Protocol):
    """The signed-in user of a request's session cookie, or None."""

    async def user(self, request: web.Request) -> str | None: ...


async def viewer_of(request: web.Request) -> Viewer:
    """The request's viewer (computed once per request): session first, then Basic credentials, else anonymous.
    Wrong Basic credentials are anonymous too (the API then simply shows public content)."""
    if VIEWER in request:
        return request[VIEWER]
    catalog = request.app[keys.CATALOG]
    user = await _session_user(request) or await _basic_user(request)
    viewer = await catalog.viewer(user) if user else ANONYMOUS
    request[VIEWER] = viewer
    return viewer


async def _session_user(request: web.Request) -> str | None:
    sessions = request.app.get(keys.SESSIONS)
    return await sessions.user(request) if sessions is not None else None


async def _basic_user(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        name, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return await request.app[keys.CATALOG].authenticate(name, secret)
