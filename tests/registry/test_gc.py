"""Garbage collection through the store, on every driver: what it deletes, what it keeps, what it reports."""

from __future__ import annotations

import asyncio
import json
import random

from registry import keys
from registry.index import forget_collected
from registry.store import Store
from registry.store.gc import CLOCK_SLACK, GcOptions, GcReport, collect
from registry.store.paths import ROOT
from tests.registry.conftest import Client
from tests.support.oci import OCI_INDEX, OCI_MANIFEST, descriptor, digest, push_blob, push_image

NOW = GcOptions(grace=0)


def store_of(client: Client) -> Store:
    return client.server.app[keys.STORE]  # type: ignore[union-attr,no-any-return]


async def settle() -> None:
    """Let every record age past the grace period of 0 (S3 times are whole seconds)."""
    await asyncio.sleep(CLOCK_SLACK + 1.1)


async def gc(client: Client, options: GcOptions = NOW) -> GcReport:
    """Collect as ``dockyard gc`` and the server's ``gc.interval`` do: then tell the metadata index."""
    await settle()
    report = await collect(store_of(client), options)
    index = client.server.app[keys.METADATA_INDEX]  # type: ignore[union-attr]
    await forget_collected(index, report.manifests_deleted)
    return report


async def stored_files(client: Client) -> list[str]:
    return sorted([info.path async for info in store_of(client).driver.walk(ROOT)])


async def blob_status(client: Client, name: str, blob: str) -> int:
    return (await client.get(f"/v2/{name}/blobs/{blob}")).status


async def manifest_blobs(client: Client, name: str, reference: str) -> list[str]:
    resp = await client.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    assert resp.status == 200, await resp.text()
    manifest = json.loads(await resp.read())
    return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]


async def test_unreferenced_blobs_go_referenced_stay(client: Client) -> None:
    shared = b"shared base layer"
    await push_image(client, "lib/keep", "v1", layers=[shared, b"only in keep"])
    gone, gone_body = await push_image(client, "lib/keep", "v2", layers=[shared, b"only in v2"])
    gone_config = json.loads(gone_body)["config"]["size"]
    orphan = await push_blob(client, "lib/keep", b"uploaded, never referenced")
    assert (await client.delete(f"/v2/lib/keep/manifests/{gone}")).status == 202
    report = await gc(client)
    # v2's manifest bytes, its config and its own layer, and the orphan; the shared layer stays.
    assert report.blobs_deleted == 4
    assert report.blob_bytes == len(gone_body) + gone_config + len(b"only in v2") + len(b"uploaded, never referenced")
    assert report.records_deleted == 3  # layer links of the v2 config, the v2 layer and the orphan
    assert report.manifests_deleted == []
    for blob in await manifest_blobs(client, "lib/keep", "v1"):
        assert await blob_status(client, "lib/keep", blob) == 200
    assert await blob_status(client, "lib/keep", digest(b"only in v2")) == 404
    assert await blob_status(client, "lib/keep", orphan) == 404
    again = await gc(client)
    assert (again.blobs_deleted, again.records_deleted) == (0, 0)
    assert again.blobs_kept == report.blobs_kept == 4  # v1's manifest, config, shared and own layer


async def test_report_counts_bytes(client: Client) -> None:
    await push_blob(client, "lib/bytes", b"x" * 1000)
    await push_blob(client, "lib/bytes", b"y" * 234)
    report = await gc(client)
    assert (report.blobs_deleted, report.blob_bytes) == (2, 1234)


async def test_dry_run_reports_and_deletes_nothing(client: Client) -> None:
    await push_image(client, "lib/dry", "v1")
    untagged, _ = await push_image(client, "lib/dry", "v2", layers=[b"v2 layer"])
    assert (await client.delete("/v2/lib/dry/manifests/v2")).status == 202
    before = await stored_files(client)
    report = await gc(client, GcOptions(grace=0, delete_untagged=True, dry_run=True))
    assert report.dry_run
    assert report.manifests_deleted == [f"lib/dry@{untagged}"]
    assert report.blobs_deleted == 3
    assert await stored_files(client) == before
    real = await collect(store_of(client), GcOptions(grace=0, delete_untagged=True))
    assert (real.manifests_deleted, real.blobs_deleted, real.blob_bytes) == (
        report.manifests_deleted,
        report.blobs_deleted,
        report.blob_bytes,
    )


