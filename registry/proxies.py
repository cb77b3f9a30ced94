"""Requests that came through a trusted reverse proxy (``trusted_proxies``) take their scheme, host and client
address from the proxy's ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``X-Forwarded-For`` headers; from any
other peer those headers are ignored (a client could otherwise make the registry send others' clients to an
address of its choosing). ``base_url(request)`` is the URL clients reach the registry at: ``auth.public_url``
when configured, else the (forwarded) scheme and host of the request.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from registry import keys

__all__ = ["base_url", "forwarded_middleware"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")


def _trusted(remote: str | None, networks: Sequence[Network]) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _first(value: str | None) -> str | None:
    """The client-side (first) value of a comma-separated forwarded header, stripped; None when empty."""
    first = (value or "").split(",")[0].strip()
    return first or None


def _forwarded(request: web.Request) -> dict[str, str]:
    """What ``request.clone`` should change, from the forwarded headers (malformed values are ignored)."""
    changes: dict[str, str] = {}
    proto = (_first(request.headers.get("X-Forwarded-Proto")) or "").lower()
    if proto in ("http", "https"):
        changes["scheme"] = proto
    host = _first(request.headers.get("X-Forwarded-Host"))
    if host and len(host) <= 255 and set(host) <= _HOST_CHARS:
        changes["host"] = host
    client = _first(request.headers.get("X-Forwarded-For"))
    if client:
        with contextlib.suppress(ValueError):
            changes["remote"] = str(ipaddress.ip_address(client))
    return changes


def forwarded_middleware(networks: Sequence[Network]) -> Middleware:
    """A middleware applying the forwarded headers of requests whose peer is in ``networks``."""

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _trusted(request.remote, networks) and (changes := _forwarded(request)):
            request = request.clone(**changes)  # type: ignore[arg-type]
        return await handler(request)

    return forwarded


def base_url(request: web.Request) -> str:
    """``auth.public_url`` if set, else ``<scheme>://<host>`` of the (forwarded) request; no trailing slash."""
    configured = request.app[keys.SETTINGS].auth.public_url
    return configured or f"{request.scheme}://{request.host}"
