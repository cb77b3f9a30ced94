"""Slow and abusive clients against a real ``dockyard serve`` (issue 9, "Faults"): slowloris request heads and
bodies are timed out and release what they held, and the header-size, manifest-size, upload-session and
request-rate limits of ``limits:`` are enforced (429 ``TOOMANYREQUESTS`` with ``Retry-After``).

Every server runs with small limits (timeouts of 1 s) from a YAML config file, so the file runs in well under a
minute. Clients are told apart by ``X-Forwarded-For`` through ``trusted_proxies: [127.0.0.1]``, which is how
the registry learns client addresses behind a proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.reliability.tally import Tally, scaled
from tests.support.oci import OCI_MANIFEST, digest, image_manifest
from tests.support.server import LiveRegistry, live_registry

TIMEOUT = 1.0  # header_timeout and body_timeout of the servers below, seconds
SLACK = 1.5  # how much later than a timeout the server may act (a timer checks every quarter of it)
MANIFEST_LIMIT = 4096
HEADER_LIMIT = 4096
SESSIONS = 3
RATE, BURST = 5.0, 20


def start(tmp_path_factory: pytest.TempPathFactory, workers: int, **limits: Any) -> Iterator[LiveRegistry]:
    """A registry with these ``limits:`` and ``workers`` (0: one per core), told to trust 127.0.0.1 as a proxy."""
    workdir = tmp_path_factory.mktemp("abusive")
    config = workdir / "dockyard.yml"
    settings = {"workers": workers, "limits": limits, "trusted_proxies": ["127.0.0.1"]}
    config.write_text(yaml.safe_dump({**settings, "max_manifest_size": MANIFEST_LIMIT}))
    with live_registry(workdir, "--config", str(config)) as live:
        yield live


@pytest.fixture(scope="module")
def timed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    """A registry with 1 s header and body timeouts and small header and manifest limits, on every core."""
    yield from start(tmp_path_factory, 0, header_timeout=TIMEOUT, body_timeout=TIMEOUT, max_header_size=HEADER_LIMIT)


@pytest.fixture(scope="module")
def counting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    """A registry limiting upload sessions and the request rate per client. Counters live in each worker
    process (a client gets at most ``workers`` times a limit), so this one runs one worker to count exactly."""
    limits = {"upload_sessions_per_client": SESSIONS, "upload_session_idle": 2 * TIMEOUT}
    yield from start(tmp_path_factory, 1, **limits, requests_per_second=RATE, burst=BURST)


def session() -> aiohttp.ClientSession:
    """A client opening a connection per request: the servers here close idle ones after a second."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


def client(address: str) -> dict[str, str]:
    """Headers making the trusted proxy's request come from client ``address``."""
    return {"X-Forwarded-For": address}


