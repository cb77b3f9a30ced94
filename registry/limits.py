"""Limits against slow and abusive clients (the ``limits:`` settings), enforced in one middleware.

- **Header timeout and header size** are the HTTP server's: ``handler_args`` gives aiohttp's request handler
  ``keepalive_timeout`` (a connection that has not delivered a complete request head that long after it opened
  or after its previous response is closed) and ``max_line_size`` / ``max_field_size`` (a longer request line or
  header field is answered 400 and the connection closed).
- **Body timeout**: while a handler waits for request bytes, a body that stalls for ``body_timeout`` seconds is
  failed with :class:`BodyTimeout`: the handler's read raises, the upload store releases the session's lock and
  file, and the client gets 408 (``SIZE_INVALID``: the body never reached its length) on a closed connection.
  The session keeps the bytes received and stays resumable. Time the server spends not reading (the transport
  paused because the handler is busy writing to storage) never counts against the client.
- **Request rate**: a token bucket per client address (``requests_per_second``, ``burst``); over it, 429
  ``TOOMANYREQUESTS`` with ``Retry-After``.
- **Upload sessions per client**: sessions opened by a client address and not yet finished, cancelled or idle
  for ``upload_session_idle``; a POST that would open one more answers 429 ``TOOMANYREQUESTS``. The count is
  reserved before the handler runs, so concurrent POSTs cannot overshoot it.

The client address is ``request.remote``, which the ``trusted_proxies`` middleware (placed before this one)
rewrites from ``X-Forwarded-For``. Counters live in this process and expire; their memory stays bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.typedefs import Handler, Middleware

from registry.config import LimitsSettings
from registry.errors import ErrorCode, RegistryError
from registry.handlers import uploads

__all__ = ["BodyTimeout", "RateLimiter", "UploadSessions", "handler_args", "limits_middleware"]

Clock = Callable[[], float]
_MAX_CLIENTS = 100_000
_SESSION_ROUTES = (uploads.upload_status, uploads.patch_upload, uploads.finish_upload, uploads.cancel_upload)


def handler_args(config: LimitsSettings) -> dict[str, Any]:
    """The aiohttp request-handler arguments enforcing the header timeout and the header size."""
    return {
        "keepalive_timeout": config.header_timeout,
        "max_line_size": config.max_header_size,
        "max_field_size": config.max_header_size,
    }


class BodyTimeout(TimeoutError):
    """The client sent no body bytes for ``body_timeout`` seconds while the server waited for them.

    A ``TimeoutError``, so the error middleware lets it through to :func:`limits_middleware`."""


class TooManyRequests(RegistryError):
    """429 ``TOOMANYREQUESTS`` with ``Retry-After`` in whole seconds (at least 1)."""

    def __init__(self, message: str, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(ErrorCode.TOOMANYREQUESTS, message, headers={"Retry-After": str(seconds)})


class RateLimiter:
    """A token bucket per client: ``rate`` tokens a second, at most ``burst`` saved up; a request takes one.

    At most ``max_clients`` buckets are kept, least recently used first out (a forgotten bucket is a full one,
    which is also what an idle client's bucket would be)."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic, max_clients: int = _MAX_CLIENTS):
        self.rate, self.burst, self.clock, self.max_clients = rate, burst, clock, max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def take(self, client: str) -> float | None:
        """Take a token for ``client``: None when allowed, else the seconds until a token is available."""
        now = self.clock()
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return None if allowed else (1.0 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


class UploadSessions:
    """Open upload sessions per client address, each with the time a request last touched it.

    A client holds a slot from :meth:`reserve` while its POST runs (:meth:`release` gives it back, and
    :meth:`opened` records the session the POST opened, with no ``await`` in between); a session counts until
    :meth:`closed` or until nothing touched it for ``idle`` seconds. Expired entries are swept as clients come
    back and, for all clients, whenever the number of clients doubles past ``max_clients``: memory is bounded by
    what ``idle`` seconds of requests open.
    """

    def __init__(self, limit: int, idle: float, clock: Clock = time.monotonic, max_clients: int = _MAX_CLIENTS):
        self.limit, self.idle, self.clock = limit, idle, clock
        self._sweep_at = max_clients
        self._clients: dict[str, dict[str, float]] = {}  # client -> {session id or slot: last touched}
        self._owner: dict[str, str] = {}  # session id -> client
        self._slots = itertools.count()

    def count(self, client: str) -> int:
        """Open sessions and reserved slots of ``client`` (expired ones dropped)."""
        return len(self._live(client))

    def reserve(self, client: str) -> str:
        """A slot for one more session of ``client``; :class:`TooManyRequests` when it holds ``limit`` already."""
        live = self._live(client)
        if len(live) >= self.limit:
            wait = min(live.values()) + self.idle - self.clock()
            raise TooManyRequests(f"more than {self.limit} open upload sessions from {client}", wait)
        slot = f"slot:{next(self._slots)}"
        live[slot] = self.clock()
        self._clients[client] = live
        if len(self._clients) > self._sweep_at:
            self._sweep()
        return slot

    def opened(self, client: str, upload_id: str) -> None:
        """``client`` opened session ``upload_id`` (after releasing the slot it reserved for it)."""
        self._clients.setdefault(client, {})[upload_id] = self.clock()
        self._owner[upload_id] = client

    def release(self, client: str, slot: str) -> None:
        """Give back a slot whose POST opened no session."""
        self._clients.get(client, {}).pop(slot, None)

    def touch(self, upload_id: str) -> None:
        """A request used the session: it counts for another ``idle`` seconds."""
        client = self._owner.get(upload_id)
        if client is not None and upload_id in self._clients.get(client, {}):
            self._clients[client][upload_id] = self.clock()

    def closed(self, upload_id: str) -> None:
        """The session was finished, cancelled or is unknown: it no longer counts."""
        client = self._owner.pop(upload_id, None)
        if client is not None:
            self._clients.get(client, {}).pop(upload_id, None)

    def __len__(self) -> int:
        """Clients with entries (some perhaps expired and not yet swept)."""
        return len(self._clients)

    def _live(self, client: str) -> dict[str, float]:
        entries = self._clients.get(client, {})
        cutoff = self.clock() - self.idle
        for key in [k for k, touched in entries.items() if touched <= cutoff]:
            del entries[key]
            self._owner.pop(key, None)
        if not entries:
            self._clients.pop(client, None)
        return entries

    def _sweep(self) -> None:
        for client in list(self._clients):
            self._live(client)
        self._sweep_at = max(self._sweep_at, 2 * len(self._clients))


@contextmanager
def body_deadline(request: web.Request, timeout: float) -> Iterator[None]:
    """Fail ``request``'s body with :class:`BodyTimeout` when it stalls for ``timeout`` seconds while the server
    reads (a paused transport, the server not reading, does not count). No-op for 0 or a request without body."""
    if timeout <= 0 or not request.can_read_body:
        yield
        return
    watch = _BodyWatch(request.content, request.transport, timeout)
    try:
        yield
    finally:
        watch.stop()


class _BodyWatch:
    """Checks a body's progress every quarter of ``timeout`` on the event loop (one timer, no task)."""

    def __init__(self, stream: StreamReader, transport: asyncio.BaseTransport | None, timeout: float) -> None:
        self.stream, self.transport, self.timeout = stream, transport, timeout
        self.loop = asyncio.get_running_loop()
        self.seen = stream.total_bytes
        self.progress_at = self.loop.time()
        self.handle = self.loop.call_later(timeout / 4, self._check)

    def _check(self) -> None:
        if self.stream.is_eof() or self.stream.exception() is not None:
            return
        now = self.loop.time()
        reading = isinstance(self.transport, asyncio.ReadTransport) and self.transport.is_reading()
        if self.stream.total_bytes != self.seen or not reading:
            self.seen, self.progress_at = self.stream.total_bytes, now
        elif now - self.progress_at >= self.timeout:
            self.stream.set_exception(BodyTimeout(f"no request body bytes for {self.timeout:g} s"))
            return
        self.handle = self.loop.call_later(self.timeout / 4, self._check)

    def stop(self) -> None:
        self.handle.cancel()


def _timed_out(request: web.Request, exc: BodyTimeout) -> web.Response:
    """408 with the spec's error body, on a connection that is then closed."""
    response = RegistryError(ErrorCode.SIZE_INVALID, f"request body timed out: {exc}").response(request.method)
    response.set_status(408)
    response.force_close()
    return response


def _upload_id(request: web.Request) -> str | None:
    """The session id of a request on an existing upload session, else None."""
    if request.match_info.handler in _SESSION_ROUTES:
        return request.match_info.get("uuid")
    return None


async def _with_sessions(request: web.Request, handler: Handler, sessions: UploadSessions) -> web.StreamResponse:
    """Run ``handler``, counting the upload sessions its request opens, uses or ends."""
    client = request.remote or ""
    if request.match_info.handler is uploads.start_upload:
        slot = sessions.reserve(client)
        try:
            response = await handler(request)
        finally:
            sessions.release(client, slot)
        if response.status == 202 and (upload_id := response.headers.get("Docker-Upload-UUID")):
            sessions.opened(client, upload_id)
        return response
    upload_id = _upload_id(request)
    if upload_id is None:
        return await handler(request)
    sessions.touch(upload_id)
    response = await handler(request)
    if response.status in (201, 204, 404):  # finished, cancelled, unknown
        sessions.closed(upload_id)
    else:
        sessions.touch(upload_id)
    return response


def limits_middleware(config: LimitsSettings) -> Middleware:
    """The middleware enforcing the body timeout, the request rate and the upload sessions per client. It
    belongs after the ``trusted_proxies`` middleware (for the client's address) and before the error
    middleware (which lets :class:`BodyTimeout` through to it)."""
    rate = RateLimiter(config.requests_per_second, config.burst) if config.requests_per_second > 0 else None
    sessions = UploadSessions(config.upload_sessions_per_client, config.upload_session_idle)
    count_sessions = config.upload_sessions_per_client > 0

    @web.middleware
    async def limits(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if rate is not None and (wait := rate.take(request.remote or "")) is not None:
                raise TooManyRequests(f"more than {config.requests_per_second:g} requests per second", wait)
            with body_deadline(request, config.body_timeout):
                if count_sessions:
                    return await _with_sessions(request, handler, sessions)
                return await handler(request)
        except TooManyRequests as exc:
            return exc.response(request.method)
        except BodyTimeout as exc:
            return _timed_out(request, exc)

    return limits
