"""Upload sessions: monolithic, chunked, streamed, ordering, status, cancel, mounts, restarts."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from registry.app import create_app
from registry.config import Settings
from registry.errors import ErrorCode, RegistryError
from registry.handlers import common
from registry.reference import Digest
from registry.store import Store, uploads
from registry.store.uploads import HASH_INLINE, buffered
from storage.driver import StorageDriver
from storage.errors import StorageFull
from storage.filesystem import FilesystemDriver, FilesystemWriter
from storage.memory import MemoryDriver
from tests.registry.conftest import Client, ClientFactory
from tests.support.oci import digest, error_code, push_blob

DATA = b"0123456789" * 1000


async def open_session(client: Client, name: str = "lib/app") -> str:
    resp = await client.post(f"/v2/{name}/blobs/uploads/")
    assert resp.status == 202
    assert resp.headers["Range"] == "0-0"
    assert resp.headers["Docker-Upload-UUID"] in resp.headers["Location"]
    return resp.headers["Location"]


async def test_chunked_upload_in_order(client: Client) -> None:
    location = await open_session(client)
    for start in range(0, len(DATA), 3000):
        chunk = DATA[start : start + 3000]
        headers = {"Content-Range": f"{start}-{start + len(chunk) - 1}", "Content-Type": "application/octet-stream"}
        resp = await client.patch(location, data=chunk, headers=headers)
        assert resp.status == 202, await resp.text()
        assert resp.headers["Range"] == f"0-{start + len(chunk) - 1}"
        location = resp.headers["Location"]
    status = await client.get(location)
    assert status.status == 204
    assert status.headers["Range"] == f"0-{len(DATA) - 1}"
    resp = await client.put(f"{location}?digest={digest(DATA)}")
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/lib/app/blobs/{digest(DATA)}"
    assert await (await client.get(f"/v2/lib/app/blobs/{digest(DATA)}")).read() == DATA
    assert (await client.get(location)).status == 404


async def test_streamed_patch_without_content_range_and_last_chunk_in_put(client: Client) -> None:
    location = await open_session(client)
    resp = await client.patch(location, data=DATA[:5000])
    assert resp.status == 202
    resp = await client.put(f"{resp.headers['Location']}?digest={digest(DATA)}", data=DATA[5000:])
    assert resp.status == 201
    assert await (await client.get(f"/v2/lib/app/blobs/{digest(DATA)}")).read() == DATA


async def test_out_of_order_and_overlapping_chunks_are_416(client: Client) -> None:
    location = await open_session(client)
    resp = await client.patch(location, data=DATA[:100], headers={"Content-Range": "0-99"})
    assert resp.status == 202
    for rng, chunk in (("200-299", DATA[200:300]), ("50-149", DATA[50:150]), ("0-99", DATA[:100])):
        bad = await client.patch(location, data=chunk, headers={"Content-Range": rng})
        assert bad.status == 416, rng
        assert bad.headers["Range"] == "0-99"
    mismatch = await client.patch(location, data=DATA[100:150], headers={"Content-Range": "100-199"})
    assert mismatch.status == 416
    status = await client.get(location)
    assert status.headers["Range"] == "0-99"


async def test_digest_mismatch_keeps_nothing(client: Client) -> None:
    wrong = digest(b"something else")
    resp = await client.post(f"/v2/lib/app/blobs/uploads/?digest={wrong}", data=DATA)
    assert resp.status == 400
    assert await error_code(resp) == "DIGEST_INVALID"
    assert (await client.head(f"/v2/lib/app/blobs/{wrong}")).status == 404
    assert (await client.head(f"/v2/lib/app/blobs/{digest(DATA)}")).status == 404
    location = await open_session(client)
    await client.patch(location, data=DATA)
    resp = await client.put(f"{location}?digest={wrong}")
    assert resp.status == 400
    assert (await client.get(location)).status == 404


async def test_put_without_digest_and_with_bad_digest(client: Client) -> None:
    location = await open_session(client)
    resp = await client.put(location, data=DATA)
    assert resp.status == 400
    assert await error_code(resp) == "DIGEST_INVALID"
    resp = await client.put(f"{location}?digest=sha256:short", data=DATA)
    assert resp.status == 400


async def test_unknown_upload_ids(client: Client) -> None:
    for upload in ("00000000-0000-0000-0000-000000000000", "not-a-uuid", "..", "%2e%2e"):
        for method in ("GET", "PATCH", "PUT", "DELETE"):
            resp = await client.request(method, f"/v2/lib/app/blobs/uploads/{upload}?digest={digest(DATA)}", data=b"x")
            assert resp.status in (404, 400), (method, upload)
            if resp.status == 404:
                assert await error_code(resp) in ("BLOB_UPLOAD_UNKNOWN", "NOT_FOUND")


async def test_session_of_another_repository_is_unknown(client: Client) -> None:
    location = await open_session(client, "lib/app")
    upload = location.rsplit("/", 1)[1]
    resp = await client.get(f"/v2/lib/other/blobs/uploads/{upload}")
    assert resp.status == 404
    assert await error_code(resp) == "BLOB_UPLOAD_UNKNOWN"


async def test_cancel(client: Client) -> None:
    location = await open_session(client)
    await client.patch(location, data=DATA)
    assert (await client.delete(location)).status == 204
    assert (await client.get(location)).status == 404
    assert (await client.delete(location)).status == 404


async def test_mount_from_repository(client: Client) -> None:
    d = await push_blob(client, "lib/source", DATA)
    resp = await client.post(f"/v2/lib/target/blobs/uploads/?mount={d}&from=lib/source")
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/lib/target/blobs/{d}"
    assert resp.headers["Docker-Content-Digest"] == d
    assert await (await client.get(f"/v2/lib/target/blobs/{d}")).read() == DATA


async def test_mount_falls_back_to_session_when_source_lacks_blob(client: Client) -> None:
    await push_blob(client, "lib/source", DATA)
    missing = digest(b"missing")
    resp = await client.post(f"/v2/lib/target/blobs/uploads/?mount={missing}&from=lib/source")
    assert resp.status == 202
    assert "/v2/lib/target/blobs/uploads/" in resp.headers["Location"]


async def test_automatic_mount_without_from(client: Client) -> None:
    d = await push_blob(client, "lib/source", DATA)
    resp = await client.post(f"/v2/lib/target/blobs/uploads/?mount={d}")
    assert resp.status == 201
    assert (await client.head(f"/v2/lib/target/blobs/{d}")).status == 200


async def test_same_blob_in_many_repositories_is_stored_once(
    aiohttp_client: ClientFactory, fs_settings: Settings
) -> None:
    client = await aiohttp_client(create_app(fs_settings))
    for i in range(5):
        await push_blob(client, f"team/repo{i}", DATA)
    root: Path = fs_settings.storage.root  # type: ignore[union-attr]
    stored = [p for p in root.rglob("data") if p.is_file() and "blobs" in p.parts]
    assert len(stored) == 1
    assert stored[0].read_bytes() == DATA


async def test_session_survives_restart(aiohttp_client: ClientFactory, fs_settings: Settings) -> None:
    first = await aiohttp_client(create_app(fs_settings))
    location = await open_session(first)
    resp = await first.patch(location, data=DATA[:4000], headers={"Content-Range": "0-3999"})
    assert resp.status == 202
    await first.close()
    second = await aiohttp_client(create_app(fs_settings))
    status = await second.get(location)
    assert status.status == 204
    assert status.headers["Range"] == "0-3999"
    resp = await second.patch(location, data=DATA[4000:], headers={"Content-Range": f"4000-{len(DATA) - 1}"})
    assert resp.status == 202
    resp = await second.put(f"{location}?digest={digest(DATA)}")
    assert resp.status == 201
    assert await (await second.get(f"/v2/lib/app/blobs/{digest(DATA)}")).read() == DATA


async def test_a_filesystem_session_keeps_its_bytes_in_its_own_directory(
    aiohttp_client: ClientFactory, fs_settings: Settings
) -> None:
    """Where publishing is a rename, a session's bytes sit beside its record: a push creates no ``objects/``
    directory (creating a directory costs as much as a small write), and finishing or cancelling leaves
    nothing of the session behind. Finishing keeps the repository's emptied ``_uploads`` folder for its next
    upload (as Distribution does)."""
    client = await aiohttp_client(create_app(fs_settings))
    root: Path = fs_settings.storage.root  # type: ignore[union-attr]
    uploads = root / "v1/repositories/lib/app/_uploads"
    for finish in (True, False):
        location = await open_session(client)
        resp = await client.patch(location, data=DATA, headers={"Content-Range": f"0-{len(DATA) - 1}"})
        assert resp.status == 202
        session = uploads / location.rsplit("/", 1)[1]
        assert sorted(p.name for p in session.iterdir()) == ["data", "startedat"]
        assert (session / "data").read_bytes() == DATA
        resp = await (client.put(f"{location}?digest={digest(DATA)}") if finish else client.delete(location))
        assert resp.status == (201 if finish else 204)
        assert not session.exists()
        assert not uploads.exists() or list(uploads.iterdir()) == []
        assert not (root / "v1/objects").exists()
    assert await (await client.get(f"/v2/lib/app/blobs/{digest(DATA)}")).read() == DATA
    location = await open_session(client)
    assert (await client.put(f"{location}?digest={digest(DATA)}", data=DATA)).status == 201
    assert uploads.is_dir()
    assert list(uploads.iterdir()) == []


async def test_large_streamed_upload(client: Client) -> None:
    block = hashlib.sha256(b"seed").digest() * 32768  # 1 MiB
    body = block * 9

    async def gen() -> Any:
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    location = await open_session(client)
    resp = await client.patch(location, data=gen())
    assert resp.status == 202
    assert resp.headers["Range"] == f"0-{len(body) - 1}"
    resp = await client.put(f"{location}?digest={digest(body)}")
    assert resp.status == 201


async def test_a_request_that_waited_for_the_session_finds_it_finished() -> None:
    """Two finishing PUTs of one session at once (a misbehaving client): the first publishes the blob; the second,
    which waited for the session meanwhile, finds it gone (BLOB_UPLOAD_UNKNOWN), and writes nothing."""
    store = Store.build(MemoryDriver())
    data = b"layer bytes"
    blob = Digest.of(data)
    upload_id = await store.uploads.start("lib/app")
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        await release.wait()
        yield data

    first = asyncio.ensure_future(store.uploads.finish("lib/app", upload_id, blob, slow_body()))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(store.uploads.finish("lib/app", upload_id, blob, _chunks(b"other")))
    await asyncio.sleep(0.05)
    assert not second.done()  # waiting for the first
    release.set()
    assert await first == len(data)
    with pytest.raises(RegistryError) as raised:
        await second
    assert raised.value.code is ErrorCode.BLOB_UPLOAD_UNKNOWN
    assert await store.blobs.linked("lib/app", blob) is not None


async def _chunks(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _count_reads(driver: StorageDriver) -> list[str]:
    """The keys ``driver`` streams from here on (the re-reading of an upload's bytes goes through its reader)."""
    reads: list[str] = []
    plain = driver.reader

    def counted(path: str, offset: int = 0) -> AsyncIterator[bytes]:
        reads.append(path)
        return plain(path, offset)

    driver.reader = counted  # type: ignore[method-assign]
    return reads


async def test_a_session_started_by_another_process_is_hashed_as_its_bytes_arrive(tmp_path: Path) -> None:
    """docker and skopeo often POST on one connection and PATCH on another, so under ``--workers`` the bytes arrive
    in a process that did not start the session: where writers append in place (the filesystem) it hashes them
    from the first byte, and the final PUT there needs no re-reading. Bytes that arrived in two processes are
    re-read once, and the digest is still checked."""
    driver = FilesystemDriver(tmp_path / "data")
    reads = _count_reads(driver)
    starter, receiver = Store.build(driver), Store.build(driver)  # two processes over one storage
    blob = Digest.of(DATA)
    upload_id = await starter.uploads.start("lib/app")
    assert await receiver.uploads.append("lib/app", upload_id, _chunks(DATA[:6000], DATA[6000:])) == len(DATA)
    assert await receiver.uploads.finish("lib/app", upload_id, blob, None) == len(DATA)
    assert reads == []
    assert await receiver.blobs.linked("lib/app", blob) is not None

    split = await starter.uploads.start("lib/app")
    await receiver.uploads.append("lib/app", split, _chunks(DATA[:4000]))
    await starter.uploads.append("lib/app", split, _chunks(DATA[4000:]))  # the rest arrives in the other one
    with pytest.raises(RegistryError) as raised:
        await starter.uploads.finish("lib/app", split, Digest.of(DATA[:-1] + b"x"), None)
    assert raised.value.code is ErrorCode.DIGEST_INVALID
    assert len(reads) == 1  # re-read once to check the digest


async def test_where_writers_replace_content_only_the_starting_process_trusts_its_hash() -> None:
    """On S3 (and in memory) two writers of one session at once both start from the same content and the last
    one's bytes win with the same size, so a process that did not start the session re-reads the bytes."""
    driver = MemoryDriver()
    reads = _count_reads(driver)
    starter, receiver = Store.build(driver), Store.build(driver)
    upload_id = await starter.uploads.start("lib/app")
    await receiver.uploads.append("lib/app", upload_id, _chunks(DATA))
    assert await receiver.uploads.finish("lib/app", upload_id, Digest.of(DATA), None) == len(DATA)
    assert len(reads) == 1


async def test_bytes_another_process_appends_during_a_put_are_verified(tmp_path: Path) -> None:
    """A misbehaving client sends a PATCH to one worker while its final PUT with a body is still arriving at
    another: the PUT's writer finds more bytes in the file than it wrote, so its running hash is not trusted
    and the digest it names (of its own bytes only) is refused; nothing is published."""
    driver = FilesystemDriver(tmp_path / "data")
    putter, patcher = Store.build(driver), Store.build(driver)
    upload_id = await putter.uploads.start("lib/app")
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield DATA[:4000]
        arrived.set()
        await release.wait()

    own = Digest.of(DATA[:4000])
    put = asyncio.ensure_future(putter.uploads.finish("lib/app", upload_id, own, slow_body()))
    await arrived.wait()
    await patcher.uploads.append("lib/app", upload_id, _chunks(DATA[4000:]))  # lands in the file meanwhile
    release.set()
    with pytest.raises(RegistryError) as raised:
        await put
    assert raised.value.code is ErrorCode.DIGEST_INVALID
    assert await putter.blobs.linked("lib/app", own) is None


async def test_pieces_start_small_and_grow_to_the_buffer() -> None:
    """The first pieces of a body are small, so storing a small blob starts while the rest of it arrives; then they
    grow to the buffer's size. Every byte comes out once, in order."""
    chunk = bytes(range(256)) * 256  # 64 KiB, about what a socket read gives
    body = [chunk] * 48  # 3 MiB
    pieces = [piece async for piece in buffered(_chunks(*body), size=1 << 20, first=256 << 10)]
    assert [len(p) for p in pieces] == [256 << 10, 512 << 10, 1 << 20, 1 << 20, 256 << 10]
    assert b"".join(pieces) == b"".join(body)


class _HeldHasher:
    """SHA-256 whose updates (in worker threads) wait until ``release`` is set: shows what runs while a piece is
    hashed."""

    def __init__(self, release: threading.Event) -> None:
        self._inner = hashlib.sha256()
        self._release = release
        self.name = self._inner.name

    def update(self, data: bytes) -> None:
        if not self._release.wait(timeout=10):
            raise TimeoutError("the hash waited for the commit, which waited for the hash")
        self._inner.update(data)

    def hexdigest(self) -> str:
        return self._inner.hexdigest()


async def test_the_last_piece_is_hashed_while_the_writer_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final PUT does not wait for the hash before making the bytes durable: the hash of the last piece and the
    writer's commit (the fsync) run at the same time, and the digest is checked once both are done."""
    release = threading.Event()
    monkeypatch.setattr(uploads, "_new_hasher", lambda: _HeldHasher(release))
    plain_commit = FilesystemWriter.commit

    async def commit_releasing(self: FilesystemWriter) -> None:
        release.set()  # the hash can only end once the commit has started
        await plain_commit(self)

    monkeypatch.setattr(FilesystemWriter, "commit", commit_releasing)
    store = Store.build(FilesystemDriver(tmp_path / "data"))
    data = b"x" * (HASH_INLINE * 4)  # hashed in a thread
    upload_id = await store.uploads.start("lib/app")
    finished = store.uploads.finish("lib/app", upload_id, Digest.of(data), _chunks(data))
    assert await asyncio.wait_for(finished, timeout=20) == len(data)
    assert await store.blobs.linked("lib/app", Digest.of(data)) is not None


async def test_after_a_failed_commit_the_bytes_are_verified_by_re_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A final PUT whose fsync fails (disk full) answers the error and keeps the session, but no longer trusts its
    running hash (the hash of its last piece may not have finished): the retried PUT re-reads the bytes to check
    the digest."""
    driver = FilesystemDriver(tmp_path / "data")
    reads = _count_reads(driver)
    store = Store.build(driver)
    data = DATA * 20
    plain_fsync = os.fsync
    failures = [OSError(errno.ENOSPC, "No space left on device")]

    def failing_once(fd: int) -> None:
        if failures:
            raise failures.pop()
        plain_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_once)
    upload_id = await store.uploads.start("lib/app")
    with pytest.raises(StorageFull):
        await store.uploads.finish("lib/app", upload_id, Digest.of(data), _chunks(data))
    assert await store.uploads.offset("lib/app", upload_id) == len(data)  # written, not yet durable: kept
    assert await store.uploads.finish("lib/app", upload_id, Digest.of(data), None) == len(data)
    assert len(reads) == 1
    assert failures == []


async def test_a_streamed_body_is_read_ahead(aiohttp_client: ClientFactory) -> None:
    """``body()`` raises the read-ahead of the request it streams to READ_AHEAD (aiohttp keeps reading the socket
    until twice that waits unread), so an upload's next piece arrives while the last one is stored; other requests
    keep aiohttp's default."""
    seen: dict[str, tuple[int, int]] = {}

    async def streamed(request: web.Request) -> web.Response:
        chunks = common.body(request)
        seen["streamed"] = request.content.get_read_buffer_limits()
        async for _ in chunks:
            pass
        return web.Response()

    async def other(request: web.Request) -> web.Response:
        seen["other"] = request.content.get_read_buffer_limits()
        await request.read()
        return web.Response()

    app = web.Application()
    app.router.add_put("/streamed", streamed)
    app.router.add_put("/other", other)
    client = await aiohttp_client(app)
    for path in ("/streamed", "/other"):
        assert (await client.put(path, data=b"x" * 1000)).status == 200
    assert seen["streamed"] == (common.READ_AHEAD, 2 * common.READ_AHEAD)
    assert seen["other"][1] < 2 * common.READ_AHEAD
