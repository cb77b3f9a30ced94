"""The registry client's HTTP/1.1 client against real servers on 127.0.0.1: aiohttp apps and raw sockets."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dockyard.certs import self_signed
from runtime.httpclient import NO_VERIFY, FileBody, HttpClient, TlsTrust, TransportError

AGENT = "dockyard-test/1"


Seen = list[tuple[str, str, str | None, int]]  # (method, path, Authorization, peer port) of each request
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def seen() -> Seen:
    """(method, path, Authorization, peer port) of every request the servers below got."""
    return []


def recording_app(seen: Seen, redirect_to: str = "") -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.append((request.method, request.path, request.headers.get("Authorization"), peer[1] if peer else 0))
        if request.path == "/moved":
            raise web.HTTPTemporaryRedirect(redirect_to + "/target")
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        if request.method == "PUT":
            data = await request.read()
            return web.json_response({"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        return web.Response(body=b"x" * 100_000 if request.path == "/big" else b"hello")

    app = web.Application(client_max_size=16 << 20)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@pytest.fixture
async def server(seen: Seen, aiohttp_server: ServerFactory) -> str:
    return base_url(await aiohttp_server(recording_app(seen)))


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient(user_agent=AGENT, connect_timeout=5, read_timeout=10)
    yield http
    await http.close()


async def test_keep_alive_reuses_one_connection(client: HttpClient, server: str, seen: Seen) -> None:
    for _ in range(3):
        async with await client.request("GET", f"{server}/a") as response:
            assert response.status == 200
            assert await response.read() == b"hello"
    assert len({port for *_, port in seen}) == 1


async def test_head_of_a_large_resource_keeps_the_connection(client: HttpClient, server: str, seen: Seen) -> None:
    for _ in range(2):
        async with await client.request("HEAD", f"{server}/big") as response:
            assert response.content_length == 100_000
    assert len({port for *_, port in seen}) == 1


async def test_an_unread_large_body_closes_its_connection(client: HttpClient, server: str, seen: Seen) -> None:
    async with await client.request("GET", f"{server}/big") as response:
        assert await response.read(10) == b"x" * 10
    async with await client.request("GET", f"{server}/a") as response:
        assert await response.read() == b"hello"
    assert len({port for *_, port in seen}) == 2


async def test_redirects_keep_authorization_only_within_the_origin(
    client: HttpClient, seen: Seen, aiohttp_server: ServerFactory
) -> None:
    other = base_url(await aiohttp_server(recording_app(seen)))
    origin = base_url(await aiohttp_server(recording_app(seen, redirect_to=other)))
    async with await client.request("GET", f"{origin}/moved", headers={"Authorization": "Bearer secret"}) as response:
        assert response.status == 200
        assert response.url == f"{other}/target"
    assert [(method, path, auth) for method, path, auth, _ in seen] == [
        ("GET", "/moved", "Bearer secret"),
        ("GET", "/target", None),
    ]


async def test_a_redirect_loop_is_a_transport_error(client: HttpClient, server: str) -> None:
    with pytest.raises(TransportError, match="more than 10 redirects"):
        await client.request("GET", f"{server}/loop")


async def test_file_body_streams_with_progress(client: HttpClient, server: str, tmp_path: Path) -> None:
    data = bytes(range(256)) * 12_000  # 3 MiB: several blocks
    path = tmp_path / "blob"
    path.write_bytes(data)
    progress: list[int] = []
    body = FileBody(path, len(data), progress.append)
    async with await client.request("PUT", f"{server}/upload", body=body) as response:
        answer = await response.json()
    assert answer == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    await asyncio.sleep(0)  # progress comes through the loop
    assert progress[-1] == len(data)
    assert progress == sorted(progress)


async def test_read_into_hands_every_byte_to_the_sink(client: HttpClient, server: str) -> None:
    received = bytearray()
    async with await client.request("GET", f"{server}/big") as response:
        while await response.read_into(received.extend, 4096):
            pass
    assert bytes(received) == b"x" * 100_000


async def test_a_sink_error_is_raised_as_is(client: HttpClient, server: str) -> None:
    def refuse(_view: memoryview) -> None:
        raise LookupError("sink refused")

    async with await client.request("GET", f"{server}/big") as response:
        with pytest.raises(LookupError, match="sink refused"):
            await response.read_into(refuse)


@pytest.fixture
def one_answer_per_connection() -> Iterator[tuple[str, list[int]]]:
    """A raw server that answers one request per connection (keep-alive promised) and then closes it, as a server
    whose idle timeout ran out does; yields its URL and the count of connections accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = [0]

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted[0] += 1
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                time.sleep(0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    listener.close()
    thread.join(timeout=5)


async def test_a_kept_connection_closed_by_the_server_is_retried_once(
    client: HttpClient, one_answer_per_connection: tuple[str, list[int]]
) -> None:
    url, accepted = one_answer_per_connection
    for _ in range(2):
        async with await client.request("GET", f"{url}/") as response:
            assert await response.read() == b"ok"
        await asyncio.sleep(0.1)  # the server has closed the kept connection by now
    assert accepted[0] == 2


async def test_cancelling_a_request_to_a_silent_server_returns_at_once(client: HttpClient) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        task = asyncio.ensure_future(client.request("GET", url))
        await asyncio.sleep(0.2)
        begun = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - begun < 2


async def test_unreachable_and_malformed_urls_are_one_line_transport_errors(client: HttpClient) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(TransportError) as refused:
        await client.request("GET", f"http://127.0.0.1:{port}/")
    assert "\n" not in str(refused.value)
    with pytest.raises(TransportError, match="not an http"):
        await client.request("GET", "ftp://127.0.0.1/")
    with pytest.raises(TransportError, match="invalid port"):
        await client.request("GET", "http://127.0.0.1:99999/")


async def test_a_read_timeout_is_a_transport_error() -> None:
    http = HttpClient(user_agent=AGENT, connect_timeout=5, read_timeout=0.3)
    try:
        with socket.create_server(("127.0.0.1", 0)) as silent, pytest.raises(TransportError, match="timed out"):
            await http.request("GET", f"http://127.0.0.1:{silent.getsockname()[1]}/")
    finally:
        await http.close()


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1 (as ``dockyard certs selfsigned`` makes) and a server context."""
    cert, key = self_signed(["127.0.0.1"], days=1)
    (tmp_path / "ca.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "ca.pem", tmp_path / "key.pem")
    return tmp_path / "ca.pem", context


async def test_https_is_verified_against_the_trust_store(
    tls_pair: tuple[Path, ssl.SSLContext],
    seen: Seen,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca, context = tls_pair
    url = base_url(await aiohttp_server(recording_app(seen), ssl=context))
    assert url.startswith("https://")
    untrusting = HttpClient(user_agent=AGENT)
    try:
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.request("GET", f"{url}/a")
        async with await untrusting.request("GET", f"{url}/a", tls=NO_VERIFY) as response:
            assert await response.read() == b"hello"  # an insecure registry: TLS without verification
    finally:
        await untrusting.close()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # read when the client builds its verifying context
    trusting = HttpClient(user_agent=AGENT)
    try:
        async with await trusting.request("GET", f"{url}/a") as response:
            assert await response.read() == b"hello"
    finally:
        await trusting.close()


async def test_ca_files_and_a_client_certificate_come_from_the_trust(
    tls_pair: tuple[Path, ssl.SSLContext],
    seen: Seen,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    tmp_path: Path,
) -> None:
    ca, context = tls_pair
    client_cert, client_key = self_signed(["dockyard-client"], days=1, client=True)
    (tmp_path / "client.cert").write_bytes(client_cert)
    (tmp_path / "client.key").write_bytes(client_key)
    context.load_verify_locations(cafile=tmp_path / "client.cert")
    context.verify_mode = ssl.CERT_REQUIRED  # the server wants a client certificate it trusts
    url = base_url(await aiohttp_server(recording_app(seen), ssl=context))
    http = HttpClient(user_agent=AGENT)
    try:
        with pytest.raises(TransportError):  # the CA alone: the server refuses the handshake
            await http.request("GET", f"{url}/a", tls=TlsTrust(ca_files=(ca,)))
        trust = TlsTrust(ca_files=(ca,), client_cert=(tmp_path / "client.cert", tmp_path / "client.key"))
        async with await http.request("GET", f"{url}/a", tls=trust) as response:
            assert await response.read() == b"hello"
        with pytest.raises(TransportError, match=r"TLS files .*missing\.crt"):
            await http.request("GET", f"{url}/a", tls=TlsTrust(ca_files=(tmp_path / "missing.crt",)))
    finally:
        await http.close()
