"""Sign-in sessions of the web pages: a signed cookie, no server-side table.

The cookie ``dockyard_session`` carries ``base64url(JSON {"u": user, "e": expiry, "n": nonce, "r": read-only})``,
a dot and ``base64url(MAC)``,
where MAC is HMAC-SHA256 under a per-registry secret. The secret lives in ``<state_dir>/catalog-session.key``
(32 random bytes, created with mode 0600 on first use); when that directory can't be written the secret is kept in
memory only, and sessions end with the process. A session lasts 12 hours. Its random nonce is what the CSRF tokens
of the signed-in forms are derived from (``catalog.web.csrf``), and what sign-out revokes: this process remembers
revoked nonces until they would have expired anyway (another replica does not; the cookie is cleared in the browser
as well). The cookie is HttpOnly, SameSite=Lax, Path=/, and Secure when the request came over TLS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

__all__ = ["COOKIE", "LIFETIME", "Session", "SessionStore", "load_secret"]

log = logging.getLogger(__name__)

COOKIE = "dockyard_session"
LIFETIME = 12 * 3600
KEY_FILE = "catalog-session.key"
KEY_BYTES = 32
MAX_COOKIE = 4096


@dataclass(frozen=True)
class Session:
    """A valid (signed, unexpired, not revoked) session: ``expires`` is a Unix time in seconds; ``read_only`` when
    the user signed in with a read-only personal access token (then the pages change nothing for them)."""

    user: str
    expires: int
    nonce: str
    read_only: bool = False


def load_secret(state_dir: Path | None) -> bytes:
    """The registry's session secret from ``state_dir`` (created 0600 if missing), or a fresh in-memory one when
    ``state_dir`` is None or not writable. A damaged key file (wrong length) is an error, not silently replaced."""
    if state_dir is None:
        return secrets.token_bytes(KEY_BYTES)
    path = state_dir / KEY_FILE
    try:
        return _read_or_create(path)
    except OSError as exc:  # not writable (read-only file system, permissions): sessions live in memory
        log.warning("session key %s not usable (%s): sign-in sessions end when the process stops", path, exc)
        return secrets.token_bytes(KEY_BYTES)


def _read_or_create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise ValueError(f"{path} holds {len(key)} bytes, expected {KEY_BYTES}") from None
        return key
    key = secrets.token_bytes(KEY_BYTES)
    with os.fdopen(fd, "wb") as out:  # two processes racing: the loser reads the winner's key next start
        out.write(key)
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SessionStore:
    """Issues, reads and revokes session cookies; implements ``catalog.viewer.SessionLookup``."""

    secret: bytes
    lifetime: int = LIFETIME
    clock: Callable[[], float] = time.time
    _revoked: dict[str, int] = field(default_factory=dict, repr=False)

    def mac(self, purpose: str, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` under the secret, separated by ``purpose`` (so a session MAC is never a valid
        CSRF token and the other way round)."""
        return hmac.new(self.secret, purpose.encode() + b"\0" + data, hashlib.sha256).digest()

    def issue(self, user: str, read_only: bool = False) -> tuple[str, Session]:
        """A new session for ``user`` (a fresh nonce) and its cookie value."""
        session = Session(user, int(self.clock()) + self.lifetime, secrets.token_urlsafe(18), read_only)
        fields = {"u": session.user, "e": session.expires, "n": session.nonce, "r": int(read_only)}
        body = json.dumps(fields, separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self.mac('session', body))}", session

    def decode(self, value: str) -> Session | None:
        """The session a cookie value carries, or None when it is malformed, forged, expired or revoked."""
        body = self._verified_body(value)
        if body is None:
            return None
        try:
            data = json.loads(body)
            session = Session(str(data["u"]), int(data["e"]), str(data["n"]), bool(data["r"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires <= self.clock() or session.nonce in self._revoked:
            return None
        return session

    def _verified_body(self, value: str) -> bytes | None:
        if len(value) > MAX_COOKIE or value.count(".") != 1:
            return None
        encoded, _, mac = value.partition(".")
        try:
            body, given = _unb64(encoded), _unb64(mac)
        except (binascii.Error, ValueError):
            return None
        return body if hmac.compare_digest(given, self.mac("session", body)) else None

    def read(self, request: web.Request) -> Session | None:
        """The request's valid session, or None."""
        value = request.cookies.get(COOKIE)
        return self.decode(value) if value else None

    def revoke(self, session: Session) -> None:
        """Refuse ``session`` from now on in this process (sign-out); forgets revocations that have expired."""
        now = self.clock()
        self._revoked = {nonce: exp for nonce, exp in self._revoked.items() if exp > now}
        self._revoked[session.nonce] = session.expires

    def set_cookie(self, response: web.StreamResponse, request: web.Request, value: str) -> None:
        """Put the session cookie on ``response`` (Secure when ``request`` came over TLS)."""
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.lifetime,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=request.secure,
        )

    @staticmethod
    def clear_cookie(response: web.StreamResponse, request: web.Request) -> None:
        """Tell the browser to drop the session cookie."""
        response.del_cookie(COOKIE, path="/", httponly=True, samesite="Lax", secure=request.secure)
