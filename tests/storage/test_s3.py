"""S3-specific behaviour beyond the shared contract: no multipart upload is left behind; reads are prefetched."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import botocore.exceptions
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from storage import s3 as s3_driver
from storage.errors import PathNotFound, StorageUnavailable
from storage.s3 import S3Driver, S3Settings, prefetched
from storage.s3_settings import MIN_PART
from storage.s3_writer import PartBody
from tests.support.s3 import S3Server


async def test_deleting_a_folder_aborts_unfinished_multipart_uploads(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    driver = S3Driver(S3Settings(**s3.driver_settings(bucket, prefix="r", multipart_chunk_size=5 << 20)))
    writer = await driver.writer("/uploads/u1/data")
    await writer.write(os.urandom(6 << 20))
    await writer.close()
    client = s3.client()
    assert len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    await driver.delete("/uploads/u1")
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    await driver.close()


async def test_redirect_url_is_presigned(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    driver = S3Driver(S3Settings(**s3.driver_settings(bucket, redirect=True, redirect_ttl=60)))
    await driver.put_content("/blob", b"payload")
    url = await driver.redirect_url("/blob")
    assert url is not None
    assert "Signature" in url or "X-Amz-Signature" in url
    import requests

    assert requests.get(url, timeout=10).content == b"payload"
    await driver.close()


@contextlib.asynccontextmanager
async def slow_completions(endpoint: str, delay: float) -> AsyncIterator[str]:
    """A loopback proxy in front of the S3 server at ``endpoint`` that holds back the answer to each
    CompleteMultipartUpload (a POST with ``uploadId``) for ``delay`` seconds, silent, as moto assembling a large
    object is; yields the proxy's URL."""

    async def forward(request: web.Request) -> web.Response:
        if request.method == "POST" and "uploadId" in request.query:
            await asyncio.sleep(delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with session.request(
            request.method, endpoint + request.path_qs, headers=headers, data=await request.read()
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
            return web.Response(status=answer.status, body=body, headers=kept)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


def silent_s3(got: list[str]) -> web.Application:
    """An endpoint that takes every request and never answers, as a hung S3 does; notes each request it got
    ("METHOD /path") in ``got``."""

    async def hang(request: web.Request) -> web.Response:
        got.append(f"{request.method} {request.path}")
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    return app


@pytest.mark.parametrize("attempts", [1, 2, 3])
async def test_a_hung_s3_is_tried_max_attempts_times_in_all(
    s3: S3Server, aiohttp_server: Callable[..., Awaitable[TestServer]], attempts: int
) -> None:
    """``max_attempts`` counts the first try: a hung S3 holds a call ``max_attempts`` read timeouts, then the
    call fails as unavailable (botocore's own ``max_attempts`` would count only the retries)."""
    got: list[str] = []
    server = await aiohttp_server(silent_s3(got), shutdown_timeout=0.1)
    url = str(server.make_url("")).rstrip("/")
    settings = {**s3.driver_settings(s3.new_bucket(), read_timeout=0.3, max_attempts=attempts), "endpoint_url": url}
    driver = S3Driver(S3Settings(**settings))
    try:
        with pytest.raises(StorageUnavailable):
            await driver.get_content("/some/key")
    finally:
        await driver.close()
    assert len(got) == attempts, got


@pytest.mark.parametrize(("assemble_timeout", "completes"), [(20.0, True), (1.0, False)])
async def test_completing_a_multipart_upload_may_outlast_the_read_timeout(
    s3: S3Server, assemble_timeout: float, completes: bool
) -> None:
    """S3 assembles a multipart upload before it answers; only ``assemble_timeout`` bounds that silence, not the
    short ``read_timeout`` every other call has (a 1 GiB upload on moto: ~13 s)."""
    bucket = s3.new_bucket()
    data = os.urandom(6 << 20)
    async with slow_completions(s3.endpoint, delay=2.5) as proxy:
        settings = s3.driver_settings(
            bucket, multipart_chunk_size=5 << 20, read_timeout=1.0, max_attempts=1, assemble_timeout=assemble_timeout
        )
        driver = S3Driver(S3Settings(**{**settings, "endpoint_url": proxy}))
        writer = await driver.writer("/big")
        await writer.write(data)
        try:
            if completes:
                await writer.commit()
                assert await driver.get_content("/big") == data
            else:
                with pytest.raises(StorageUnavailable):
                    await writer.commit()
        finally:
            await driver.close()


class FakeBody:
    """A botocore-like body: ``read(n)`` hands out ``chunks`` one by one, then b"" (or raises ``fail``)."""

    def __init__(self, chunks: int, fail: Exception | None = None) -> None:
        self.left = chunks
        self.fail = fail
        self.reads = 0
        self.closed = False

    def read(self, _size: int) -> bytes:
        self.reads += 1
        if self.left == 0:
            if self.fail is not None:
                raise self.fail
            return b""
        self.left -= 1
        return b"x" * 10

    def close(self) -> None:
        self.closed = True


async def test_prefetch_delivers_everything_in_order() -> None:
    body = FakeBody(chunks=50)
    assert b"".join([chunk async for chunk in prefetched(body, depth=3)]) == b"x" * 500
    assert body.left == 0
    assert body.closed


async def test_prefetch_stops_reading_when_the_consumer_stops() -> None:
    body = FakeBody(chunks=10_000)
    stream = prefetched(body, depth=2)
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert body.reads < 10  # read ahead by at most a few chunks, then stopped
    assert body.closed


class SlowBody(FakeBody):
    """A body whose reads take a while, as a network read does."""

    def read(self, size: int) -> bytes:
        time.sleep(0.05)
        return super().read(size)


async def test_a_consumer_cancelled_mid_stream_leaves_nothing_behind() -> None:
    """The download's task is cancelled (the client went away) while the thread is reading: the stream is closed
    once that read returns, and the thread's last hand-offs raise nothing in the event loop."""
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    body = SlowBody(chunks=1000)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in prefetched(body, depth=2):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert body.closed  # the generator waited for the thread's read in progress, then closed the stream
    reads = body.reads
    await asyncio.sleep(0.2)
    assert body.reads == reads < 10  # and the thread read nothing more
    assert problems == []


async def test_prefetch_hands_read_errors_to_the_consumer() -> None:
    body = FakeBody(chunks=3, fail=ConnectionResetError("peer went away"))
    received: list[bytes] = []

    async def consume() -> None:
        async for chunk in prefetched(body):
            received.append(chunk)

    with pytest.raises(ConnectionResetError):
        await consume()
    assert len(received) == 3


async def test_a_stale_state_without_its_tail_is_dropped_by_the_next_commit(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    driver = S3Driver(S3Settings(**s3.driver_settings(bucket, prefix="r")))
    await driver.put_object("/up/data", b'{"upload_id": null, "parts": [], "parts_size": 0}', suffix="~mpu.json")
    writer = await driver.writer("/up/data", append=True)  # no tail: starts over
    assert writer.size == 0
    await writer.write(b"fresh")
    await writer.commit()
    assert await driver.get_content("/up/data") == b"fresh"
    assert [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]] == ["r/up/data"]
    await driver.close()


async def test_a_writer_closed_with_a_whole_part_leaves_no_tail_to_read_back(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    driver = S3Driver(S3Settings(**s3.driver_settings(bucket)))
    first, second = os.urandom(MIN_PART + 1), os.urandom(MIN_PART)  # each less than a 10 MiB part
    writer = await driver.writer("/up/data")
    await writer.write(first)
    await writer.close()
    sizes = {o["Key"]: o["Size"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert sizes == {"up/data~tail": 0, "up/data~mpu.json": sizes["up/data~mpu.json"]}
    again = await driver.writer("/up/data", append=True)
    assert again.size == len(first)
    await again.write(second)
    await again.commit()
    assert await driver.get_content("/up/data") == first + second
    assert [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]] == ["up/data"]
    await driver.close()


def test_a_part_body_reads_its_pieces_as_one_seekable_file() -> None:
    pieces: list[bytes | memoryview] = [b"abc", memoryview(b"-defgh")[1:], b"", b"ijklmnop"]
    body = PartBody(pieces)
    whole = b"abcdefghijklmnop"
    assert len(body) == len(whole)
    assert body.read(2) == b"ab"
    assert body.read(5) == b"cdefg"
    assert body.tell() == 7
    assert body.read() == whole[7:]
    assert body.read(4) == b""
    for position in range(len(whole) + 1):  # botocore seeks back to re-read a part (checksums, retries)
        assert body.seek(position) == position
        assert body.read() == whole[position:]
    assert body.seek(-3, io.SEEK_END) == len(whole) - 3
    assert body.read(10) == b"nop"
    into = bytearray(6)
    body.seek(1)
    assert body.readinto(into) == 6
    assert bytes(into) == whole[1:7]


async def test_a_writer_sends_parts_as_they_were_written(s3: S3Server) -> None:
    """Parts are cut across the written pieces, whatever their sizes; what is read back is what was written."""
    driver = S3Driver(S3Settings(**s3.driver_settings(s3.new_bucket(), multipart_chunk_size=MIN_PART)))
    data = os.urandom(3 * MIN_PART + 12345)
    writer = await driver.writer("/odd/data")
    sizes = [1, MIN_PART - 2, 3, 700_000, MIN_PART, 11, len(data)]
    offset = 0
    for size in sizes:
        await writer.write(data[offset : offset + size])
        offset = min(offset + size, len(data))
    await writer.commit()
    assert await driver.get_content("/odd/data") == data
    await driver.close()


async def test_no_checksum_is_computed_or_checked_beyond_what_s3_requires(s3: S3Server) -> None:
    """Blob bytes are covered by their digests: objects and parts go out without botocore's default CRC32 (no
    checksum header, no aws-chunked trailer), reads do not ask for one; DeleteObjects keeps the checksum S3
    requires."""
    bucket = s3.new_bucket()
    driver = S3Driver(S3Settings(**s3.driver_settings(bucket, multipart_chunk_size=MIN_PART)))
    sent: dict[str, list[dict[str, str]]] = {}

    def record(request: Any, event_name: str, **_: Any) -> None:
        sent.setdefault(event_name.rsplit(".", 1)[1], []).append(
            {k.lower(): str(v) for k, v in request.headers.items()}
        )

    for client in (driver._client, driver._slow_client):
        client.meta.events.register("before-sign.s3", record)
    await driver.put_content("/small", b"small")
    writer = await driver.writer("/large")
    await writer.write(os.urandom(MIN_PART + 1))
    await writer.commit()
    assert await driver.get_content("/small") == b"small"
    async for _chunk in driver.reader("/large"):
        pass
    await driver.delete("/small")
    for operation in ("PutObject", "UploadPart", "GetObject"):
        for headers in sent[operation]:
            assert not [name for name in headers if "checksum" in name or name == "x-amz-trailer"], operation
            assert "aws-chunked" not in headers.get("content-encoding", ""), operation
    assert [name for headers in sent["DeleteObjects"] for name in headers if "checksum" in name or "md5" in name]
    await driver.close()


@pytest.fixture
def small_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """S3's 5 GiB CopyObject limit and the copied part size lowered to S3's smallest part."""
    monkeypatch.setattr(s3_driver, "COPY_AT_ONCE", MIN_PART)
    monkeypatch.setattr(s3_driver, "COPY_PART", MIN_PART)


@pytest.mark.usefixtures("small_copies")
async def test_a_move_beyond_one_copy_object_copies_in_parts(s3: S3Server) -> None:
    """Above S3's 5 GiB CopyObject limit (lowered here) a move is a multipart upload of copied ranges."""
    bucket = s3.new_bucket()
    driver = S3Driver(S3Settings(**s3.driver_settings(bucket)))
    data = os.urandom(2 * MIN_PART + 12345)
    await driver.put_content("/src", data)
    ranges: list[str] = []
    driver._slow_client.meta.events.register(
        "before-call.s3.UploadPartCopy", lambda params, **_: ranges.append(params["headers"]["x-amz-copy-source-range"])
    )
    await driver.move("/src", "/dst")
    assert sorted(ranges) == sorted(
        [f"bytes=0-{MIN_PART - 1}", f"bytes={MIN_PART}-{2 * MIN_PART - 1}", f"bytes={2 * MIN_PART}-{len(data) - 1}"]
    )
    assert await driver.get_content("/dst") == data
    with pytest.raises(PathNotFound):
        await driver.stat("/src")
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    await driver.close()


@pytest.mark.usefixtures("small_copies")
async def test_a_failed_copy_in_parts_leaves_no_part_and_keeps_the_source(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    driver = S3Driver(S3Settings(**s3.driver_settings(bucket)))
    await driver.put_content("/src", os.urandom(MIN_PART + 1))

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params["query_string"].get("partNumber") == 2:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3")

    driver._slow_client.meta.events.register("before-call.s3.UploadPartCopy", refuse)
    with pytest.raises(StorageUnavailable):
        await driver.move("/src", "/dst")
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(PathNotFound):
        await driver.stat("/dst")
    assert (await driver.stat("/src")).size == MIN_PART + 1
    await driver.close()
