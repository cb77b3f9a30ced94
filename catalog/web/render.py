"""Rendering pages: the Jinja2 environment (autoescape on, strict undefined), its filters, the context every page
shares (viewer, CSRF token, host), the error pages and the middleware that turns failures into them.

Every page answer carries a Content-Security-Policy that allows only this site's own styles and scripts (no
inline script, nothing external but ``https`` images that descriptions may show; style attributes only because
sanitized descriptions keep ``text-align`` on table cells), ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: same-origin`` and ``Cache-Control: no-cache`` with ``Vary: Cookie`` (pages differ by who is
signed in).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from auth.database import is_unavailable
from catalog.errors import CatalogError
from catalog.viewer import viewer_of
from catalog.views import ANONYMOUS
from catalog.web import csrf
from catalog.web.sessions import SessionStore
from registry import keys as registry_keys
from registry.errors import RETRY_AFTER
from registry.proxies import base_url

__all__ = [
    "JINJA",
    "PAGE_RESOURCES",
    "STORE",
    "error_page",
    "is_page",
    "page_errors",
    "public_host",
    "render",
    "setup_templates",
]

log = logging.getLogger(__name__)

JINJA: web.AppKey[jinja2.Environment] = web.AppKey("catalog_web_jinja", jinja2.Environment)
STORE: web.AppKey[SessionStore] = web.AppKey("catalog_web_sessions", SessionStore)
PAGE_RESOURCES: web.AppKey[set[web.AbstractResource]] = web.AppKey("catalog_web_resources", set)
NOT_PAGES = ("/v2", "/api/", "/auth/", "/healthz")  # unmatched paths there keep the JSON errors of their APIs
CSP = (
    "default-src 'none'; style-src 'self'; style-src-attr 'unsafe-inline'; script-src 'self'; "
    "img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
TITLES = {
    400: "Bad request",
    401: "Sign-in failed",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    429: "Too many attempts",
    503: "Temporarily unavailable",
}
UNAVAILABLE = "The registry's database can't be reached right now. Try again in a few seconds."


# -- filters ----------------------------------------------------------------------------------------------------


def human_size(size: int | None) -> str:
    """Bytes as ``532 B``, ``1.4 KB``, ``12.3 MB`` (powers of 1000, as Docker Hub shows them); None: ``—``."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def short_digest(digest: str) -> str:
    """``sha256:0123456789ab…`` → ``0123456789ab`` (the first 12 hex digits)."""
    return digest.partition(":")[2][:12] or digest[:12]


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """A rough age: ``just now``, ``5 minutes ago``, ``3 days ago``; None: ``never``."""
    if moment is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    for unit, length in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600)):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    minutes = seconds // 60
    return "just now" if minutes < 1 else f"{minutes} minute{'s' if minutes > 1 else ''} ago"


