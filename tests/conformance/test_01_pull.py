"""Workflow "Pull": a port of ``conformance/01_pull_test.go`` (distribution-spec v1.1.1).

Each test is one Go spec, named in its ``# Go:`` comment as ``Pull / <context> / <spec text>``; they run
in the Go order and share :class:`PullState` (Go's ``tag`` variable).

Not ported: ``Pull / Setup / Get tag name from environment`` (``RunOnlyIfNot(runPullSetup)``: only
runs when ``OCI_TAG_NAME``, ``OCI_MANIFEST_DIGEST`` and ``OCI_BLOB_DIGEST`` name content already in a
remote registry, so it is always skipped against a fresh one).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conformance.harness import (
    DELETE_MANIFEST_BEFORE_BLOBS,
    Runner,
    Workflow,
    expect_2xx,
    expect_conforming_error,
    expect_optional_header,
    expect_status,
)
from tests.conformance.testdata import (
    INVALID_MANIFEST_CONTENT,
    MEDIA_TYPE_MANIFEST,
    NONEXISTENT_MANIFEST,
    TEST_TAG_NAME,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

assert DELETE_MANIFEST_BEFORE_BLOBS, "only the default teardown order (manifests first) is ported"


@dataclass
class PullState:
    """The Go workflow's variables."""

    tag: str = ""


WORKFLOW = Workflow("Pull", PullState)
spec = WORKFLOW.spec
Oci = Runner[PullState]
ACCEPT_MANIFEST = {"Accept": MEDIA_TYPE_MANIFEST}


# ---- Setup -------------------------------------------------------------------------------------------


# Go: Pull / Setup / Populate registry with test blob  (configs[0])
@spec("Setup", "Populate registry with test blob")
async def test_setup_populate_config_blob_0(oci: Oci) -> None:
    """POST an upload session, PUT configs[0] to its Location with ?digest=: 2xx."""
    config = oci.data.configs[0]
    resp = await oci.upload_blob(config.digest, config.content, config.content_length)
    expect_2xx(resp)


# Go: Pull / Setup / Populate registry with test blob  (configs[1]; the Go spec has the same text)
@spec("Setup", "Populate registry with test blob")
async def test_setup_populate_config_blob_1(oci: Oci) -> None:
    """POST an upload session, PUT configs[1] to its Location with ?digest=: 2xx."""
    config = oci.data.configs[1]
    resp = await oci.upload_blob(config.digest, config.content, config.content_length)
    expect_2xx(resp)


# Go: Pull / Setup / Populate registry with test layer
@spec("Setup", "Populate registry with test layer")
async def test_setup_populate_layer(oci: Oci) -> None:
    """POST an upload session, PUT the gzipped tar layer with ?digest=: 2xx."""
    data = oci.data
    resp = await oci.upload_blob(data.layer_blob_digest, data.layer_blob_data, data.layer_blob_content_length)
    expect_2xx(resp)


# Go: Pull / Setup / Populate registry with test manifest  (manifests[0] by tag)
@spec("Setup", "Populate registry with test manifest")
async def test_setup_populate_manifest_0_by_tag(oci: Oci) -> None:
    """PUT manifests[0] to /manifests/tagtest0: 2xx."""
    oci.state.tag = TEST_TAG_NAME
    resp = await oci.put_manifest(oci.state.tag, oci.data.manifests[0].content, MEDIA_TYPE_MANIFEST)
    expect_2xx(resp)


# Go: Pull / Setup / Populate registry with test manifest  (manifests[1] by digest; same Go text)
@spec("Setup", "Populate registry with test manifest")
async def test_setup_populate_manifest_1_by_digest(oci: Oci) -> None:
    """PUT manifests[1] to /manifests/<its digest>: 2xx."""
    manifest = oci.data.manifests[1]
    resp = await oci.put_manifest(manifest.digest, manifest.content, MEDIA_TYPE_MANIFEST)
    expect_2xx(resp)


# ---- Pull blobs --------------------------------------------------------------------------------------


# Go: Pull / Pull blobs / HEAD request to nonexistent blob should result in 404 response
@spec("Pull blobs", "HEAD request to nonexistent blob should result in 404 response")
async def test_head_nonexistent_blob_404(oci: Oci) -> None:
    """HEAD /blobs/sha256(hello world): 404."""
    resp = await oci.do("HEAD", "/v2/<name>/blobs/<digest>", digest=oci.data.dummy_digest)
    expect_status(resp, 404)


