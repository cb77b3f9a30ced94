"""Credentials: bcrypt password hashes, htpasswd files, and the secrets of personal access tokens.

Passwords are hashed with bcrypt (salted, slow, cost ``rounds``). Hashes made elsewhere are accepted in all three
common bcrypt spellings: ``$2b$`` (what we write), ``$2a$`` and ``$2y$`` (what Apache's ``htpasswd -B`` writes);
for passwords of ASCII or UTF-8 text they are the same algorithm. bcrypt only looks at the first 72 bytes of a
password; rather than truncating silently, ``hash_password`` refuses longer passwords and ``verify_password``
never accepts one.

Personal access tokens are random, so a fast hash is enough for them: the database keeps the SHA-256 of the
secret ``dyp_<id>_<random>``, where ``<id>`` is the token's public id (hex) and ``<random>`` 32 random bytes,
URL-safe base64.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import bcrypt

__all__ = [
    "MAX_PASSWORD_BYTES",
    "HtpasswdError",
    "hash_password",
    "is_bcrypt_hash",
    "new_token_secret",
    "parse_htpasswd",
    "parse_token_secret",
    "token_digest",
    "token_matches",
    "verify_password",
]

MAX_PASSWORD_BYTES = 72
"""bcrypt ignores everything after this many bytes of the UTF-8 encoded password."""

# $2a$, $2b$ or $2y$, a two-digit cost, then 22 characters of salt and 31 of hash in bcrypt's base64 alphabet.
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_TOKEN_PREFIX = "dyp_"
_TOKEN = re.compile(r"dyp_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")


class HtpasswdError(ValueError):
    """An htpasswd file that can't be imported; the message is one line naming the offending line number."""


def hash_password(password: str, rounds: int = 12) -> str:
    """A new salted bcrypt hash (``$2b$``) of ``password`` with cost ``rounds`` (4..31).

    Raises ``ValueError`` when the password is longer than 72 bytes in UTF-8 (bcrypt would ignore the rest).
    Slow on purpose (about 0.25 s at cost 12): call it through ``asyncio.to_thread`` from async code.
    """
    encoded = password.encode()
    if len(encoded) > MAX_PASSWORD_BYTES:
        raise ValueError(f"password is longer than {MAX_PASSWORD_BYTES} bytes")
    return bcrypt.hashpw(encoded, bcrypt.gensalt(rounds)).decode("ascii")


def is_bcrypt_hash(hashed: str) -> bool:
    """Whether ``hashed`` is a well-formed ``$2a$``/``$2b$``/``$2y$`` bcrypt hash."""
    return _BCRYPT.fullmatch(hashed) is not None


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches the bcrypt hash ``hashed``.

    False (never an exception) for a malformed hash, a non-bcrypt hash or a password over 72 bytes. Slow like
    ``hash_password``.
    """
    encoded = password.encode()
    if len(encoded) > MAX_PASSWORD_BYTES or not is_bcrypt_hash(hashed):
        return False
    # $2y$ (PHP, Apache) and $2a$ name the same algorithm as $2b$ for every password bcrypt accepts here.
    normalized = "$2b$" + hashed[4:]
    try:
        return bcrypt.checkpw(encoded, normalized.encode("ascii"))
    except ValueError:
        return False


def parse_htpasswd(text: str) -> list[tuple[str, str]]:
    """The ``(name, hash)`` entries of an htpasswd file whose hashes are all bcrypt (``htpasswd -B``).

    Blank lines and ``#`` comments are skipped; line endings may be LF or CRLF. Raises ``HtpasswdError`` naming
    the line number for a line without ``name:hash``, a hash that is not bcrypt (MD5 ``$apr1$``, SHA-1, crypt,
    plain text) and a name that appears twice. Names are returned as written; the caller validates them.
    """
    entries: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, hashed = _parse_htpasswd_line(line, number)
        if name in seen:
            raise HtpasswdError(f"line {number}: user {name!r} appears more than once")
        seen.add(name)
        entries.append((name, hashed))
    return entries


def _parse_htpasswd_line(line: str, number: int) -> tuple[str, str]:
    name, sep, hashed = line.partition(":")
    if not sep or not name or not hashed:
        raise HtpasswdError(f"line {number}: expected 'name:hash'")
    if not is_bcrypt_hash(hashed):
        raise HtpasswdError(f"line {number}: the hash of user {name!r} is not bcrypt (make it with htpasswd -B)")
    return name, hashed


def new_token_secret() -> tuple[str, str]:
    """A fresh personal access token: ``(public_id, secret)``; the secret is ``dyp_<public_id>_<random>``."""
    public_id = secrets.token_hex(8)
    return public_id, f"{_TOKEN_PREFIX}{public_id}_{secrets.token_urlsafe(32)}"


def parse_token_secret(secret: str) -> str | None:
    """The public id inside ``secret`` if it has the shape of a personal access token, else None."""
    match = _TOKEN.fullmatch(secret)
    return match.group(1) if match else None


def token_digest(secret: str) -> str:
    """What the database stores for a token secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def token_matches(secret: str, digest: str) -> bool:
    """Whether ``secret`` hashes to ``digest``, compared in constant time."""
    return hmac.compare_digest(token_digest(secret), digest)