# --- raw HTTP ---------------------------------------------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (status, lower-cased headers, body by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def closed_after(reader: asyncio.StreamReader, wait: float) -> bool:
    """True when the server closes the connection within ``wait`` seconds (anything it sends is skipped)."""
    try:
        async with asyncio.timeout(wait):
            while await reader.read(65536):
                pass
        return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def slowloris_head(port: int, keepalive_first: bool) -> float | None:
    """Send a request head one byte every fifth of the timeout (after one complete request when
    ``keepalive_first``); the seconds after which the server closed the connection, None if it never did."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    try:
        if keepalive_first:
            writer.write(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n")
            status, _, _ = await read_response(reader)
            assert status == 200
        started = loop.time()
        for byte in b"GET /v2/ HTTP/1.1\r\nHost: registry\r\nX-Slow: " + b"a" * 200:
            writer.write(bytes([byte]))
            if await closed_after(reader, TIMEOUT / 5):
                return loop.time() - started
            if loop.time() - started > TIMEOUT + 2 * SLACK:
                return None
        return None
    except ConnectionError:
        return loop.time() - started
    finally:
        writer.close()


# --- helpers on the API -----------------------------------------------------------------------------------------


async def start_upload(http: aiohttp.ClientSession, base: str, name: str, who: str = "10.0.0.1") -> str:
    """Open an upload session; its Location."""
    async with http.post(f"{base}/v2/{name}/blobs/uploads/", headers=client(who)) as resp:
        assert resp.status == 202, await resp.text()
        return resp.headers["Location"]


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the server's worker processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in process_tree(int(child)))]


def open_fds(pid: int, needle: str) -> int:
    """How many files with ``needle`` in their path process ``pid`` and its workers hold open."""
    count = 0
    for process in process_tree(pid):
        for fd in os.listdir(f"/proc/{process}/fd"):
            try:
                count += needle in os.readlink(f"/proc/{process}/fd/{fd}")
            except FileNotFoundError:
                continue
    return count


async def error_of(resp: aiohttp.ClientResponse) -> str:
    body = await resp.json(content_type=None)
    return str(body["errors"][0]["code"])


# --- the tests --------------------------------------------------------------------------------------------------


async def test_slowloris_request_heads_are_closed(timed: LiveRegistry, tally: Tally) -> None:
    """Request heads trickled in one byte at a time (on fresh and on kept-alive connections) are cut off
    ``header_timeout`` after the connection opened or answered its last request; the server keeps serving."""
    count = scaled(10, 100)
    closed = await asyncio.gather(*(slowloris_head(timed.port, i % 2 == 1) for i in range(count)))
    left_open = sum(elapsed is None for elapsed in closed)
    too_early = sum(elapsed is not None and elapsed < TIMEOUT * 0.8 for elapsed in closed)
    async with session() as http, http.get(f"{timed.url}/v2/") as resp:
        server_errors = int(resp.status != 200)
    tally.record(
        "Faults",
        "slowloris request heads (1 byte per 0.2 s, header_timeout 1 s)",
        tried=count,
        connections_left_open=left_open,
        closed_too_early=too_early,
        server_errors=server_errors,
    )
    assert (left_open, too_early, server_errors) == (0, 0, 0), closed


async def stalled_patch(registry: LiveRegistry, location: str, data: bytes, sent: int) -> tuple[int, float]:
    """PATCH ``data`` on a raw connection: ``sent`` bytes at once, then a byte every half timeout for two
    timeouts (progress, which must not time out), then nothing. The status and when it came after the stall."""
    reader, writer = await asyncio.open_connection("127.0.0.1", registry.port)
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: registry\r\nX-Forwarded-For: 10.0.1.1\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    writer.write(head.encode() + data[:sent])
    loop = asyncio.get_running_loop()
    try:
        for i in range(4):
            await asyncio.sleep(TIMEOUT / 2)
            writer.write(data[sent + i : sent + i + 1])
        stalled = loop.time()
        async with asyncio.timeout(TIMEOUT + 2 * SLACK):
            status, headers, _ = await read_response(reader)
        assert headers.get("connection", "").lower() == "close"
        assert await closed_after(reader, SLACK)
        return status, loop.time() - stalled
    finally:
        writer.close()


async def resume(http: aiohttp.ClientSession, base: str, location: str, data: bytes) -> bool:
    """Continue the session from the offset it reports, finish it, and read the blob back byte-identical."""
    async with http.get(base + location) as resp:
        assert resp.status == 204, await resp.text()
        offset = int(resp.headers["Range"].split("-")[1]) + 1 if resp.headers["Range"] != "0-0" else 0
    rest = data[offset:]
    content_range = {"Content-Range": f"{offset}-{len(data) - 1}"}
    async with http.patch(base + location, data=rest, headers=content_range) as resp:
        assert resp.status == 202, await resp.text()
    async with http.put(f"{base}{location}?digest={digest(data)}") as resp:
        assert resp.status == 201, await resp.text()
        blob = resp.headers["Location"]
    async with http.get(base + blob) as resp:
        return await resp.read() == data


async def test_stalled_upload_bodies_are_ended_and_release_the_session(timed: LiveRegistry, tally: Tally) -> None:
    """An upload whose body stops arriving is answered 408 and closed ``body_timeout`` after the last byte;
    a body that keeps trickling (slower than the network, faster than the timeout) is not. Afterwards the
    server holds no file of the session open, and the session resumes and finishes byte-identical."""
    count = scaled(4, 40)
    name = "slow/body"
    async with session() as http:
        uploads = [(await start_upload(http, timed.url, name), os.urandom(300_000 + i)) for i in range(count)]
        results = await asyncio.gather(*(stalled_patch(timed, loc, data, 100_000) for loc, data in uploads))
        fds = sum(open_fds(timed.process.pid, loc.rsplit("/", 1)[1]) for loc, _ in uploads)
        resumed = [await resume(http, timed.url, loc, data) for loc, data in uploads]
    not_ended = sum(status != 408 for status, _ in results)
    early = sum(after < TIMEOUT * 0.9 for _, after in results)
    lost = resumed.count(False)
    tally.record(
        "Faults",
        "upload body stalls mid-PATCH (body_timeout 1 s)",
        tried=count,
        requests_left_open=not_ended,
        ended_too_early=early,
        files_left_open=fds,
        sessions_not_resumable=lost,
    )
    assert (not_ended, early, fds, lost) == (0, 0, 0, 0), results


async def send_raw(port: int, head: bytes) -> tuple[int, bytes] | None:
    """Send ``head`` (its end included) and read the answer's status and body; None when the server hung up
    without one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        async with asyncio.timeout(10):
            status, _, body = await read_response(reader)
        return status, body
    except (ConnectionError, asyncio.IncompleteReadError):
        return None
    finally:
        writer.close()