# Go: Pull / Pull blobs / HEAD request to existing blob should yield 200
@spec("Pull blobs", "HEAD request to existing blob should yield 200")
async def test_head_existing_blob_200(oci: Oci) -> None:
    """HEAD /blobs/<configs[0]>: 200, and Docker-Content-Digest (if sent) is that digest."""
    digest = oci.data.configs[0].digest
    resp = await oci.do("HEAD", "/v2/<name>/blobs/<digest>", digest=digest)
    expect_status(resp, 200)
    expect_optional_header(resp, "Docker-Content-Digest", digest)


# Go: Pull / Pull blobs / GET nonexistent blob should result in 404 response
@spec("Pull blobs", "GET nonexistent blob should result in 404 response")
async def test_get_nonexistent_blob_404(oci: Oci) -> None:
    """GET /blobs/sha256(hello world): 404."""
    resp = await oci.do("GET", "/v2/<name>/blobs/<digest>", digest=oci.data.dummy_digest)
    expect_status(resp, 404)


# Go: Pull / Pull blobs / GET request to existing blob URL should yield 200
@spec("Pull blobs", "GET request to existing blob URL should yield 200")
async def test_get_existing_blob_200(oci: Oci) -> None:
    """GET /blobs/<configs[0]>: 200."""
    resp = await oci.do("GET", "/v2/<name>/blobs/<digest>", digest=oci.data.configs[0].digest)
    expect_status(resp, 200)


# ---- Pull manifests ----------------------------------------------------------------------------------


# Go: Pull / Pull manifests / HEAD request to nonexistent manifest should return 404
@spec("Pull manifests", "HEAD request to nonexistent manifest should return 404")
async def test_head_nonexistent_manifest_404(oci: Oci) -> None:
    """HEAD /manifests/.INVALID_MANIFEST_NAME: 404."""
    resp = await oci.do("HEAD", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST)
    expect_status(resp, 404)


# Go: Pull / Pull manifests / HEAD request to manifest[0] path (digest) should yield 200 response
@spec("Pull manifests", "HEAD request to manifest[0] path (digest) should yield 200 response")
async def test_head_manifest_0_by_digest_200(oci: Oci) -> None:
    """HEAD /manifests/<manifests[0]> (Accept: OCI manifest): 200, Docker-Content-Digest (if sent) matches."""
    digest = oci.data.manifests[0].digest
    resp = await oci.do("HEAD", "/v2/<name>/manifests/<digest>", digest=digest, headers=ACCEPT_MANIFEST)
    expect_status(resp, 200)
    expect_optional_header(resp, "Docker-Content-Digest", digest)


# Go: Pull / Pull manifests / HEAD request to manifest[1] path (digest) should yield 200 response
@spec("Pull manifests", "HEAD request to manifest[1] path (digest) should yield 200 response")
async def test_head_manifest_1_by_digest_200(oci: Oci) -> None:
    """HEAD /manifests/<manifests[1]> (Accept: OCI manifest): 200, Docker-Content-Digest (if sent) matches."""
    digest = oci.data.manifests[1].digest
    resp = await oci.do("HEAD", "/v2/<name>/manifests/<digest>", digest=digest, headers=ACCEPT_MANIFEST)
    expect_status(resp, 200)
    expect_optional_header(resp, "Docker-Content-Digest", digest)


# Go: Pull / Pull manifests / HEAD request to manifest path (tag) should yield 200 response
@spec("Pull manifests", "HEAD request to manifest path (tag) should yield 200 response")
async def test_head_manifest_by_tag_200(oci: Oci) -> None:
    """HEAD /manifests/tagtest0: 200, Docker-Content-Digest (if sent) is manifests[0]'s digest."""
    assert oci.state.tag, "Expect(tag).ToNot(BeEmpty()): the setup did not set the tag"
    resp = await oci.do("HEAD", "/v2/<name>/manifests/<reference>", reference=oci.state.tag, headers=ACCEPT_MANIFEST)
    expect_status(resp, 200)
    expect_optional_header(resp, "Docker-Content-Digest", oci.data.manifests[0].digest)


# Go: Pull / Pull manifests / GET nonexistent manifest should return 404
@spec("Pull manifests", "GET nonexistent manifest should return 404")
async def test_get_nonexistent_manifest_404(oci: Oci) -> None:
    """GET /manifests/.INVALID_MANIFEST_NAME: 404."""
    resp = await oci.do("GET", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST)
    expect_status(resp, 404)


# Go: Pull / Pull manifests / GET request to manifest[0] path (digest) should yield 200 response
@spec("Pull manifests", "GET request to manifest[0] path (digest) should yield 200 response")
async def test_get_manifest_0_by_digest_200(oci: Oci) -> None:
    """GET /manifests/<manifests[0]> (Accept: OCI manifest): 200."""
    digest = oci.data.manifests[0].digest
    resp = await oci.do("GET", "/v2/<name>/manifests/<digest>", digest=digest, headers=ACCEPT_MANIFEST)
    expect_status(resp, 200)


