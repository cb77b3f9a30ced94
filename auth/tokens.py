"""Registry bearer tokens: ES256 JWTs as the Docker registry token protocol specifies, and refresh tokens.

An access token's header is ``{"typ": "JWT", "alg": "ES256", "kid": <RFC 7638 thumbprint>, "x5c": [<cert>]}``;
its claims are ``iss``, ``sub`` (``""`` when anonymous), ``aud`` (the service, a string), ``exp``, ``nbf``, ``iat``
(integer seconds), ``jti`` and ``access`` (a list of ``{"type", "name", "actions"}``). The ``x5c`` chain lets a CNCF
Distribution whose ``rootcertbundle`` holds dockyard's certificate verify the token without talking to dockyard.

A refresh token (``refresh_token`` of the OAuth2 flow docker uses after ``docker login``) carries ``"typ":
"refresh"`` and no ``access`` claim, and its header has no ``x5c``: only dockyard verifies it, and a Distribution
that trusts dockyard's certificate cannot even find its key. Each verifier accepts only its own kind.

Verification never trusts the token to name its key or algorithm: the algorithm must be ES256 and the key is looked
up by ``kid`` among the key ring's verification keys (the current key and those retired within the overlap).
"""

from __future__ import annotations

import datetime
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from auth.keys import KeyRing, SigningKey
from auth.scopes import ResourceAccess, ScopeError

__all__ = ["ALGORITHM", "Claims", "IssuedToken", "TokenError", "TokenIssuer"]

ALGORITHM = "ES256"
MAX_TOKEN_LENGTH = 65536
REFRESH_TYPE = "refresh"
_ACCESS_REQUIRED = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access")


class TokenError(Exception):
    """Why a token was rejected, in one line; the message never contains the token itself."""


@dataclass(frozen=True)
class Claims:
    """The verified claims of an access token; ``subject`` is ``""`` for an anonymous caller."""

    issuer: str
    subject: str
    audience: str
    expires_at: int
    not_before: int
    issued_at: int
    jwt_id: str
    access: list[ResourceAccess]


@dataclass(frozen=True)
class IssuedToken:
    """A freshly signed access token with what the token endpoint answers next to it."""

    token: str
    expires_in: int
    issued_at: datetime.datetime


