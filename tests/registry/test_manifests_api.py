"""Manifest PUT/GET/HEAD/DELETE for every supported media type, and push-time validation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from registry.errors import ErrorCode, RegistryError
from registry.reference import Digest
from registry.store import Store
from storage.memory import MemoryDriver
from tests.registry.conftest import Client
from tests.support.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY_JSON,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    digest,
    error_code,
    image_manifest,
    push_blob,
    push_image,
)


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
async def test_put_get_head_by_tag_and_digest(client: Client, media_type: str) -> None:
    d, body = await push_image(client, "lib/app", "v1", media_type=media_type)
    assert d == digest(body)
    for ref in ("v1", d):
        resp = await client.get(f"/v2/lib/app/manifests/{ref}")
        assert resp.status == 200
        assert await resp.read() == body
        assert resp.headers["Content-Type"] == media_type
        assert resp.headers["Docker-Content-Digest"] == d
        head = await client.head(f"/v2/lib/app/manifests/{ref}")
        assert head.status == 200
        assert head.headers["Content-Length"] == str(len(body))
        assert head.headers["Docker-Content-Digest"] == d


async def test_exact_bytes_are_kept(client: Client) -> None:
    config, layer = b"{}", b"layer"
    await push_blob(client, "lib/app", config)
    await push_blob(client, "lib/app", layer)
    manifest = image_manifest(config, [layer])
    body = ("  " + json.dumps(manifest, indent=7) + "\n\n").encode()
    resp = await client.put("/v2/lib/app/manifests/odd", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert resp.status == 201
    assert resp.headers["Docker-Content-Digest"] == digest(body)
    assert await (await client.get("/v2/lib/app/manifests/odd")).read() == body


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
async def test_index_requires_children(client: Client, media_type: str) -> None:
    child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
    d1, b1 = await push_image(client, "lib/multi", "amd64", media_type=child_type)
    d2, b2 = await push_image(client, "lib/multi", "arm64", layers=[b"arm layer"], media_type=child_type)
    index = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            descriptor(child_type, b1, platform={"architecture": "amd64", "os": "linux"}),
            descriptor(child_type, b2, platform={"architecture": "arm64", "os": "linux"}),
        ],
    }
    body = json.dumps(index).encode()
    resp = await client.put("/v2/lib/multi/manifests/latest", data=body, headers={"Content-Type": media_type})
    assert resp.status == 201
    got = await client.get("/v2/lib/multi/manifests/latest")
    assert got.headers["Content-Type"] == media_type
    index["manifests"].append(descriptor(child_type, b"not pushed"))
    bad = json.dumps(index).encode()
    resp = await client.put("/v2/lib/multi/manifests/broken", data=bad, headers={"Content-Type": media_type})
    assert resp.status == 400
    assert await error_code(resp) == "MANIFEST_BLOB_UNKNOWN"
    assert d1 != d2


async def test_missing_blob_is_manifest_blob_unknown_and_nothing_stored(client: Client) -> None:
    config = b"{}"
    await push_blob(client, "lib/app", config)
    body = json.dumps(image_manifest(config, [b"never uploaded"])).encode()
    resp = await client.put("/v2/lib/app/manifests/v1", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert resp.status == 400
    assert await error_code(resp) == "MANIFEST_BLOB_UNKNOWN"
    assert (await client.get("/v2/lib/app/manifests/v1")).status == 404
    assert (await client.get(f"/v2/lib/app/manifests/{digest(body)}")).status == 404


async def test_blob_of_another_repository_does_not_count(client: Client) -> None:
    config, layer = b"{}", b"elsewhere"
    await push_blob(client, "lib/other", layer)
    await push_blob(client, "lib/app", config)
    body = json.dumps(image_manifest(config, [layer])).encode()
    resp = await client.put("/v2/lib/app/manifests/v1", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert await error_code(resp) == "MANIFEST_BLOB_UNKNOWN"


async def test_wrong_descriptor_size_is_invalid(client: Client) -> None:
    config, layer = b"{}", b"layer"
    await push_blob(client, "lib/app", config)
    await push_blob(client, "lib/app", layer)
    manifest = image_manifest(config, [layer])
    manifest["layers"][0]["size"] = 999
    resp = await client.put(
        "/v2/lib/app/manifests/v1", data=json.dumps(manifest), headers={"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 400
    assert await error_code(resp) == "MANIFEST_INVALID"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
        (b'{"schemaVersion": 1, "config": {}, "layers": []}', OCI_MANIFEST),
        (b'{"schemaVersion": 2, "mediaType": "application/x-unknown", "layers": []}', "application/x-unknown"),
        (b'{"schemaVersion": 2, "mediaType": "%s"}' % OCI_MANIFEST.encode(), OCI_MANIFEST),
        (b'{"schemaVersion": 2, "mediaType": "%s", "manifests": []}' % OCI_INDEX.encode(), OCI_MANIFEST),
        (b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:bad", "size": 1}, "layers": []}', ""),
        (b"\xff\xfe", OCI_MANIFEST),
    ],
)
async def test_invalid_manifests_are_rejected(client: Client, body: bytes, content_type: str) -> None:
    resp = await client.put("/v2/lib/app/manifests/v1", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400
    assert await error_code(resp) == "MANIFEST_INVALID"
    assert (await client.get("/v2/lib/app/manifests/v1")).status == 404


async def test_manifest_size_limit(client: Client) -> None:
    big = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 << 20) + b'"}'
    resp = await client.put("/v2/lib/app/manifests/big", data=big, headers={"Content-Type": OCI_MANIFEST})
    assert resp.status == 413
    assert (await client.get("/v2/lib/app/manifests/big")).status == 404


async def test_put_by_digest_must_match(client: Client) -> None:
    config, layer = b"{}", b"layer"
    await push_blob(client, "lib/app", config)
    await push_blob(client, "lib/app", layer)
    body = json.dumps(image_manifest(config, [layer])).encode()
    resp = await client.put(f"/v2/lib/app/manifests/{digest(b'x')}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert resp.status == 400
    assert await error_code(resp) == "DIGEST_INVALID"
    resp = await client.put(f"/v2/lib/app/manifests/{digest(body)}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/lib/app/manifests/{digest(body)}"


async def test_manifest_without_media_type_field(client: Client) -> None:
    config, layer = b"{}", b"layer"
    await push_blob(client, "lib/app", config)
    await push_blob(client, "lib/app", layer)
    manifest = image_manifest(config, [layer])
    del manifest["mediaType"]
    resp = await client.put(
        "/v2/lib/app/manifests/v1", data=json.dumps(manifest), headers={"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 201
    got = await client.get("/v2/lib/app/manifests/v1")
    assert got.headers["Content-Type"] == OCI_MANIFEST


async def test_artifact_with_subject_answers_oci_subject(client: Client) -> None:
    subject_digest, subject_body = await push_image(client, "lib/app", "v1")
    empty = b"{}"
    await push_blob(client, "lib/app", empty)
    sig = b"signature bytes"
    await push_blob(client, "lib/app", sig)
    artifact = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": descriptor(EMPTY_JSON, empty),
        "layers": [descriptor("application/octet-stream", sig)],
        "subject": descriptor(OCI_MANIFEST, subject_body),
        "annotations": {"org.example.kind": "sig"},
    }
    body = json.dumps(artifact).encode()
    resp = await client.put(f"/v2/lib/app/manifests/{digest(body)}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert resp.status == 201
    assert resp.headers["OCI-Subject"] == subject_digest


async def test_subject_may_be_absent(client: Client) -> None:
    empty = b"{}"
    await push_blob(client, "lib/app", empty)
    missing_subject = {"mediaType": OCI_MANIFEST, "digest": digest(b"nothing"), "size": 7}
    artifact = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": descriptor(EMPTY_JSON, empty),
        "layers": [],
        "subject": missing_subject,
    }
    resp = await client.put(
        "/v2/lib/app/manifests/sbom", data=json.dumps(artifact), headers={"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 201
    refs = await (await client.get(f"/v2/lib/app/referrers/{digest(b'nothing')}")).json(content_type=None)
    assert [m["artifactType"] for m in refs["manifests"]] == ["application/vnd.example.sbom"]


async def test_delete_by_tag_keeps_manifest(client: Client) -> None:
    d, _ = await push_image(client, "lib/app", "v1")
    resp = await client.put(
        "/v2/lib/app/manifests/v2",
        data=await (await client.get("/v2/lib/app/manifests/v1")).read(),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status == 201
    assert (await client.delete("/v2/lib/app/manifests/v1")).status == 202
    assert (await client.get("/v2/lib/app/manifests/v1")).status == 404
    assert (await client.get("/v2/lib/app/manifests/v2")).status == 200
    assert (await client.get(f"/v2/lib/app/manifests/{d}")).status == 200
    again = await client.delete("/v2/lib/app/manifests/v1")
    assert again.status == 404
    assert await error_code(again) == "MANIFEST_UNKNOWN"


async def test_delete_by_digest_untags(client: Client) -> None:
    d, body = await push_image(client, "lib/app", "v1")
    await client.put("/v2/lib/app/manifests/v2", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert (await client.delete(f"/v2/lib/app/manifests/{d}")).status == 202
    for ref in ("v1", "v2", d):
        assert (await client.get(f"/v2/lib/app/manifests/{ref}")).status == 404
    tags = await (await client.get("/v2/lib/app/tags/list")).json()
    assert tags["tags"] == []


async def test_unknown_manifest(client: Client) -> None:
    resp = await client.get("/v2/lib/app/manifests/nope")
    assert resp.status == 404
    assert await error_code(resp) == "MANIFEST_UNKNOWN"
    head = await client.head(f"/v2/lib/app/manifests/{digest(b'x')}")
    assert head.status == 404


async def test_extra_tags_by_query(client: Client) -> None:
    config, layer = b"{}", b"layer"
    await push_blob(client, "lib/app", config)
    await push_blob(client, "lib/app", layer)
    body = json.dumps(image_manifest(config, [layer])).encode()
    resp = await client.put(
        f"/v2/lib/app/manifests/{digest(body)}?tag=a&tag=b", data=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 201
    assert (await (await client.get("/v2/lib/app/tags/list")).json())["tags"] == ["a", "b"]


async def test_a_tag_moved_or_deleted_by_another_process_is_seen_at_once() -> None:
    """Two processes on one storage: what the first remembers of a manifest it served by tag never hides a tag that
    the second moved to another manifest, or a manifest the second deleted."""
    driver = MemoryDriver()
    first, second = Store.build(driver), Store.build(driver)
    one, two = await _stored_manifest(second, b"one"), await _stored_manifest(second, b"two")
    await second.manifests.put("app", "latest", one, OCI_MANIFEST, [])
    assert (await first.manifests.get("app", "latest")).body == one

    await second.manifests.put("app", "latest", two, OCI_MANIFEST, [])
    assert (await first.manifests.get("app", "latest")).body == two

    await second.manifests.delete("app", Digest.of(two))
    with pytest.raises(RegistryError) as unknown:
        await first.manifests.get("app", "latest")
    assert unknown.value.code is ErrorCode.MANIFEST_UNKNOWN
    with pytest.raises(RegistryError):
        await first.manifests.get("app", Digest.of(two))


OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


async def _stored_manifest(store: Store, layer: bytes) -> bytes:
    """An image manifest whose config and layer ``store`` holds in repository ``app``."""
    descriptors = []
    for data, media_type in ((b"{}", "application/vnd.oci.image.config.v1+json"), (layer, OCI_LAYER)):
        digest = Digest.of(data)
        upload_id = await store.uploads.start("app")
        await store.uploads.finish("app", upload_id, digest, _body(data))
        descriptors.append({"mediaType": media_type, "digest": str(digest), "size": len(data)})
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptors[0], "layers": descriptors[1:]}
    return json.dumps(manifest).encode()


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data
