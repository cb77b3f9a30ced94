"""How many S3 requests a push costs: the store asks S3 only what it needs (a budget per step, so a change that
makes a push chattier fails here rather than only in the benchmark)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from registry.errors import ErrorCode, RegistryError
from registry.reference import Digest
from registry.store import Store
from registry.store import blobs as blobs_module
from registry.store.paths import key
from storage.checked import Checked
from storage.s3 import S3Driver, S3Settings
from storage.s3_settings import MIN_PART
from tests.support.s3 import S3Server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Counted(S3Driver):
    """The S3 driver, counting the S3 operations it sends."""

    def __init__(self, config: S3Settings) -> None:
        super().__init__(config)
        self.calls: Counter[str] = Counter()
        self.running: set[str] = set()
        self.alongside: set[frozenset[str]] = set()  # the paths asked about while another one was

    async def _call(self, client: Any, path: str, operation: str, kwargs: dict[str, Any]) -> Any:
        self.calls[operation] += 1
        self.alongside.update(frozenset((path, other)) for other in self.running)
        self.running.add(path)
        try:
            return await super()._call(client, path, operation, kwargs)
        finally:
            self.running.discard(path)

    def take(self) -> Counter[str]:
        """The operations counted since the last take."""
        taken, self.calls = self.calls, Counter()
        return taken


@pytest.fixture
async def counted(s3: S3Server) -> AsyncIterator[tuple[Store, Counted]]:
    driver = Counted(S3Settings(**s3.driver_settings(s3.new_bucket())))
    yield Store.build(Checked(driver)), driver
    await driver.close()


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _upload(store: Store, data: bytes) -> tuple[Digest, str]:
    digest = Digest.of(data)
    upload_id = await store.uploads.start("app")
    await store.uploads.finish("app", upload_id, digest, _body(data))
    return digest, upload_id


async def test_a_push_asks_s3_only_what_it_needs(counted: tuple[Store, Counted]) -> None:
    store, driver = counted
    layer, upload_id = await _upload(store, b"layer bytes")
    # the session record (put, check), the bytes (no unfinished upload to resume, no object yet, put), the blob
    # (no pointer, no data: a pointer is put), the repository link, the session record deleted (no listing: it is
    # all the session holds once its bytes are the blob)
    assert driver.take() == Counter(put_object=4, head_object=2, get_object=3, delete_object=1)
    # questions that do not depend on each other are asked at once
    assert {
        frozenset((key("upload_started", name="app", upload=upload_id), key("upload_data", upload=upload_id))),
        frozenset((key("blob_object", digest=layer), key("blob_data", digest=layer))),
    } <= driver.alongside
    config, _ = await _upload(store, b"{}")
    driver.take()

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(config), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": str(layer), "size": 11}],
        }
    ).encode()
    await store.manifests.put("app", "latest", manifest, OCI_MANIFEST, [])
    # per blob its link (where its bytes are, this process knows: it stored them); the manifest bytes (no data, no
    # pointer yet: put), its revision link, its tag
    assert driver.take() == Counter(head_object=4, put_object=3)

    await store.manifests.put("app", "v2", manifest, OCI_MANIFEST, [])
    # the same image under another tag: the links, the bytes found where manifests live, revision link and tag
    assert driver.take() == Counter(head_object=3, put_object=2)

    assert (await store.manifests.get("app", "latest")).body == manifest
    assert driver.take() == Counter(get_object=1)  # the tag; its revision record and the bytes come from memory
    assert (await store.manifests.get("app", Digest.of(manifest))).body == manifest
    assert driver.take() == Counter(get_object=1)  # by digest: the revision record, which says it is there
    other = Store.build(Checked(driver))  # another process: the tag, the revision record, where the bytes are
    assert (await other.manifests.get("app", "latest")).body == manifest  # (no pointer; data, read) and the bytes
    assert driver.take() == Counter(get_object=4, head_object=1)


async def test_where_blobs_are_is_asked_again_after_a_while(
    counted: tuple[Store, Counted], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, driver = counted
    layer, _ = await _upload(store, b"layer")
    assert await store.blobs.linked("app", layer) is not None
    driver.take()
    assert await store.blobs.linked("app", layer) is not None
    assert driver.take() == Counter(head_object=1)  # the link only
    monkeypatch.setattr(blobs_module, "LOCATED_FOR", 0.0)
    assert await store.blobs.linked("app", layer) is not None
    assert driver.take() == Counter(head_object=1, get_object=1)  # the link, and the pointer read again

    other = Store.build(Checked(driver))  # another process knows nothing: it reads the pointer
    assert await other.blobs.linked("app", layer) is not None
    assert driver.take() == Counter(head_object=1, get_object=1)


async def test_a_chunk_costs_its_part_and_a_few_small_requests(counted: tuple[Store, Counted]) -> None:
    store, driver = counted
    chunk = os.urandom(MIN_PART)  # the smallest part S3 takes; the driver's parts are 10 MiB
    upload_id = await store.uploads.start("app")
    await store.uploads.append("app", upload_id, _body(chunk), 0)
    driver.take()
    await store.uploads.append("app", upload_id, _body(chunk), len(chunk))
    # the session record; the multipart state and the committed object (none), the tail (empty: the last chunk
    # went up as a part, no bytes to read back); the chunk as a part; the empty tail and the state
    assert driver.take() == Counter(head_object=1, get_object=3, upload_part=1, put_object=2)
    with pytest.raises(RegistryError) as refused:  # a chunk from the wrong offset: nothing is written
        await store.uploads.append("app", upload_id, _body(chunk), 0)
    assert refused.value.code is ErrorCode.RANGE_INVALID
    assert driver.take() == Counter(head_object=1, get_object=3)
    assert await store.uploads.offset("app", upload_id) == 2 * len(chunk)


async def test_a_blob_get_reads_its_link_and_where_its_bytes_are_only_once_a_while(
    counted: tuple[Store, Counted],
) -> None:
    store, driver = counted
    layer, _ = await _upload(store, b"layer")
    driver.take()
    for _ in range(2):
        assert (await store.blobs.stat("app", layer)).size == 5
        assert driver.take() == Counter(head_object=1)  # the link; where the bytes are, this process knows
    other = Store.build(Checked(driver))
    assert (await other.blobs.stat("app", layer)).size == 5
    assert driver.take() == Counter(head_object=1, get_object=1)  # the link and the pointer
    assert (await other.blobs.stat("app", layer)).size == 5
    assert driver.take() == Counter(head_object=1)