def oversized_heads() -> list[bytes]:
    """Request heads over ``max_header_size`` (or aiohttp's 128 header fields) in every place a client can grow."""
    start = b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n"
    return [
        start + b"X-Big: " + b"a" * (HEADER_LIMIT + 1) + b"\r\n\r\n",
        start + b"Authorization: Bearer " + b"t" * (4 * HEADER_LIMIT) + b"\r\n\r\n",
        start + b"X-" + b"n" * (HEADER_LIMIT + 1) + b": 1\r\n\r\n",
        b"GET /v2/" + b"x" * (HEADER_LIMIT + 1) + b"/tags/list HTTP/1.1\r\nHost: registry\r\n\r\n",
        start + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n",
        start + b"X-Huge: " + b"h" * (4 << 20) + b"\r\n\r\n",
    ]


async def test_oversized_request_heads_are_refused(timed: LiveRegistry, tally: Tally) -> None:
    """Request lines and header fields over ``max_header_size`` are answered 400/431, never 5xx or accepted;
    a head just under the limit is served."""
    heads = oversized_heads() * scaled(2, 20)
    statuses = [answer[0] if (answer := await send_raw(timed.port, head)) else None for head in heads]
    accepted = sum(status is not None and status < 400 for status in statuses)
    server_errors = sum(status is None or status >= 500 for status in statuses)
    fitting = b"GET /v2/ HTTP/1.1\r\nHost: registry\r\nX-Fits: " + b"a" * (HEADER_LIMIT - 100) + b"\r\n\r\n"
    tally.record(
        "Hostile input",
        f"oversized request line / header field / header count (max_header_size {HEADER_LIMIT})",
        tried=len(heads),
        accepted=accepted,
        server_errors=server_errors,
    )
    assert (accepted, server_errors) == (0, 0), statuses
    assert set(statuses) <= {400, 431}
    assert (await send_raw(timed.port, fitting) or (0, b""))[0] == 200


