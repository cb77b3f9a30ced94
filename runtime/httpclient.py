"""A small async HTTP/1.1 client for the registry client: the standard library's ``http.client`` in worker threads.

Why not aiohttp: importing it costs every ``dockyard pull`` and ``push`` about 150 ms, more than a whole pull of a
small image, and a download through an event loop copies each received buffer several times in Python. Blocking
sockets in a few worker threads let ``recv``, hashing and file writes all run outside the GIL.

Contract:

- :meth:`HttpClient.request` sends one request and returns once the status line and the headers are in; the body is
  read with :meth:`Response.read`, :meth:`Response.json` or :meth:`Response.chunks`. Leave the response with
  ``async with`` or :meth:`Response.release`: a connection whose answer was read to the end goes back to the pool of
  its origin (keep-alive), any other one is closed.
- Redirects (301, 302, 303, 307, 308) are followed for ``GET`` and ``HEAD``, at most :data:`MAX_REDIRECTS` times;
  ``Authorization`` is dropped when a redirect leaves the origin (a registry sending blobs to a CDN or S3 must not
  hand them its token). :attr:`Response.url` is the URL that answered.
- A request on a kept-alive connection that the server closed meanwhile is sent once more on a new connection.
- Every transport failure (name resolution, connect, TLS, timeouts, a broken or malformed answer) is a
  :class:`TransportError` with a one-line reason. Timeouts: ``connect_timeout`` to connect, ``read_timeout`` for
  every later socket operation.
- Cancelling a request or a read shuts its connection down, so that its worker thread ends at once; a cancelled
  :meth:`Response.read_into` returns only after its thread did (its sink must not run on after). The workers are
  daemon threads: one still blocked (a TCP connect or a TLS handshake cannot be interrupted) never holds up the exit
  of the process, as a ``concurrent.futures`` pool would.
- ``on_response`` (tests) is called with every response: method, URL, status, request and response headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import queue
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self, TypeVar
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 10
REDIRECTS = frozenset({301, 302, 303, 307, 308})
BLOCK = 1 << 20  # bytes per socket send of a request body and per body read
WORKERS = 16  # threads for blocking socket work: parallel layer downloads and uploads, with room to spare
DRAIN_MAX = 64 << 10  # an unread rest of a body up to this size is read to keep the connection

T = TypeVar("T")
ResponseHook = Callable[[str, str, int, Mapping[str, str], Mapping[str, str]], None]


class TransportError(Exception):
    """The request failed below HTTP: no connection, TLS, a timeout, or a broken or malformed answer."""


@dataclass(frozen=True)
class FileBody:
    """A request body read from ``path`` (``size`` bytes) while it is sent; ``progress`` gets the bytes sent so far
    (called from the event loop's thread)."""

    path: Path
    size: int
    progress: Callable[[int], None] | None = None


Body = bytes | FileBody | None


@dataclass(frozen=True)
class TlsTrust:
    """How a TLS server is checked: with ``verify``, against the system's trust store plus the CA certificates of
    ``ca_files``; without, not at all (insecure registries). ``client_cert`` (certificate, key) is presented when
    the server asks for one."""

    verify: bool = True
    ca_files: tuple[Path, ...] = ()
    client_cert: tuple[Path, Path] | None = None


VERIFY = TlsTrust()
NO_VERIFY = TlsTrust(verify=False)
Origin = tuple[str, str, int, TlsTrust]  # scheme, host, port, trust


class _Connection:
    """One ``http.client`` connection of an origin, with the read timeout applied once connected."""

    def __init__(self, origin: Origin, connect_timeout: float, read_timeout: float, context: ssl.SSLContext | None):
        scheme, host, port, _ = origin
        self.origin = origin
        self.read_timeout = read_timeout
        self.reused = False
        if scheme == "https":
            self.conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=context, blocksize=BLOCK
            )
        else:
            self.conn = http.client.HTTPConnection(host, port, timeout=connect_timeout, blocksize=BLOCK)

    def exchange(self, method: str, target: str, headers: dict[str, str], body: bytes | _ProgressReader | None) -> Any:
        """Send the request and read the status line and headers (blocking: runs in a worker thread)."""
        if self.conn.sock is None:
            self.conn.connect()
            assert self.conn.sock is not None
            self.conn.sock.settimeout(self.read_timeout)
        self.conn.request(method, target, body=body, headers=headers)
        return self.conn.getresponse()

    def abort(self) -> None:
        """Make a blocked worker thread return now (its socket is shut down), then close."""
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()


