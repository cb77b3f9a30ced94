"""The same-origin check: changes made with the session cookie must come from this registry's own pages.

Defence in depth behind the CSRF tokens (``catalog.web.csrf``) and the cookie's ``SameSite=Lax``: a request with
an unsafe method (POST, PUT, PATCH, DELETE) that carries a valid session cookie, to a page or to the catalog API
(the routes the cookie signs in to), is refused with 403 unless its ``Origin`` header, or when there is none its
``Referer``, names the origin clients reach the registry at (``registry.proxies.base_url``: ``auth.public_url``,
else the request's own, forwarded, scheme and host). Origins compare by scheme, host (case-insensitive) and port
(the scheme's default when absent); ``Origin: null`` and unparsable values never match. A request with neither
header is let through (non-browser clients send none; the CSRF token still applies), as is every request without
a session cookie (HTTP Basic and bearer tokens are not sent by browsers on their own).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from catalog.api import BASE, error_response
from catalog.errors import Forbidden
from catalog.web.render import STORE, is_page
from registry.proxies import base_url

__all__ = ["CROSS_ORIGIN", "origin_of", "same_origin"]

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
CROSS_ORIGIN = "This change was sent from another site and was refused. Make it from the registry's own pages."

Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) of an ``http``/``https`` URL or ``Origin`` value; None when it has none (``null``,
    another scheme, no host, a malformed port)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname, port or DEFAULT_PORTS[scheme]


def cross_origin(request: web.Request) -> bool:
    """True when the request's ``Origin`` (else ``Referer``) names another origin than the registry's own;
    False when it matches or neither header is sent."""
    claimed = request.headers.get("Origin")
    if claimed is None:
        claimed = request.headers.get("Referer")
    if claimed is None:
        return False
    own = origin_of(base_url(request))
    return own is None or origin_of(claimed) != own


def _guarded(request: web.Request) -> bool:
    """An unsafe request signed in by the session cookie, to a page or the catalog API."""
    if request.method not in UNSAFE:
        return False
    if not (is_page(request) or request.path.startswith(f"{BASE}/")):
        return False
    return request.app[STORE].read(request) is not None


@web.middleware
async def same_origin(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Refuse cross-origin changes made with the session cookie: a 403 page (raised for ``page_errors``, which must
    wrap this middleware) or the API's JSON 403 ``FORBIDDEN``."""
    if _guarded(request) and cross_origin(request):
        refused = Forbidden(CROSS_ORIGIN)
        if is_page(request):
            raise refused
        return error_response(refused)
    return await handler(request)
