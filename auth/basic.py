"""HTTP Basic credentials, parsed once for every caller (the token service, the account API, the catalog)."""

from __future__ import annotations

import base64
import binascii

__all__ = ["MalformedBasic", "parse_basic"]


class MalformedBasic(ValueError):
    """An ``Authorization: Basic`` header whose value is not base64 of UTF-8 ``name:secret``."""


def parse_basic(header: str) -> tuple[str, str] | None:
    """``(name, secret)`` of an ``Authorization`` header value; None when it is not Basic at all. Raises
    :class:`MalformedBasic` when it is Basic but unreadable (callers decide: 401, or simply anonymous)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedBasic("malformed Basic credentials") from None
    if not sep:
        raise MalformedBasic("malformed Basic credentials")
    return name, secret