class _ProgressReader:
    """A file whose reads report the bytes handed out so far to the event loop."""

    def __init__(self, handle: BinaryIO, loop: asyncio.AbstractEventLoop, progress: Callable[[int], None] | None):
        self.handle, self.loop, self.progress = handle, loop, progress
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sent += len(data)
        if self.progress is not None and data:
            self.loop.call_soon_threadsafe(self.progress, self.sent)
        return data


class Response:
    """An answer whose body is still to be read; see the module's contract."""

    def __init__(self, client: HttpClient, connection: _Connection, raw: http.client.HTTPResponse, url: str) -> None:
        self._client = client
        self._connection: _Connection | None = connection
        self._raw = raw
        self.url = url
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.msg
        self._buffer = bytearray()

    @property
    def content_length(self) -> int | None:
        """The body's size from ``Content-Length`` (None when absent or unreadable)."""
        try:
            value = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return None
        return value if value >= 0 else None

    @property
    def host(self) -> str:
        """``host`` or ``host:port`` (a non-default port) of :attr:`url`."""
        parts = urlsplit(self.url)
        default = 443 if parts.scheme == "https" else 80
        return parts.netloc if parts.port not in (None, default) else parts.hostname or ""

    async def read(self, limit: int | None = None) -> bytes:
        """The body, or its first ``limit`` bytes."""
        raw = self._raw
        return await self._blocking(raw.read if limit is None else lambda: raw.read(limit))

    async def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` when it is not)."""
        return json.loads(await self.read())

    async def read_into(self, sink: Callable[[memoryview], None], size: int = BLOCK) -> int:
        """Receive up to ``size`` bytes of the body and hand them to ``sink``, both in one worker thread (so that
        ``sink`` may write and hash them outside the GIL; the view is only valid during the call). Returns the
        number of bytes, 0 at the end of the body. An exception of ``sink`` is raised here as it is."""
        if len(self._buffer) != size:
            self._buffer = bytearray(size)
        view = memoryview(self._buffer)

        def receive() -> int:
            received = self._raw.readinto(view)
            if received:
                sink(view[:received])
            return received

        return await self._blocking(receive, wait_on_cancel=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the connection; a small unread rest of the body is read first, to keep the connection."""
        rest = self._raw.length  # what is left of the body: 0 for HEAD, 204 and 304, None when not known
        if self._connection is not None and not self._raw.isclosed() and rest is not None and rest <= DRAIN_MAX:
            with contextlib.suppress(TransportError):
                await self._blocking(self._raw.read)
        self.release()

    def release(self) -> None:
        """Give the connection back when the body was read to the end, else close it (idempotent)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._raw.isclosed() and not self._raw.will_close:
            self._client._keep(connection)
        else:
            self._raw.close()
            connection.close()

    async def _blocking(self, call: Callable[[], T], *, wait_on_cancel: bool = False) -> T:
        if self._connection is None:
            raise TransportError("the response was released")
        return await self._client._run(self._connection, call, wait_on_cancel=wait_on_cancel)


class _Workers:
    """Daemon threads that run blocking calls, started on demand up to ``limit`` and kept for later calls."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, call: Callable[[], T]) -> Future[T]:
        """Queue ``call``; its future gets the result or the exception."""
        future: Future[T] = Future()
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif self._threads < self._limit:
                self._threads += 1
                threading.Thread(target=self._work, name="dockyard-http", daemon=True).start()
        self._queue.put((future, call))
        return future

    def stop(self) -> None:
        """Let every thread end once it is idle."""
        with self._lock:
            for _ in range(self._threads):
                self._queue.put(None)
            self._threads = self._idle = 0

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as exc:
                    future.set_exception(exc)
            with self._lock:
                self._idle += 1


class HttpClient:
    """Async HTTP/1.1 over blocking sockets in worker threads; see the module's contract."""

    def __init__(
        self,
        *,
        user_agent: str,
        connect_timeout: float = 30.0,
        read_timeout: float = 120.0,
        on_response: ResponseHook | None = None,
    ) -> None:
        self._user_agent = user_agent
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._on_response = on_response
        self._idle: dict[Origin, list[_Connection]] = {}
        self._contexts: dict[TlsTrust, ssl.SSLContext] = {}
        self._workers = _Workers(WORKERS)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        tls: TlsTrust = VERIFY,
    ) -> Response:
        """Send ``method url`` and return the answer once its headers are in (redirects followed for GET/HEAD)."""
        sent = {"User-Agent": self._user_agent, **(headers or {})}
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._send(method, url, sent, body, tls)
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or method not in ("GET", "HEAD") or not location:
                return response
            await response.aclose()
            target = urljoin(url, location)
            if _origin_of(target, tls)[:3] != _origin_of(url, tls)[:3]:
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
            url = target
        raise TransportError(f"{method} {_without_query(url)}: more than {MAX_REDIRECTS} redirects")

    async def close(self) -> None:
        """Close every kept connection and stop the worker threads (idempotent)."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        self._workers.stop()

    async def _send(self, method: str, url: str, headers: dict[str, str], body: Body, tls: TlsTrust) -> Response:
        origin = _origin_of(url, tls)
        target = _target_of(url)
        if isinstance(body, FileBody):
            headers = {**headers, "Content-Length": str(body.size)}
        for attempt in (1, 2):
            connection = self._connection(origin)
            try:
                raw = await self._exchange(connection, method, target, headers, body)
            except TransportError:
                if connection.reused and attempt == 1:  # the server closed a kept connection meanwhile
                    continue
                raise
            response = Response(self, connection, raw, url)
            if self._on_response is not None:
                self._on_response(method, url, response.status, headers, dict(response.headers.items()))
            return response
        raise AssertionError("unreachable")

    async def _exchange(
        self, connection: _Connection, method: str, target: str, headers: dict[str, str], body: Body
    ) -> http.client.HTTPResponse:
        if not isinstance(body, FileBody):
            return await self._run(connection, lambda: connection.exchange(method, target, headers, body))
        loop = asyncio.get_running_loop()
        with body.path.open("rb") as handle:
            reader = _ProgressReader(handle, loop, body.progress)
            return await self._run(connection, lambda: connection.exchange(method, target, headers, reader))

    async def _run(self, connection: _Connection, call: Callable[[], T], *, wait_on_cancel: bool = False) -> T:
        """``call()`` in a worker thread; a failure is a TransportError. A cancellation shuts ``connection`` down
        (and, with ``wait_on_cancel``, waits for the thread before it goes on)."""
        future = asyncio.wrap_future(self._workers.submit(call))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            connection.abort()
            if wait_on_cancel:
                with contextlib.suppress(BaseException):
                    await future
            else:
                future.add_done_callback(_retrieve)
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            connection.abort()
            raise TransportError(_reason(exc)) from None

    def _connection(self, origin: Origin) -> _Connection:
        idle = self._idle.get(origin)
        if idle:
            connection = idle.pop()
            connection.reused = True
            return connection
        context = self._context(origin[3]) if origin[0] == "https" else None
        return _Connection(origin, self._connect_timeout, self._read_timeout, context)

    def _keep(self, connection: _Connection) -> None:
        self._idle.setdefault(connection.origin, []).append(connection)

    def _context(self, trust: TlsTrust) -> ssl.SSLContext:
        """The TLS context of ``trust`` (built once). Without verification no certificate is loaded, which saves
        reading the whole trust store; unreadable or invalid files are a TransportError."""
        context = self._contexts.get(trust)
        if context is None:
            try:
                context = _build_context(trust)
            except (OSError, ssl.SSLError) as exc:
                raise TransportError(f"TLS files {_tls_files(trust)}: {_reason(exc)}") from None
            self._contexts[trust] = context
        return context


def _build_context(trust: TlsTrust) -> ssl.SSLContext:
    if trust.verify:
        context = ssl.create_default_context()
        for ca_file in trust.ca_files:
            context.load_verify_locations(cafile=ca_file)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if trust.client_cert is not None:
        context.load_cert_chain(*trust.client_cert)
    return context


def _tls_files(trust: TlsTrust) -> str:
    return ", ".join(str(path) for path in (*trust.ca_files, *(trust.client_cert or ()))) or "(system trust store)"


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark the outcome of a call nobody awaits any more as seen: asyncio would log an exception left in it when the
    future is collected, whenever that happens (even in the middle of another thread's work)."""
    if not future.cancelled():
        future.exception()


def _origin_of(url: str, tls: TlsTrust) -> Origin:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError(f"not an http(s) URL: {_without_query(url)}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TransportError(f"invalid port in {_without_query(url)}") from None
    return parts.scheme, parts.hostname, port, tls


def _target_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _without_query(url: str) -> str:
    return url.partition("?")[0]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without an answer"
    if isinstance(exc, http.client.IncompleteRead):
        return f"the connection broke off after {len(exc.partial)} bytes"
    return " ".join(str(exc).split()) or type(exc).__name__