async def trickled(data: bytes, pieces: int) -> AsyncIterator[bytes]:
    """``data`` in ``pieces`` parts with a pause between them (a chunked body that arrives in several reads)."""
    size = -(-len(data) // pieces)
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await asyncio.sleep(0.05)


async def push_blobs(http: aiohttp.ClientSession, base: str, name: str, blobs: list[bytes]) -> None:
    for blob in blobs:
        async with http.post(f"{base}/v2/{name}/blobs/uploads/?digest={digest(blob)}", data=blob) as resp:
            assert resp.status == 201, await resp.text()


def padded_manifest(config: bytes, layer: bytes, size: int) -> bytes:
    """A valid image manifest of exactly ``size`` bytes (padded with an annotation)."""
    manifest = image_manifest(config, [layer], annotations={"pad": ""})
    short = len(json.dumps(manifest).encode())
    manifest["annotations"]["pad"] = "p" * (size - short)
    return json.dumps(manifest).encode()


async def put_manifest(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, str | None]:
    async with http.put(url, data=body, headers={"Content-Type": OCI_MANIFEST}) as resp:
        return resp.status, (await error_of(resp)) if resp.status >= 400 else None


async def declared_too_large(port: int, path: str) -> tuple[int, str | None]:
    """A PUT declaring a body far over the limit and sending none: the answer must come without the body."""
    head = f"PUT {path} HTTP/1.1\r\nHost: registry\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {64 << 20}\r\n"
    answer = await send_raw(port, head.encode() + b"\r\n")
    assert answer is not None, "no answer to a PUT declaring 64 MiB"
    status, body = answer
    return status, json.loads(body)["errors"][0]["code"] if status >= 400 else None


async def test_manifests_over_the_size_limit_are_refused_and_not_stored(timed: LiveRegistry, tally: Tally) -> None:
    """``max_manifest_size``: a declared Content-Length over it is refused before any body byte is read, a
    chunked body is cut off once it passes it (413 SIZE_INVALID, nothing stored); manifests up to the limit
    that arrive in several pieces, chunked or not, are stored whole."""
    name, config, layer = "big/manifest", b'{"os":"linux"}', b"layer"
    rounds = scaled(2, 10)
    base = f"{timed.url}/v2/{name}/manifests"
    async with session() as http:
        await push_blobs(http, timed.url, name, [config, layer])
        over = padded_manifest(config, layer, MANIFEST_LIMIT + 1)
        refused = []
        for _ in range(rounds):
            refused.append(await declared_too_large(timed.port, f"/v2/{name}/manifests/declared"))
            refused.append(await put_manifest(http, f"{base}/chunked", trickled(over * 4, 8)))
            refused.append(await put_manifest(http, f"{base}/justover", over))
        stored = [await http.get(f"{base}/{tag}") for tag in ("declared", "chunked", "justover")]
        at_limit = padded_manifest(config, layer, MANIFEST_LIMIT)
        whole = [await put_manifest(http, f"{base}/trickled", trickled(at_limit, 4))]
        whole.append(await put_manifest(http, f"{base}/sized", at_limit))
        async with http.get(f"{base}/trickled") as resp:
            roundtrip = await resp.read()
    accepted = sum(status < 400 for status, _ in refused)
    kept = sum(resp.status != 404 for resp in stored)
    tally.record(
        "Hostile input",
        f"manifest over max_manifest_size ({MANIFEST_LIMIT} B): declared, chunked, exact+1",
        tried=len(refused),
        accepted=accepted,
        stored=kept,
    )
    assert (accepted, kept) == (0, 0), refused
    assert set(refused) == {(413, "SIZE_INVALID")}
    assert whole == [(201, None), (201, None)]
    assert hashlib.sha256(roundtrip).hexdigest() == hashlib.sha256(at_limit).hexdigest()


async def post_status(http: aiohttp.ClientSession, base: str, who: str) -> tuple[int, str | None, str | None]:
    """POST a new session as client ``who``: (status, error code, Retry-After)."""
    async with http.post(f"{base}/v2/limits/sessions/blobs/uploads/", headers=client(who)) as resp:
        code = (await error_of(resp)) if resp.status >= 400 else None
        return resp.status, code, resp.headers.get("Retry-After")


async def test_upload_sessions_per_client_are_limited(counting: LiveRegistry, tally: Tally) -> None:
    """Concurrent POSTs from one client open at most ``upload_sessions_per_client`` sessions, the rest get 429
    TOOMANYREQUESTS with Retry-After; another client is not affected; finishing or cancelling a session frees
    its slot, and so does leaving it idle for ``upload_session_idle``."""
    clients = scaled(3, 20)
    posts = 4 * SESSIONS
    async with session() as http:
        answers = []
        for c in range(clients):
            who = f"10.0.2.{c + 1}"
            answers.append(await asyncio.gather(*(post_status(http, counting.url, who) for _ in range(posts))))
        opened = [sum(status == 202 for status, _, _ in per_client) for per_client in answers]
        refusals = {answer for per_client in answers for answer in per_client if answer[0] != 202}
        async with http.get(f"{counting.url}/v2/") as resp:
            assert resp.status == 200
        await asyncio.sleep(2 * TIMEOUT + 0.2)
        after_idle = await post_status(http, counting.url, "10.0.2.1")
    bypassed = sum(max(0, n - SESSIONS) for n in opened)
    tally.record(
        "Hostile input",
        f"concurrent upload sessions over upload_sessions_per_client ({SESSIONS})",
        tried=clients * posts,
        limit_bypassed=bypassed,
        refused=sum(posts - n for n in opened),
    )
    assert opened == [SESSIONS] * clients
    assert {(status, code) for status, code, _ in refusals} == {(429, "TOOMANYREQUESTS")}
    assert {retry for _, _, retry in refusals} <= {"1", "2"}, refusals
    assert after_idle[0] == 202


async def test_finished_and_cancelled_sessions_free_their_slot(counting: LiveRegistry) -> None:
    """A client at its limit that cancels one session, or finishes one, may open another."""
    who = "10.0.4.1"
    async with session() as http:
        locations = [await start_upload(http, counting.url, "limits/free", who) for _ in range(SESSIONS)]
        assert (await post_status(http, counting.url, who))[0] == 429
        async with http.delete(counting.url + locations[0], headers=client(who)) as resp:
            assert resp.status == 204
        assert (await post_status(http, counting.url, who))[0] == 202
        assert (await post_status(http, counting.url, who))[0] == 429
        async with http.put(f"{counting.url}{locations[1]}?digest={digest(b'x')}", data=b"x") as resp:
            assert resp.status == 201
        assert (await post_status(http, counting.url, who))[0] == 202


async def burst_of(http: aiohttp.ClientSession, base: str, who: str, count: int) -> list[tuple[int, str | None]]:
    """``count`` requests from ``who``, one after another as fast as they go: (status, Retry-After) of each."""
    answers = []
    for _ in range(count):
        async with http.get(f"{base}/v2/", headers=client(who)) as resp:
            if resp.status == 429:
                assert await error_of(resp) == "TOOMANYREQUESTS"
            answers.append((resp.status, resp.headers.get("Retry-After")))
    return answers


async def test_request_rate_is_limited_per_client_and_recovers(counting: LiveRegistry, tally: Tally) -> None:
    """Over ``burst`` + ``requests_per_second`` a client gets 429 TOOMANYREQUESTS with Retry-After; another
    client is served meanwhile; after Retry-After the first client is served again."""
    rounds = scaled(2, 10)
    count = 4 * BURST
    bypassed = refused = 0
    async with session() as http:
        for r in range(rounds):
            who = f"10.0.5.{r + 1}"
            started = time.monotonic()
            answers = await burst_of(http, counting.url, who, count)
            allowed = BURST + RATE * (time.monotonic() - started)
            served = sum(status == 200 for status, _ in answers)
            bypassed += max(0, served - int(allowed))
            refused += count - served
            assert served < count, "the flood was never refused"
            assert {answer for answer in answers if answer[0] != 200} == {(429, "1")}
            assert (await burst_of(http, counting.url, f"10.0.6.{r + 1}", 1))[0][0] == 200
            await asyncio.sleep(1.0)
            assert (await burst_of(http, counting.url, who, 1))[0][0] == 200
    tally.record(
        "Hostile input",
        f"request flood over requests_per_second {RATE:g} / burst {BURST}",
        tried=rounds * count,
        limit_bypassed=bypassed,
        refused=refused,
    )
    assert bypassed == 0
