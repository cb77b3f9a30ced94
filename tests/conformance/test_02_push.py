"""Workflow "Push": a port of ``conformance/02_push_test.go`` (distribution-spec v1.1.1).

Each test is one Go spec, named in its ``# Go:`` comment as ``Push / <context> / <spec text>``; they run
in the Go order and share :class:`PushState` (Go's ``lastResponse``, ``prevResponse`` and
``emptyLayerManifestRef``, plus the chunked blob the suite may rebuild).

The suite runs with ``OCI_AUTOMATIC_CROSSMOUNT=true``: the "automatic content discovery enabled" mount
check runs, the "disabled" one is skipped exactly as Go skips it (``RunOnlyIfNot``). Go's ``Setup``
context of this workflow is empty ("No setup required at this time for push tests").
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conformance.harness import (
    AUTOMATIC_CROSSMOUNT,
    CROSSMOUNT_NAMESPACE,
    DELETE_MANIFEST_BEFORE_BLOBS,
    NAMESPACE,
    RUN_AUTOMATIC_CROSSMOUNT_TEST,
    Response,
    Runner,
    Workflow,
    expect_2xx,
    expect_header,
    expect_header_not_empty,
    expect_status,
    run_only_if,
    warn,
)
from tests.conformance.testdata import (
    EMPTY_LAYER_TEST_TAG,
    MEDIA_TYPE_MANIFEST,
    NONEXISTENT_MANIFEST,
    ChunkedBlob,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

assert DELETE_MANIFEST_BEFORE_BLOBS, "only the default teardown order (manifests first) is ported"

OCTET_STREAM = "application/octet-stream"


@dataclass
class PushState:
    """The Go workflow's variables."""

    last_response: Response | None = None
    prev_response: Response | None = None
    empty_layer_manifest_ref: str = ""
    chunked: ChunkedBlob | None = None


WORKFLOW = Workflow("Push", PushState)
spec = WORKFLOW.spec
Oci = Runner[PushState]


def last(oci: Oci) -> Response:
    """Go: ``Expect(lastResponse).ToNot(BeNil())`` (or the nil dereference Go would panic on)."""
    assert oci.state.last_response is not None, "lastResponse is nil: the spec that sets it did not run"
    return oci.state.last_response


def chunked(oci: Oci) -> ChunkedBlob:
    """Go's ``testBlobB*`` variables: the setup's chunked blob unless the suite rebuilt it."""
    return oci.state.chunked or oci.data.chunked


# ---- Blob Upload Streamed ----------------------------------------------------------------------------


# Go: Push / Blob Upload Streamed / PATCH request with blob in body should yield 202 response
@spec("Blob Upload Streamed", "PATCH request with blob in body should yield 202 response")
async def test_streamed_patch_blob_202(oci: Oci) -> None:
    """POST a session (Location must be set), PATCH testBlobA to it without Content-Range: 202."""
    resp = await oci.do("POST", "/v2/<name>/blobs/uploads/")
    expect_header_not_empty(resp, "Location")
    resp = await oci.do(
        "PATCH", resp.relative_location(), headers={"Content-Type": OCTET_STREAM}, body=oci.data.test_blob_a.content
    )
    expect_status(resp, 202)
    oci.state.last_response = resp


# Go: Push / Blob Upload Streamed / PUT request to session URL with digest should yield 201 response
@spec("Blob Upload Streamed", "PUT request to session URL with digest should yield 201 response")
async def test_streamed_put_digest_201(oci: Oci) -> None:
    """PUT ?digest=<testBlobA> (no body) to the PATCH's Location: 201 with a Location.

    The Go test sets ``Content-Length: <len(testBlobA)>`` but no body; ``net/http`` drops that header and
    sends ``Content-Length: 0``, which is what is sent here too.
    """
    blob = oci.data.test_blob_a
    resp = await oci.do(
        "PUT",
        last(oci).relative_location(),
        query={"digest": blob.digest},
        headers={"Content-Type": OCTET_STREAM, "Content-Length": blob.content_length},
    )
    expect_status(resp, 201)
    expect_header_not_empty(resp, "Location")


# ---- Blob Upload Monolithic --------------------------------------------------------------------------


# Go: Push / Blob Upload Monolithic / GET nonexistent blob should result in 404 response
@spec("Blob Upload Monolithic", "GET nonexistent blob should result in 404 response")
async def test_monolithic_get_nonexistent_blob_404(oci: Oci) -> None:
    """GET /blobs/sha256(hello world): 404."""
    resp = await oci.do("GET", "/v2/<name>/blobs/<digest>", digest=oci.data.dummy_digest)
    expect_status(resp, 404)


