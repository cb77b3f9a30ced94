"""Tags list, catalog and referrers, with pagination and filtering."""

from __future__ import annotations

import json
from urllib.parse import unquote

from tests.registry.conftest import Client
from tests.support.oci import EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, descriptor, digest, error_code, push_blob, push_image


async def test_api_base(client: Client) -> None:
    resp = await client.get("/v2/")
    assert resp.status == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert await resp.json() == {}


async def test_tags_sorted_and_paginated(client: Client) -> None:
    d, body = await push_image(client, "lib/app", "b")
    for tag in ("a", "c", "B", "1.0", "latest"):
        resp = await client.put(f"/v2/lib/app/manifests/{tag}", data=body, headers={"Content-Type": OCI_MANIFEST})
        assert resp.status == 201
    full = await (await client.get("/v2/lib/app/tags/list")).json()
    expected = sorted(["a", "b", "c", "B", "1.0", "latest"])
    assert full == {"name": "lib/app", "tags": expected}
    seen: list[str] = []
    url = "/v2/lib/app/tags/list?n=2"
    while url:
        resp = await client.get(url)
        seen += (await resp.json())["tags"]
        link = resp.headers.get("Link")
        url = unquote(link.split(">")[0].lstrip("<")) if link else ""
        if link:
            assert link.endswith('rel="next"')
    assert seen == expected
    after = await (await client.get("/v2/lib/app/tags/list?last=b")).json()
    assert after["tags"] == [t for t in expected if t > "b"]
    zero = await client.get("/v2/lib/app/tags/list?n=0")
    assert (await zero.json())["tags"] == []
    assert d


async def test_tags_of_unknown_repository(client: Client) -> None:
    resp = await client.get("/v2/lib/nothing/tags/list")
    assert resp.status == 404
    assert await error_code(resp) == "NAME_UNKNOWN"


async def test_bad_page_size(client: Client) -> None:
    await push_image(client, "lib/app", "v1")
    resp = await client.get("/v2/lib/app/tags/list?n=-1")
    assert resp.status == 400


async def test_catalog(client: Client) -> None:
    for name in ("zeta/app", "alpha", "mid/dle/deep", "alpha/sub"):
        await push_image(client, name, "v1")
    await push_blob(client, "only/blobs", b"blob without manifest")
    full = await (await client.get("/v2/_catalog")).json()
    assert full["repositories"] == ["alpha", "alpha/sub", "mid/dle/deep", "zeta/app"]
    first = await client.get("/v2/_catalog?n=3")
    assert (await first.json())["repositories"] == ["alpha", "alpha/sub", "mid/dle/deep"]
    assert first.headers["Link"].startswith("</v2/_catalog?n=3&last=mid")
    rest = await (await client.get("/v2/_catalog?n=3&last=mid/dle/deep")).json()
    assert rest["repositories"] == ["zeta/app"]


async def push_referrer(client: Client, name: str, subject: bytes, artifact_type: str, note: str) -> str:
    empty = b"{}"
    await push_blob(client, name, empty)
    payload = note.encode()
    await push_blob(client, name, payload)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(EMPTY_JSON, empty),
        "layers": [descriptor("text/plain", payload)],
        "subject": descriptor(OCI_MANIFEST, subject),
        "annotations": {"note": note},
    }
    body = json.dumps(manifest).encode()
    resp = await client.put(f"/v2/{name}/manifests/{digest(body)}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert resp.status == 201
    return digest(body)


async def test_referrers_and_filter(client: Client) -> None:
    subject_digest, subject = await push_image(client, "lib/app", "v1")
    empty = await client.get(f"/v2/lib/app/referrers/{subject_digest}")
    assert empty.status == 200
    assert empty.headers["Content-Type"].startswith(OCI_INDEX)
    assert (await empty.json(content_type=None))["manifests"] == []
    sig = await push_referrer(client, "lib/app", subject, "application/vnd.example.sig", "signed")
    sbom = await push_referrer(client, "lib/app", subject, "application/vnd.example.sbom", "bill")
    index = await (await client.get(f"/v2/lib/app/referrers/{subject_digest}")).json(content_type=None)
    assert index["mediaType"] == OCI_INDEX
    by_digest = {m["digest"]: m for m in index["manifests"]}
    assert set(by_digest) == {sig, sbom}
    assert by_digest[sig]["artifactType"] == "application/vnd.example.sig"
    assert by_digest[sig]["annotations"] == {"note": "signed"}
    filtered = await client.get(f"/v2/lib/app/referrers/{subject_digest}?artifactType=application/vnd.example.sbom")
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in (await filtered.json(content_type=None))["manifests"]] == [sbom]
    assert (await client.delete(f"/v2/lib/app/manifests/{sig}")).status == 202
    index = await (await client.get(f"/v2/lib/app/referrers/{subject_digest}")).json(content_type=None)
    assert [m["digest"] for m in index["manifests"]] == [sbom]


async def test_referrers_bad_digest(client: Client) -> None:
    resp = await client.get("/v2/lib/app/referrers/sha256:nope")
    assert resp.status == 400
    assert await error_code(resp) == "DIGEST_INVALID"