def iso_time(moment: datetime | None) -> str:
    """Machine-readable time for ``<time datetime>`` (empty for None)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else ""


def url_path(path: str) -> str:
    """Percent-encode a path for a URL, keeping the slashes (file paths may hold any character)."""
    return quote(path, safe="/")


def with_query(path: str, params: Mapping[str, object] | None = None, **more: object) -> str:
    """``path`` with a query string of ``params`` and ``more``, leaving out None and empty values."""
    merged = {**(params or {}), **more}
    query = urlencode({key: str(value) for key, value in merged.items() if value is not None and value != ""})
    return f"{path}?{query}" if query else path


def setup_templates(app: web.Application) -> jinja2.Environment:
    """The package's templates with autoescaping and the filters above, registered under :data:`JINJA`."""
    env = aiohttp_jinja2.setup(
        app,
        app_key=JINJA,
        loader=jinja2.PackageLoader("catalog.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
    )
    env.filters.update(size=human_size, short=short_digest, ago=ago, iso=iso_time, urlpath=url_path)
    env.globals.update(with_query=with_query)
    return env


# -- rendering --------------------------------------------------------------------------------------------------


def public_host(request: web.Request) -> str:
    """The registry host for pull commands: that of ``registry.proxies.base_url`` (the configured ``auth.public_url``,
    else the request's own, forwarded by a trusted proxy)."""
    return urlsplit(base_url(request)).netloc


def sign_in_enabled(request: web.Request) -> bool:
    """Accounts exist only in token mode; without them every page is public and there is nothing to sign in to."""
    return request.app[registry_keys.SETTINGS].auth.mode == "token"


async def _base_context(request: web.Request) -> dict[str, Any]:
    return {**_offline_context(request), "viewer": await viewer_of(request)}


def _offline_context(request: web.Request) -> dict[str, Any]:
    """The shared context without the database: the viewer is anonymous (the header still shows the session)."""
    store = request.app[STORE]
    session = store.read(request)
    return {
        "viewer": ANONYMOUS,
        "session_user": session.user if session else None,
        "can_write": session is not None and not session.read_only,
        "csrf_token": csrf.session_token(store, session) if session else "",
        "sign_in_enabled": sign_in_enabled(request),
        "host": public_host(request),
        "login_next": request.path_qs if request.path != "/login" else "/",
    }


def _secure_headers(response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Vary"] = "Cookie"


async def render(
    request: web.Request, template: str, context: Mapping[str, Any], status: int = 200, *, offline: bool = False
) -> web.Response:
    """Render ``template`` with the shared context plus ``context`` into an HTML response (``offline``: without
    reading the database, for the page saying it is unavailable)."""
    shared = _offline_context(request) if offline else await _base_context(request)
    full = {**shared, **context}
    text = aiohttp_jinja2.render_string(template, request, full, app_key=JINJA)
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    _secure_headers(response)
    return response


async def error_page(request: web.Request, status: int, message: str, *, offline: bool = False) -> web.Response:
    """The readable error page for ``status`` (``offline``: see :func:`render`). Rendering it must not fail again:
    without the shared context it shows the message alone."""
    title = TITLES.get(status, "Something went wrong")
    context = {"title": title, "message": message, "status": status}
    try:
        return await render(request, "error.html", context, status, offline=offline)
    except Exception:
        log.exception("error page for %s failed", request.path)
        response = web.Response(text=f"{status} {title}: {message}\n", status=status, content_type="text/plain")
        _secure_headers(response)
        return response


# -- errors -----------------------------------------------------------------------------------------------------


def is_page(request: web.Request) -> bool:
    """True for the page routes, and for unmatched paths outside the APIs (their errors are pages too)."""
    resource = request.match_info.route.resource
    if resource is None:  # nothing matched: a page unless the path belongs to an API
        return not request.path.startswith(NOT_PAGES)
    return resource in request.app[PAGE_RESOURCES]


@web.middleware
async def page_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """On page routes (and unmatched paths outside the APIs): catalog errors, CSRF failures and HTTP errors become
    error pages with their status; a database that can't be reached a 503 page with ``Retry-After`` (one log line);
    anything else unexpected is logged and becomes a 500 page, never a traceback."""
    if not is_page(request):
        return await handler(request)
    try:
        return await handler(request)
    except (CatalogError, csrf.CsrfError) as exc:
        return await error_page(request, exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return await error_page(request, exc.status, exc.reason)
    except Exception as exc:
        if is_unavailable(exc):
            return await unavailable_page(request, exc)
        log.exception("page %s %s failed", request.method, request.path)
        return await error_page(request, 500, "The page could not be shown because of an internal error.")


async def unavailable_page(request: web.Request, exc: Exception) -> web.Response:
    """503 with ``Retry-After``: the database is down (``auth.database.is_unavailable``); rendered without it."""
    log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
    response = await error_page(request, 503, UNAVAILABLE, offline=True)
    response.headers["Retry-After"] = RETRY_AFTER
    return response