# Go: Push / Blob Upload Monolithic / POST request with digest and blob should yield a 201 or 202
@spec("Blob Upload Monolithic", "POST request with digest and blob should yield a 201 or 202")
async def test_monolithic_post_with_digest_201_or_202(oci: Oci) -> None:
    """POST /blobs/uploads/?digest=<configs[1]> with the blob: a Location, and 201 or 202."""
    config = oci.data.configs[1]
    resp = await oci.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        headers={"Content-Length": config.content_length, "Content-Type": OCTET_STREAM},
        query={"digest": config.digest},
        body=config.content,
    )
    expect_header_not_empty(resp, "Location")
    expect_status(resp, 201, 202)
    oci.state.last_response = resp


# Go: Push / Blob Upload Monolithic / GET request to blob URL from prior request should yield 200 or 404
#     based on response code
@spec(
    "Blob Upload Monolithic",
    "GET request to blob URL from prior request should yield 200 or 404 based on response code",
)
async def test_monolithic_get_blob_after_post(oci: Oci) -> None:
    """GET /blobs/<configs[1]>: 404 if the POST answered 202 (a session), else 200."""
    previous = last(oci)
    resp = await oci.do("GET", "/v2/<name>/blobs/<digest>", digest=oci.data.configs[1].digest)
    expect_status(resp, 404 if previous.status == 202 else 200)


# Go: Push / Blob Upload Monolithic / POST request should yield a session ID
@spec("Blob Upload Monolithic", "POST request should yield a session ID")
async def test_monolithic_post_session_202(oci: Oci) -> None:
    """POST /blobs/uploads/: 202."""
    resp = await oci.do("POST", "/v2/<name>/blobs/uploads/")
    expect_status(resp, 202)
    oci.state.last_response = resp


# Go: Push / Blob Upload Monolithic / PUT upload of a blob should yield a 201 Response
@spec("Blob Upload Monolithic", "PUT upload of a blob should yield a 201 Response")
async def test_monolithic_put_blob_201(oci: Oci) -> None:
    """PUT configs[1] with ?digest= to the session's Location: a Location, and 201."""
    config = oci.data.configs[1]
    resp = await oci.do(
        "PUT",
        last(oci).relative_location(),
        headers={"Content-Length": config.content_length, "Content-Type": OCTET_STREAM},
        query={"digest": config.digest},
        body=config.content,
    )
    expect_header_not_empty(resp, "Location")
    expect_status(resp, 201)


# Go: Push / Blob Upload Monolithic / GET request to existing blob should yield 200 response
@spec("Blob Upload Monolithic", "GET request to existing blob should yield 200 response")
async def test_monolithic_get_existing_blob_200(oci: Oci) -> None:
    """GET /blobs/<configs[1]>: 200."""
    resp = await oci.do("GET", "/v2/<name>/blobs/<digest>", digest=oci.data.configs[1].digest)
    expect_status(resp, 200)


# Go: Push / Blob Upload Monolithic / PUT upload of a layer blob should yield a 201 Response
@spec("Blob Upload Monolithic", "PUT upload of a layer blob should yield a 201 Response")
async def test_monolithic_put_layer_201(oci: Oci) -> None:
    """POST a session, PUT the layer with ?digest= to its Location: a Location, and 201."""
    data = oci.data
    resp = await oci.upload_blob(data.layer_blob_digest, data.layer_blob_data, data.layer_blob_content_length)
    expect_header_not_empty(resp, "Location")
    expect_status(resp, 201)


# Go: Push / Blob Upload Monolithic / GET request to existing layer should yield 200 response
@spec("Blob Upload Monolithic", "GET request to existing layer should yield 200 response")
async def test_monolithic_get_existing_layer_200(oci: Oci) -> None:
    """GET /blobs/<layer>: 200."""
    resp = await oci.do("GET", "/v2/<name>/blobs/<digest>", digest=oci.data.layer_blob_digest)
    expect_status(resp, 200)


# ---- Blob Upload Chunked -----------------------------------------------------------------------------