# Go: Pull / Pull manifests / GET request to manifest[1] path (digest) should yield 200 response
@spec("Pull manifests", "GET request to manifest[1] path (digest) should yield 200 response")
async def test_get_manifest_1_by_digest_200(oci: Oci) -> None:
    """GET /manifests/<manifests[1]> (Accept: OCI manifest): 200."""
    digest = oci.data.manifests[1].digest
    resp = await oci.do("GET", "/v2/<name>/manifests/<digest>", digest=digest, headers=ACCEPT_MANIFEST)
    expect_status(resp, 200)


# Go: Pull / Pull manifests / GET request to manifest path (tag) should yield 200 response
@spec("Pull manifests", "GET request to manifest path (tag) should yield 200 response")
async def test_get_manifest_by_tag_200(oci: Oci) -> None:
    """GET /manifests/tagtest0 (Accept: OCI manifest): 200."""
    assert oci.state.tag, "Expect(tag).ToNot(BeEmpty()): the setup did not set the tag"
    resp = await oci.do("GET", "/v2/<name>/manifests/<reference>", reference=oci.state.tag, headers=ACCEPT_MANIFEST)
    expect_status(resp, 200)


# ---- Error codes -------------------------------------------------------------------------------------


# Go: Pull / Error codes / 400 response body should contain OCI-conforming JSON message
@spec("Error codes", "400 response body should contain OCI-conforming JSON message")
async def test_400_body_is_oci_error(oci: Oci) -> None:
    """GET /manifests/sha256:totallywrong (with a junk body): 400 or 404; a 400 carries a spec error code."""
    resp = await oci.do(
        "GET",
        "/v2/<name>/manifests/<reference>",
        reference="sha256:totallywrong",
        headers={"Content-Type": MEDIA_TYPE_MANIFEST},
        body=INVALID_MANIFEST_CONTENT,
    )
    expect_status(resp, 400, 404)
    if resp.status == 400:
        expect_conforming_error(resp)


# ---- Teardown (OCI_DELETE_MANIFEST_BEFORE_BLOBS=true: manifests, then blobs) ------------------------


# Go: Pull / Teardown / Delete manifest[0] created in setup
@spec("Teardown", "Delete manifest[0] created in setup")
async def test_teardown_delete_manifest_0(oci: Oci) -> None:
    """DELETE /manifests/<manifests[0]>: 2xx or 405."""
    resp = await oci.do("DELETE", "/v2/<name>/manifests/<digest>", digest=oci.data.manifests[0].digest)
    expect_2xx(resp, 405)


# Go: Pull / Teardown / Delete manifest[1] created in setup
@spec("Teardown", "Delete manifest[1] created in setup")
async def test_teardown_delete_manifest_1(oci: Oci) -> None:
    """DELETE /manifests/<manifests[1]>: 2xx or 405."""
    resp = await oci.do("DELETE", "/v2/<name>/manifests/<digest>", digest=oci.data.manifests[1].digest)
    expect_2xx(resp, 405)


# Go: Pull / Teardown / Delete config[0] blob created in setup
@spec("Teardown", "Delete config[0] blob created in setup")
async def test_teardown_delete_config_0(oci: Oci) -> None:
    """DELETE /blobs/<configs[0]>: 2xx, 404 or 405."""
    resp = await oci.do("DELETE", "/v2/<name>/blobs/<digest>", digest=oci.data.configs[0].digest)
    expect_2xx(resp, 404, 405)


# Go: Pull / Teardown / Delete config[1] blob created in setup
@spec("Teardown", "Delete config[1] blob created in setup")
async def test_teardown_delete_config_1(oci: Oci) -> None:
    """DELETE /blobs/<configs[1]>: 2xx, 404 or 405."""
    resp = await oci.do("DELETE", "/v2/<name>/blobs/<digest>", digest=oci.data.configs[1].digest)
    expect_2xx(resp, 404, 405)


# Go: Pull / Teardown / Delete layer blob created in setup
@spec("Teardown", "Delete layer blob created in setup")
async def test_teardown_delete_layer(oci: Oci) -> None:
    """DELETE /blobs/<layer>: 2xx, 404 or 405."""
    resp = await oci.do("DELETE", "/v2/<name>/blobs/<digest>", digest=oci.data.layer_blob_digest)
    expect_2xx(resp, 404, 405)
