"""Blob GET/HEAD/DELETE, ranges and conditional requests."""

from __future__ import annotations

import requests

from registry.app import create_app
from registry.config import S3Storage, Settings
from tests.registry.conftest import Client, ClientFactory
from tests.support.oci import digest, error_code, push_blob
from tests.support.s3 import S3Server

DATA = bytes(range(256)) * 40  # 10240 bytes


async def test_get_and_head_serve_exact_bytes_with_headers(client: Client) -> None:
    d = await push_blob(client, "lib/app", DATA)
    resp = await client.get(f"/v2/lib/app/blobs/{d}")
    assert resp.status == 200
    assert await resp.read() == DATA
    assert resp.headers["Docker-Content-Digest"] == d
    assert resp.headers["Content-Length"] == str(len(DATA))
    assert resp.headers["ETag"] == f'"{d}"'
    assert resp.headers["Accept-Ranges"] == "bytes"
    head = await client.head(f"/v2/lib/app/blobs/{d}")
    assert head.status == 200
    assert head.headers["Content-Length"] == str(len(DATA))
    assert await head.read() == b""


async def test_range_requests(client: Client) -> None:
    d = await push_blob(client, "lib/app", DATA)
    cases = {"bytes=0-9": DATA[:10], "bytes=100-": DATA[100:], "bytes=-5": DATA[-5:], "bytes=10000-99999": DATA[10000:]}
    for header, expected in cases.items():
        resp = await client.get(f"/v2/lib/app/blobs/{d}", headers={"Range": header})
        assert resp.status == 206, header
        assert await resp.read() == expected, header
        start = len(DATA) - len(expected)
        assert resp.headers["Content-Range"] == f"bytes {start}-{len(DATA) - 1}/{len(DATA)}" or header == "bytes=0-9"


async def test_unsatisfiable_range_is_416(client: Client) -> None:
    d = await push_blob(client, "lib/app", DATA)
    for header in ("bytes=20000-", "bytes=50-10", "bytes=-0", "bytes=x-y"):
        resp = await client.get(f"/v2/lib/app/blobs/{d}", headers={"Range": header})
        assert resp.status == 416, header
        assert resp.headers["Content-Range"] == f"bytes */{len(DATA)}"


async def test_if_none_match_gives_304(client: Client) -> None:
    d = await push_blob(client, "lib/app", DATA)
    resp = await client.get(f"/v2/lib/app/blobs/{d}", headers={"If-None-Match": f'"{d}"'})
    assert resp.status == 304


async def test_unknown_blob_and_blob_of_another_repository(client: Client) -> None:
    d = await push_blob(client, "lib/app", DATA)
    resp = await client.get(f"/v2/lib/other/blobs/{d}")
    assert resp.status == 404
    assert await error_code(resp) == "BLOB_UNKNOWN"
    resp = await client.head(f"/v2/lib/app/blobs/{digest(b'nope')}")
    assert resp.status == 404


async def test_delete_unlinks_blob(client: Client) -> None:
    d = await push_blob(client, "lib/app", DATA)
    resp = await client.delete(f"/v2/lib/app/blobs/{d}")
    assert resp.status == 202
    assert (await client.get(f"/v2/lib/app/blobs/{d}")).status == 404
    again = await client.delete(f"/v2/lib/app/blobs/{d}")
    assert again.status == 404
    assert await error_code(again) == "BLOB_UNKNOWN"


async def test_malformed_digests_are_400_never_500(client: Client) -> None:
    for bad in (
        "sha256:totallywrong",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256:" + "A" * 64,
        "nocolon",
        "sha256:",
    ):
        resp = await client.get(f"/v2/lib/app/blobs/{bad}")
        assert resp.status in (400, 404), bad
        if resp.status == 400:
            assert await error_code(resp) == "DIGEST_INVALID", bad
    resp = await client.get("/v2/lib/app/blobs/sha256:totallywrong")
    assert resp.status == 400


async def test_sha512_blobs(client: Client) -> None:
    d = digest(DATA, "sha512")
    resp = await client.post(f"/v2/lib/app/blobs/uploads/?digest={d}", data=DATA)
    assert resp.status == 201
    got = await client.get(f"/v2/lib/app/blobs/{d}")
    assert await got.read() == DATA


async def test_s3_redirect_sends_client_to_presigned_url(aiohttp_client: ClientFactory, s3: S3Server) -> None:
    storage = S3Storage(**s3.driver_settings(s3.new_bucket(), redirect=True))
    client = await aiohttp_client(create_app(Settings(storage=storage)))
    d = await push_blob(client, "lib/app", DATA)
    resp = await client.get(f"/v2/lib/app/blobs/{d}", allow_redirects=False)
    assert resp.status == 307
    assert resp.headers["Docker-Content-Digest"] == d
    assert requests.get(resp.headers["Location"], timeout=10).content == DATA
    head = await client.head(f"/v2/lib/app/blobs/{d}")
    assert head.status == 200
    assert head.headers["Content-Length"] == str(len(DATA))