# Go: Push / Blob Upload Chunked / Out-of-order blob upload should return 416
@spec("Blob Upload Chunked", "Out-of-order blob upload should return 416")
async def test_chunked_out_of_order_416(oci: Oci) -> None:
    """POST a session (Content-Length: 0), PATCH the *second* chunk first: 416.

    Go rebuilds the chunked blob first when the registry announces an ``OCI-Chunk-Min-Length`` larger than
    the first chunk; so does this test.
    """
    resp = await oci.do("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    expect_header_not_empty(resp, "Location")
    if min_size := resp.header("OCI-Chunk-Min-Length"):
        assert min_size.isdigit(), f"OCI-Chunk-Min-Length {min_size!r} is not an integer\n{resp.describe()}"
        if int(min_size) > len(chunked(oci).chunk1):
            oci.state.chunked = ChunkedBlob.build(int(min_size) * 2 - 2, oci.data.seed + 2)
    blob = chunked(oci)
    resp = await oci.do(
        "PATCH",
        resp.relative_location(),
        headers={
            "Content-Type": OCTET_STREAM,
            "Content-Length": blob.chunk2_length,
            "Content-Range": blob.chunk2_range,
        },
        body=blob.chunk2,
    )
    expect_status(resp, 416)


# Go: Push / Blob Upload Chunked / PATCH request with first chunk should return 202
@spec("Blob Upload Chunked", "PATCH request with first chunk should return 202")
async def test_chunked_patch_first_chunk_202(oci: Oci) -> None:
    """POST a session, PATCH the first chunk with Content-Range 0-N: 202 with ``Range: 0-N``."""
    blob = chunked(oci)
    resp = await oci.do("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    expect_header_not_empty(resp, "Location")
    oci.state.prev_response = resp
    resp = await oci.do(
        "PATCH",
        resp.relative_location(),
        headers={
            "Content-Type": OCTET_STREAM,
            "Content-Length": blob.chunk1_length,
            "Content-Range": blob.chunk1_range,
        },
        body=blob.chunk1,
    )
    expect_status(resp, 202)
    expect_header(resp, "Range", blob.chunk1_range)
    oci.state.last_response = resp


# Go: Push / Blob Upload Chunked / Retry previous blob chunk should return 416
@spec("Blob Upload Chunked", "Retry previous blob chunk should return 416")
async def test_chunked_retry_previous_chunk_416(oci: Oci) -> None:
    """PATCH the first chunk again (Content-Range 0-N) to the POST's Location: 416."""
    blob = chunked(oci)
    assert oci.state.prev_response is not None, "prevResponse is nil: the previous spec did not run"
    resp = await oci.do(
        "PATCH",
        oci.state.prev_response.relative_location(),
        headers={
            "Content-Type": OCTET_STREAM,
            "Content-Length": blob.chunk1_length,
            "Content-Range": blob.chunk1_range,
        },
        body=blob.chunk1,
    )
    expect_status(resp, 416)


# Go: Push / Blob Upload Chunked / Get on stale blob upload should return 204 with a range and location
@spec("Blob Upload Chunked", "Get on stale blob upload should return 204 with a range and location")
async def test_chunked_get_upload_status_204(oci: Oci) -> None:
    """GET the POST's Location: 204, a Location, and ``Range: 0-N`` (the first chunk)."""
    assert oci.state.prev_response is not None, "prevResponse is nil: the spec that sets it did not run"
    resp = await oci.do("GET", oci.state.prev_response.relative_location())
    expect_status(resp, 204)
    expect_header_not_empty(resp, "Location")
    expect_header(resp, "Range", chunked(oci).chunk1_range)
    oci.state.last_response = resp


# Go: Push / Blob Upload Chunked / PATCH request with second chunk should return 202
@spec("Blob Upload Chunked", "PATCH request with second chunk should return 202")
async def test_chunked_patch_second_chunk_202(oci: Oci) -> None:
    """PATCH the second chunk (Content-Range N+1-end) to the status response's Location: 202, a Location."""
    blob = chunked(oci)
    resp = await oci.do(
        "PATCH",
        last(oci).relative_location(),
        headers={
            "Content-Length": blob.chunk2_length,
            "Content-Range": blob.chunk2_range,
            "Content-Type": OCTET_STREAM,
        },
        body=blob.chunk2,
    )
    expect_status(resp, 202)
    expect_header_not_empty(resp, "Location")
    oci.state.last_response = resp


# Go: Push / Blob Upload Chunked / PUT request with digest should return 201
@spec("Blob Upload Chunked", "PUT request with digest should return 201")
async def test_chunked_put_digest_201(oci: Oci) -> None:
    """PUT ?digest=<testBlobB> (Content-Length: 0) to the last Location: 201 with a Location."""
    resp = await oci.do(
        "PUT",
        last(oci).relative_location(),
        headers={"Content-Length": "0", "Content-Type": OCTET_STREAM},
        query={"digest": chunked(oci).digest},
    )
    expect_status(resp, 201)
    expect_header_not_empty(resp, "Location")


# ---- Cross-Repository Blob Mount ---------------------------------------------------------------------


# Go: Push / Cross-Repository Blob Mount / Cross-mounting of a blob without the from argument should
#     yield session id
@spec("Cross-Repository Blob Mount", "Cross-mounting of a blob without the from argument should yield session id")
async def test_mount_without_from_unknown_blob_202(oci: Oci) -> None:
    """POST /v2/<crossmount>/blobs/uploads/?mount=sha256(hello world) (a blob nobody has): 202, Location."""
    resp = await oci.do(
        "POST", "/v2/<name>/blobs/uploads/", name=CROSSMOUNT_NAMESPACE, query={"mount": oci.data.dummy_digest}
    )
    expect_status(resp, 202)
    assert resp.absolute_location(), f"expected a Location (GetAbsoluteLocation not empty)\n{resp.describe()}"


# Go: Push / Cross-Repository Blob Mount / POST request to mount another repository's blob should return
#     201 or 202
@spec("Cross-Repository Blob Mount", "POST request to mount another repository's blob should return 201 or 202")
async def test_mount_from_other_repository(oci: Oci) -> None:
    """POST /v2/<crossmount>/blobs/uploads/?mount=<testBlobA>&from=<namespace>: 201 or 202."""
    resp = await oci.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=CROSSMOUNT_NAMESPACE,
        query={"mount": oci.data.test_blob_a.digest, "from": NAMESPACE},
    )
    expect_status(resp, 201, 202)
    oci.state.last_response = resp


# Go: Push / Cross-Repository Blob Mount / GET request to test digest within cross-mount namespace should
#     return 200
@spec("Cross-Repository Blob Mount", "GET request to test digest within cross-mount namespace should return 200")
async def test_mount_get_mounted_blob_200(oci: Oci) -> None:
    """Only after a 201 mount: its Location is /v2/<crossmount>/blobs/<testBlobA>, and a GET there is 200."""
    previous = last(oci)
    run_only_if(previous.status == 201, "the mount answered 202, not 201")
    expected = f"/v2/{CROSSMOUNT_NAMESPACE}/blobs/{oci.data.test_blob_a.digest}"
    assert previous.relative_location() == expected, (
        f"mount Location is {previous.relative_location()!r}, expected {expected!r}\n{previous.describe()}"
    )
    resp = await oci.do("GET", previous.relative_location())
    expect_status(resp, 200)


# Go: Push / Cross-Repository Blob Mount / Cross-mounting of nonexistent blob should yield session id
@spec("Cross-Repository Blob Mount", "Cross-mounting of nonexistent blob should yield session id")
async def test_mount_fallback_is_upload_session(oci: Oci) -> None:
    """Only after a 202 mount: its Location is an upload session of the cross-mount repository."""
    previous = last(oci)
    run_only_if(previous.status == 202, "the mount answered 201, not 202")
    prefix = f"/v2/{CROSSMOUNT_NAMESPACE}/blobs/uploads/"
    assert previous.relative_location().startswith(prefix), (
        f"mount Location {previous.relative_location()!r} does not start with {prefix!r}\n{previous.describe()}"
    )


# Go: Push / Cross-Repository Blob Mount / Cross-mounting without from, and automatic content discovery
#     enabled should return a 201
@spec(
    "Cross-Repository Blob Mount",
    "Cross-mounting without from, and automatic content discovery enabled should return a 201",
)
async def test_automatic_mount_enabled_201(oci: Oci) -> None:
    """With OCI_AUTOMATIC_CROSSMOUNT=true, after a 201 mount: POST ?mount=<testBlobA> without from: 201."""
    run_only_if(RUN_AUTOMATIC_CROSSMOUNT_TEST, "OCI_AUTOMATIC_CROSSMOUNT is not set")
    run_only_if(last(oci).status == 201, "the mount with from answered 202, not 201")
    run_only_if(AUTOMATIC_CROSSMOUNT, "OCI_AUTOMATIC_CROSSMOUNT is false")
    resp = await oci.do(
        "POST", "/v2/<name>/blobs/uploads/", name=CROSSMOUNT_NAMESPACE, query={"mount": oci.data.test_blob_a.digest}
    )
    expect_status(resp, 201)


# Go: Push / Cross-Repository Blob Mount / Cross-mounting without from, and automatic content discovery
#     disabled should return a 202
@spec(
    "Cross-Repository Blob Mount",
    "Cross-mounting without from, and automatic content discovery disabled should return a 202",
)
async def test_automatic_mount_disabled_202(oci: Oci) -> None:
    """With OCI_AUTOMATIC_CROSSMOUNT=false (not this run: Go skips it), POST ?mount= without from: 202."""
    run_only_if(RUN_AUTOMATIC_CROSSMOUNT_TEST, "OCI_AUTOMATIC_CROSSMOUNT is not set")
    run_only_if(last(oci).status == 201, "the mount with from answered 202, not 201")
    run_only_if(not AUTOMATIC_CROSSMOUNT, "OCI_AUTOMATIC_CROSSMOUNT is true")
    resp = await oci.do(
        "POST", "/v2/<name>/blobs/uploads/", name=CROSSMOUNT_NAMESPACE, query={"mount": oci.data.test_blob_a.digest}
    )
    expect_status(resp, 202)


# ---- Manifest Upload ---------------------------------------------------------------------------------


# Go: Push / Manifest Upload / GET nonexistent manifest should return 404
@spec("Manifest Upload", "GET nonexistent manifest should return 404")
async def test_manifest_get_nonexistent_404(oci: Oci) -> None:
    """GET /manifests/.INVALID_MANIFEST_NAME: 404."""
    resp = await oci.do("GET", "/v2/<name>/manifests/<reference>", reference=NONEXISTENT_MANIFEST)
    expect_status(resp, 404)


# Go: Push / Manifest Upload / PUT should accept a manifest upload
@spec("Manifest Upload", "PUT should accept a manifest upload")
async def test_manifest_put_tags_201(oci: Oci) -> None:
    """PUT manifests[1] as tags test0..test3: each a Location, and 201."""
    for i in range(4):
        resp = await oci.put_manifest(f"test{i}", oci.data.manifests[1].content, MEDIA_TYPE_MANIFEST)
        expect_header_not_empty(resp, "Location")
        expect_status(resp, 201)


# Go: Push / Manifest Upload / Registry should accept a manifest upload with no layers
@spec("Manifest Upload", "Registry should accept a manifest upload with no layers")
async def test_manifest_put_no_layers(oci: Oci) -> None:
    """PUT the manifest with ``"layers": []`` as tag emptylayer: 201 with a Location (Go only warns
    when the registry refuses it)."""
    resp = await oci.put_manifest(EMPTY_LAYER_TEST_TAG, oci.data.empty_layer_manifest_content, MEDIA_TYPE_MANIFEST)
    if resp.status == 201:
        oci.state.empty_layer_manifest_ref = resp.header("Location")
        expect_header_not_empty(resp, "Location")
    else:
        warn(f"image manifest with no layers is not supported (got {resp.status})")


# Go: Push / Manifest Upload / GET request to manifest URL (digest) should yield 200 response
@spec("Manifest Upload", "GET request to manifest URL (digest) should yield 200 response")
async def test_manifest_get_by_digest_200(oci: Oci) -> None:
    """GET /manifests/<manifests[1]> (Accept: OCI manifest): 200."""
    resp = await oci.do(
        "GET",
        "/v2/<name>/manifests/<digest>",
        digest=oci.data.manifests[1].digest,
        headers={"Accept": MEDIA_TYPE_MANIFEST},
    )
    expect_status(resp, 200)


# ---- Teardown (OCI_DELETE_MANIFEST_BEFORE_BLOBS=true: manifests, then blobs) ------------------------


# Go: Push / Teardown / Delete manifest created in tests
@spec("Teardown", "Delete manifest created in tests")
async def test_teardown_delete_manifests(oci: Oci) -> None:
    """DELETE /manifests/<manifests[1]>: 2xx or 405; then, if the empty-layer manifest was accepted,
    DELETE /manifests/<its digest>: 2xx or 405."""
    resp = await oci.do("DELETE", "/v2/<name>/manifests/<digest>", digest=oci.data.manifests[1].digest)
    expect_2xx(resp, 405)
    if oci.state.empty_layer_manifest_ref:
        resp = await oci.do(
            "DELETE", "/v2/<name>/manifests/<reference>", reference=oci.data.empty_layer_manifest_digest
        )
        expect_2xx(resp, 405)


# Go: Push / Teardown / Delete config blob created in tests
@spec("Teardown", "Delete config blob created in tests")
async def test_teardown_delete_config(oci: Oci) -> None:
    """DELETE /blobs/<configs[1]>: 2xx, 404 or 405."""
    resp = await oci.do("DELETE", "/v2/<name>/blobs/<digest>", digest=oci.data.configs[1].digest)
    expect_2xx(resp, 404, 405)


# Go: Push / Teardown / Delete layer blob created in setup
@spec("Teardown", "Delete layer blob created in setup")
async def test_teardown_delete_layer(oci: Oci) -> None:
    """DELETE /blobs/<layer>: 2xx, 404 or 405."""
    resp = await oci.do("DELETE", "/v2/<name>/blobs/<digest>", digest=oci.data.layer_blob_digest)
    expect_2xx(resp, 404, 405)
