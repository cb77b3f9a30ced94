"""CSRF protection for every form of the web pages.

Signed-in forms carry ``csrf_token`` = base64url(HMAC(secret, "csrf" ‖ session nonce)): it changes with every
sign-in and can't be made without the registry's secret. Anonymous forms (only sign-in) use a double-submit cookie:
``dockyard_csrf`` holds a random token (HttpOnly, SameSite=Strict) that the form must repeat; another site can
neither read that cookie nor set it for this host. Both checks compare in constant time. A missing or wrong token
raises :class:`CsrfError` (the pages answer 403 with a readable explanation).
"""

from __future__ import annotations

import base64
import hmac
import secrets

from aiohttp import web

from catalog.web.sessions import Session, SessionStore

__all__ = [
    "ANON_COOKIE",
    "FIELD",
    "CsrfError",
    "anonymous_token",
    "check_anonymous",
    "check_session",
    "session_token",
    "set_anonymous_cookie",
]

FIELD = "csrf_token"
ANON_COOKIE = "dockyard_csrf"
MAX_TOKEN = 200


class CsrfError(Exception):
    """The form's CSRF token is missing or wrong (403)."""

    status = 403


def session_token(store: SessionStore, session: Session) -> str:
    """The CSRF token of every form a signed-in user sees during ``session``."""
    mac = store.mac("csrf", session.nonce.encode())
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def check_session(store: SessionStore, session: Session | None, submitted: str | None) -> None:
    """Accept a signed-in form: there is a session and ``submitted`` is its token."""
    if session is None:
        raise CsrfError("You are not signed in (or your session expired). Sign in and try again.")
    _require_equal(session_token(store, session), submitted)


def anonymous_token(request: web.Request) -> tuple[str, bool]:
    """The double-submit token for an anonymous form, and whether it is new (then the caller must send it with
    :func:`set_anonymous_cookie`). An existing well-formed cookie is reused, so two open tabs both work."""
    current = request.cookies.get(ANON_COOKIE, "")
    if 20 <= len(current) <= MAX_TOKEN and current.replace("-", "").replace("_", "").isalnum():
        return current, False
    return secrets.token_urlsafe(24), True


def set_anonymous_cookie(response: web.StreamResponse, request: web.Request, token: str) -> None:
    """Send the double-submit cookie (Secure when the request came over TLS)."""
    response.set_cookie(ANON_COOKIE, token, path="/", httponly=True, samesite="Strict", secure=request.secure)


def check_anonymous(request: web.Request, submitted: str | None) -> None:
    """Accept an anonymous form: its token equals the double-submit cookie."""
    cookie = request.cookies.get(ANON_COOKIE)
    if not cookie:
        raise CsrfError("Your browser did not send the form's security cookie. Allow cookies and try again.")
    _require_equal(cookie, submitted)


def _require_equal(expected: str, submitted: str | None) -> None:
    if not submitted or len(submitted) > MAX_TOKEN:
        raise CsrfError("The form's security token is missing. Reload the page and try again.")
    if not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise CsrfError("The form's security token is wrong or expired. Reload the page and try again.")
