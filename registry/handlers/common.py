"""What every handler needs: typed access to the store and settings, validated path parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from registry import keys
from registry.access import AccessControl
from registry.config import Settings
from registry.errors import ErrorCode, RegistryError
from registry.reference import Digest, check_name, parse_digest
from registry.store import Store


def store(request: web.Request) -> Store:
    return request.app[keys.STORE]


def settings(request: web.Request) -> Settings:
    return request.app[keys.SETTINGS]


def access_control(request: web.Request) -> AccessControl | None:
    """The app's access-control layer, or None for the open registry."""
    return request.app.get(keys.ACCESS_CONTROL)


def repo_name(request: web.Request) -> str:
    """The validated repository name of the URL (NAME_INVALID otherwise)."""
    return check_name(request.match_info["name"])


def digest_param(request: web.Request, name: str = "digest") -> Digest:
    """A validated digest from the URL path."""
    return parse_digest(request.match_info[name])


def query_digest(request: web.Request, name: str = "digest") -> Digest | None:
    """A validated digest from the query string, or None when absent."""
    value = request.query.get(name)
    return None if value is None else parse_digest(value)


READ_AHEAD = 1 << 20
"""A streamed body is read from the socket until twice this much waits unread (aiohttp's default for every request:
256 KiB, so 512 KiB). An upload hashes and writes one piece while the next arrives; with the default, the socket
stopped being read before that next piece was in (100 MiB uploads 4-6% faster with this, ``bench/RESULTS.md``)."""


def body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as a stream of chunks (never read whole into memory), read ahead by :data:`READ_AHEAD`
    (only here: a request whose body is refused or never read keeps aiohttp's smaller buffer)."""
    request.content.set_read_chunk_size(READ_AHEAD)
    return request.content.iter_any()


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, however many reads it arrives in; refused with 413 when larger than ``limit`` bytes: on a
    declared ``Content-Length`` before any byte is read, on a chunked body as soon as it passes the limit."""
    too_large = RegistryError(ErrorCode.PAYLOAD_TOO_LARGE, f"body larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    pieces: list[bytes] = []
    received = 0
    async for piece in request.content.iter_any():  # one read() returns only what has arrived so far
        received += len(piece)
        if received > limit:
            raise too_large
        pieces.append(piece)
    return b"".join(pieces)


def page(request: web.Request, items: list[str]) -> tuple[list[str], str | None]:
    """Apply ``n``/``last`` pagination; returns the page and the ``Link`` header for the next one, if any."""
    last = request.query.get("last")
    if last is not None:
        items = [item for item in items if item > last]
    raw_n = request.query.get("n")
    if raw_n is None:
        return items, None
    if not (raw_n.isascii() and raw_n.isdigit()):
        raise RegistryError(
            ErrorCode.PAGINATION_NUMBER_INVALID, f"n must be a non-negative integer, got {raw_n[:20]!r}"
        )
    n = min(int(raw_n), settings(request).page_size_max)
    chunk = items[:n]
    if n == 0 or len(items) <= n:
        return chunk, None
    query = urlencode({"n": n, "last": chunk[-1]})
    return chunk, f'<{request.path}?{query}>; rel="next"'


def json_response(data: Any, headers: dict[str, str] | None = None, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers=headers)