async def test_grace_period_keeps_recent_content(client: Client) -> None:
    await push_blob(client, "lib/fresh", b"just uploaded, manifest not pushed yet")
    report = await collect(store_of(client), GcOptions(grace=3600))
    assert (report.blobs_deleted, report.records_deleted) == (0, 0)
    assert await blob_status(client, "lib/fresh", digest(b"just uploaded, manifest not pushed yet")) == 200


async def test_untagged_manifests_kept_unless_asked(client: Client) -> None:
    await push_image(client, "lib/untagged", "v1")
    await client.delete("/v2/lib/untagged/manifests/v1")
    report = await gc(client)
    assert report.manifests_deleted == []
    assert report.blobs_deleted == 0


async def push_index(client: Client, name: str, tag: str, children: list[tuple[str, bytes]]) -> str:
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {**descriptor(OCI_MANIFEST, body), "platform": {"os": "linux", "architecture": arch}}
            for arch, body in children
        ],
    }
    body = json.dumps(index).encode()
    resp = await client.put(f"/v2/{name}/manifests/{tag}", data=body, headers={"Content-Type": OCI_INDEX})
    assert resp.status == 201, await resp.text()
    return resp.headers["Docker-Content-Digest"]


async def push_by_digest(client: Client, name: str, layers: list[bytes], **extra: object) -> tuple[str, bytes]:
    """An image pushed by digest only (untagged), like the children of a multi-arch push."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "layers": len(layers)}).encode()
    for blob in [config, *layers]:
        await push_blob(client, name, blob)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer) for layer in layers],
            **extra,
        }
    ).encode()
    manifest_digest = digest(body)
    resp = await client.put(
        f"/v2/{name}/manifests/{manifest_digest}", data=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 201, await resp.text()
    return manifest_digest, body


async def test_delete_untagged_follows_indexes_and_referrers(client: Client) -> None:
    name = "lib/multi"
    amd, amd_body = await push_by_digest(client, name, [b"amd64 layer"])
    arm, arm_body = await push_by_digest(client, name, [b"arm64 layer"])
    index = await push_index(client, name, "latest", [("amd64", amd_body), ("arm64", arm_body)])
    subject = {"mediaType": OCI_INDEX, "digest": index, "size": 0}
    subject["size"] = len(await (await client.get(f"/v2/{name}/manifests/{index}")).read())
    signature, _ = await push_by_digest(client, name, [b"signature of the index"], subject=subject)
    lost, lost_body = await push_by_digest(client, name, [b"untagged, unreferenced"])
    lost_subject = {"mediaType": OCI_MANIFEST, "digest": lost, "size": len(lost_body)}
    lost_sbom, _ = await push_by_digest(client, name, [b"sbom of the lost one"], subject=lost_subject)
    report = await gc(client, GcOptions(grace=0, delete_untagged=True))
    assert sorted(report.manifests_deleted) == sorted([f"{name}@{lost}", f"{name}@{lost_sbom}"])
    for kept in (amd, arm, index, signature):
        assert (await client.head(f"/v2/{name}/manifests/{kept}")).status == 200
    for deleted in (lost, lost_sbom):
        assert (await client.head(f"/v2/{name}/manifests/{deleted}")).status == 404
    assert await blob_status(client, name, digest(b"signature of the index")) == 200
    assert await blob_status(client, name, digest(b"untagged, unreferenced")) == 404
    referrers = await (await client.get(f"/v2/{name}/referrers/{lost}")).json()
    assert referrers["manifests"] == []
    kept_referrers = await (await client.get(f"/v2/{name}/referrers/{index}")).json()
    assert [m["digest"] for m in kept_referrers["manifests"]] == [signature]


async def test_deleted_repository_leaves_nothing(client: Client) -> None:
    await push_image(client, "lib/doomed", "v1")
    await push_image(client, "lib/doomed", "v2", layers=[b"second"])
    for tag in ("v1", "v2"):
        assert (await client.delete(f"/v2/lib/doomed/manifests/{tag}")).status == 202
    await gc(client, GcOptions(grace=0, delete_untagged=True))
    assert await stored_files(client) == []
    assert (await (await client.get("/v2/_catalog")).json())["repositories"] == []


async def test_removed_repository_leaves_nothing_but_its_neighbours(client: Client) -> None:
    await push_image(client, "lib/app", "v1", layers=[b"shared", b"app"])
    await push_image(client, "lib/app/plugin", "p1", layers=[b"shared", b"plugin"])
    upload = await client.post("/v2/lib/app/blobs/uploads/")
    assert upload.status == 202
    await store_of(client).repos.remove("lib/app")
    await client.server.app[keys.METADATA_INDEX].repository_deleted("lib/app")  # type: ignore[union-attr]
    report = await gc(client)
    assert report.blobs_deleted == 3  # app's manifest, config and own layer
    remaining = await stored_files(client)
    assert [p for p in remaining if "/repositories/lib/app/_" in p] == []
    assert (await (await client.get("/v2/_catalog")).json())["repositories"] == ["lib/app/plugin"]
    for blob in await manifest_blobs(client, "lib/app/plugin", "p1"):
        assert await blob_status(client, "lib/app/plugin", blob) == 200


async def test_stale_uploads_purged_with_their_bytes(client: Client) -> None:
    resp = await client.post("/v2/lib/slow/blobs/uploads/")
    location = resp.headers["Location"]
    chunk = random.randbytes(11 << 20)  # beyond an S3 part: a multipart upload is open
    resp = await client.patch(location, data=chunk, headers={"Content-Type": "application/octet-stream"})
    assert resp.status == 202, await resp.text()
    kept = await collect(store_of(client), GcOptions(grace=0))
    assert kept.uploads_purged == 0
    report = await gc(client, GcOptions(grace=0, upload_max_age=0))
    assert (report.uploads_purged, report.upload_bytes) == (1, len(chunk))
    assert (await client.get(location)).status == 404
    assert await stored_files(client) == []
    driver = store_of(client).driver
    if driver.name == "s3":  # nothing stays billed: the session's multipart upload was aborted
        s3 = driver.inner  # type: ignore[attr-defined]
        listing = await s3.call("/", "list_multipart_uploads", Bucket=s3.bucket)
        assert listing.get("Uploads", []) == []


async def test_push_racing_gc_never_leaves_a_manifest_without_blobs(client: Client) -> None:
    """Pushes that reuse old garbage blobs while GC sweeps them: every manifest that lands is whole."""
    garbage = [f"old layer {i}".encode() for i in range(12)]
    for blob in garbage:
        await push_blob(client, "lib/old", blob)
    await settle()
    landed: list[tuple[str, str]] = []

    async def pusher(worker: int) -> None:
        for round_ in range(6):
            layers = [garbage[(worker + round_) % len(garbage)], f"new {worker}/{round_}".encode()]
            resp = None
            for _ in range(5):
                try:
                    manifest, _ = await push_image(client, f"lib/race{worker}", f"r{round_}", layers=layers)
                except AssertionError:
                    continue  # a blob vanished before the manifest was validated: the push failed cleanly
                resp = manifest
                break
            assert resp is not None
            landed.append((f"lib/race{worker}", f"r{round_}"))

    async def collector() -> None:
        for _ in range(4):
            await collect(store_of(client), NOW)

    await asyncio.gather(collector(), *(pusher(w) for w in range(4)))
    await settle()
    await collect(store_of(client), NOW)
    assert len(landed) == 24
    for never_reused in garbage[9:]:  # the collector did delete while the pushes went on
        assert await blob_status(client, "lib/old", digest(never_reused)) == 404
    for name, tag in landed:
        for blob in await manifest_blobs(client, name, tag):
            assert await blob_status(client, name, blob) == 200, f"{name}:{tag} lost {blob}"