class TokenIssuer:
    """Signs and verifies the tokens of one issuer (dockyard's token service).

    ``lifetime`` and ``refresh_lifetime`` are in seconds; ``leeway`` is the clock skew tolerated on ``exp``,
    ``nbf`` and ``iat``; ``clock`` gives the current time in seconds since the epoch (injectable for tests).
    ``keys`` may be replaced by a rotated ring at any time.
    """

    def __init__(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        lifetime: int = 300,
        refresh_lifetime: int = 30 * 86400,
        leeway: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer:
            raise ValueError("the token issuer must not be empty")
        self.keys = keys
        self.issuer = issuer
        self.lifetime = lifetime
        self.refresh_lifetime = refresh_lifetime
        self.leeway = leeway
        self.clock = clock

    def issue(self, subject: str, audience: str, access: list[ResourceAccess]) -> IssuedToken:
        """An access token for ``subject`` (``""`` when anonymous) granting ``access`` on ``audience``."""
        now = int(self.clock())
        claims = {**self._registered(subject, audience, now, self.lifetime), "access": [a.as_claim() for a in access]}
        key = self.keys.current
        token = _sign(claims, key, {"kid": key.kid, "x5c": key.x5c})
        return IssuedToken(token, self.lifetime, datetime.datetime.fromtimestamp(now, datetime.UTC))

    def issue_refresh(self, subject: str, audience: str) -> str:
        """A long-lived refresh token for the signed-in ``subject``; it grants nothing by itself."""
        if not subject:
            raise ValueError("a refresh token needs a subject")
        now = int(self.clock())
        claims = {**self._registered(subject, audience, now, self.refresh_lifetime), "typ": REFRESH_TYPE}
        return _sign(claims, self.keys.current, {"kid": self.keys.current.kid})

    def verify(self, token: str, audience: str) -> Claims:
        """The claims of a valid access token for ``audience``; TokenError for anything else (refresh tokens
        included)."""
        payload = self._verified_payload(token)
        if "typ" in payload:
            raise TokenError("not an access token")
        self._check_registered(payload, audience, _ACCESS_REQUIRED)
        return Claims(
            issuer=_string(payload, "iss"),
            subject=_string(payload, "sub"),
            audience=_string(payload, "aud"),
            expires_at=_integer(payload, "exp"),
            not_before=_integer(payload, "nbf"),
            issued_at=_integer(payload, "iat"),
            jwt_id=_string(payload, "jti"),
            access=_access(payload["access"]),
        )

    def verify_refresh(self, token: str, audience: str) -> str:
        """The subject of a valid refresh token for ``audience``; TokenError for anything else (access tokens
        included)."""
        payload = self._verified_payload(token)
        if payload.get("typ") != REFRESH_TYPE or "access" in payload:
            raise TokenError("not a refresh token")
        self._check_registered(payload, audience, _ACCESS_REQUIRED[:-1])
        subject = _string(payload, "sub")
        if not subject:
            raise TokenError("refresh token without a subject")
        return subject

    def _registered(self, subject: str, audience: str, now: int, lifetime: int) -> dict[str, Any]:
        return {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "exp": now + lifetime,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(18),
        }

    def _verified_payload(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` once its header is acceptable and its signature verifies with a key of the ring."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("malformed token")
        key = self._signing_key(_header(token))
        try:
            signed = jwt.PyJWS().decode_complete(token, key.public_key, algorithms=[ALGORITHM])
        except jwt.InvalidSignatureError:
            raise TokenError("bad token signature") from None
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        return _payload(signed["payload"])

    def _signing_key(self, header: Mapping[str, Any]) -> SigningKey:
        """The verification key the header's ``kid`` names, after checking the algorithm."""
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"token algorithm must be {ALGORITHM}")
        if "crit" in header:
            raise TokenError("token has critical header extensions")
        kid = header.get("kid")
        for key in self.keys.verification_keys(self.clock()):
            if kid == key.kid:
                return key
        raise TokenError("token signed by an unknown key")

    def _check_registered(self, payload: Mapping[str, Any], audience: str, required: tuple[str, ...]) -> None:
        """Check presence, types, issuer, audience and the validity window of the registered claims."""
        for name in required:
            if name not in payload:
                raise TokenError(f"token claim {name!r} is missing")
        if _string(payload, "iss") != self.issuer:
            raise TokenError("token from another issuer")
        if _string(payload, "aud") != audience:
            raise TokenError("token for another audience")
        if not _string(payload, "jti"):
            raise TokenError("token claim 'jti' is empty")
        _string(payload, "sub")  # only its type: "" is the anonymous subject
        self._check_times(_integer(payload, "exp"), _integer(payload, "nbf"), _integer(payload, "iat"))

    def _check_times(self, expires_at: int, not_before: int, issued_at: int) -> None:
        """RFC 7519 4.1.4-4.1.6 with ``leeway`` seconds of tolerated clock skew."""
        now = self.clock()
        if now - self.leeway >= expires_at:
            raise TokenError("token expired")
        if now + self.leeway < not_before:
            raise TokenError("token not yet valid")
        if now + self.leeway < issued_at:
            raise TokenError("token issued in the future")


def _sign(claims: dict[str, Any], key: SigningKey, headers: dict[str, Any]) -> str:
    """The compact JWS of ``claims``; the header gets ``typ: JWT`` and ``alg: ES256`` besides ``headers``."""
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"typ": "JWT", **headers})


def _header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenError("malformed token") from None
    return header


def _payload(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TokenError("malformed token claims") from None
    if not isinstance(payload, dict):
        raise TokenError("malformed token claims")
    return payload


def _string(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise TokenError(f"token claim {name!r} is not a string")
    return value


def _integer(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TokenError(f"token claim {name!r} is not an integer")
    return value


def _access(value: object) -> list[ResourceAccess]:
    """The ``access`` claim as ResourceAccess entries; TokenError unless it is a list of well-formed entries."""
    if not isinstance(value, list):
        raise TokenError("malformed access claim")
    try:
        return [ResourceAccess.from_claim(entry) for entry in value]
    except ScopeError:
        raise TokenError("malformed access claim") from None
