"""Workflow "Content Discovery": a port of ``conformance/03_discovery_test.go`` (distribution-spec v1.1.1).

Each test is one Go spec, named in its ``# Go:`` comment as ``Content Discovery / <context> / <spec
text>``; they run in the Go order and share :class:`DiscoveryState` (Go's ``numTags`` and ``tagList``).

The referrers data: manifests[4] is the subject of five artifacts (two manifests whose config media
type is the artifact type, two with ``artifactType`` and an empty-JSON config, one index), pushed partly
before and partly after the subject itself; a sixth artifact (C) refers to manifests[3], which is never
pushed in this workflow.

Not ported: ``Content Discovery / Setup / Populate registry with test tags (no push)``
(``RunOnlyIfNot(runContentDiscoverySetup)``: only runs when ``OCI_TAG_LIST`` lists tags already in a
remote registry, so it is always skipped against a fresh one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conformance.harness import (
    DELETE_MANIFEST_BEFORE_BLOBS,
    Response,
    Runner,
    Workflow,
    expect_2xx,
    expect_header,
    expect_status,
    warn,
)
from tests.conformance.testdata import (
    ARTIFACT_TYPE_FILTER,
    EMPTY_JSON_DIGEST,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    TEST_ANNOTATION_KEY,
    TEST_REF_ARTIFACT_TYPE_A,
    TEST_TAG_NAME,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

assert DELETE_MANIFEST_BEFORE_BLOBS, "only the default teardown order (manifests first) is ported"


@dataclass
class DiscoveryState:
    """The Go workflow's variables (``var numTags = 4``, ``var tagList []string``)."""

    num_tags: int = 4
    tag_list: list[str] = field(default_factory=list)


WORKFLOW = Workflow("Content Discovery", DiscoveryState)
spec = WORKFLOW.spec
Oci = Runner[DiscoveryState]


def referrers_index(resp: Response) -> list[dict[str, Any]]:
    """Go: ``json.Unmarshal(resp.Body(), &index)`` (must succeed), then ``index.Manifests``."""
    document = resp.json()
    assert isinstance(document, dict), f"the referrers body is not a JSON object\n{resp.describe()}"
    manifests = document.get("manifests") or []
    assert isinstance(manifests, list), f"'manifests' is not a list\n{resp.describe()}"
    return [m if isinstance(m, dict) else {} for m in manifests]


def expect_annotations(oci: Oci, resp: Response, manifests: list[dict[str, Any]]) -> None:
    """Go: every descriptor has exactly one annotation, the test annotation of the manifest it describes."""
    for descriptor in manifests:
        annotations = descriptor.get("annotations") or {}
        assert len(annotations) == 1, f"descriptor {descriptor} should have 1 annotation\n{resp.describe()}"
        expected = oci.data.test_annotation_values.get(str(descriptor.get("digest")), "")
        assert annotations.get(TEST_ANNOTATION_KEY) == expected, (
            f"descriptor {descriptor} should carry {TEST_ANNOTATION_KEY}={expected!r}\n{resp.describe()}"
        )


# ---- Setup -------------------------------------------------------------------------------------------


# Go: Content Discovery / Setup / Populate registry with test blob
@spec("Setup", "Populate registry with test blob")
async def test_setup_populate_config_blob(oci: Oci) -> None:
    """POST an upload session, PUT configs[2] with ?digest=: 2xx."""
    config = oci.data.configs[2]
    expect_2xx(await oci.upload_blob(config.digest, config.content, config.content_length))


# Go: Content Discovery / Setup / Populate registry with test layer
@spec("Setup", "Populate registry with test layer")
async def test_setup_populate_layer(oci: Oci) -> None:
    """POST an upload session, PUT the layer with ?digest=: 2xx."""
    data = oci.data
    expect_2xx(await oci.upload_blob(data.layer_blob_digest, data.layer_blob_data, data.layer_blob_content_length))


# Go: Content Discovery / Setup / Populate registry with test tags
@spec("Setup", "Populate registry with test tags")
async def test_setup_populate_tags(oci: Oci) -> None:
    """PUT manifests[2] as tags test0..test{numTags-1}: each 2xx; then read the tags list."""
    for i in range(oci.state.num_tags):
        tag = f"test{i}"
        oci.state.tag_list.append(tag)
        expect_2xx(await oci.put_manifest(tag, oci.data.manifests[2].content, MEDIA_TYPE_MANIFEST))
    resp = await oci.do("GET", "/v2/<name>/tags/list")
    oci.state.tag_list = resp.tag_list()


# Go: Content Discovery / Setup / References setup
@spec("Setup", "References setup")
async def test_setup_references(oci: Oci) -> None:
    """Push the referrers data; every push 2xx, every artifact push answered with ``OCI-Subject``."""
    data = oci.data
    subject = data.manifests[4].digest
    # validate expected empty JSON blob digest, then populate registry with empty JSON blob
    assert data.empty_json_descriptor["digest"] == EMPTY_JSON_DIGEST
    expect_2xx(await oci.upload_blob(EMPTY_JSON_DIGEST, data.empty_json_blob, str(len(data.empty_json_blob))))
    # Populate registry with reference blob before the image manifest is pushed
    ref_a = data.test_ref_blob_a
    expect_2xx(await oci.upload_blob(ref_a.digest, ref_a.content, ref_a.content_length))
    # Populate registry with test references manifest (config.MediaType = artifactType)
    artifact = data.refs_manifest_a_config_artifact
    resp = await oci.put_manifest(artifact.digest, artifact.content, MEDIA_TYPE_MANIFEST)
    expect_2xx(resp)
    expect_header(resp, "OCI-Subject", subject)
    # Populate registry with test references manifest (ArtifactType, config.MediaType = emptyJSON)
    artifact = data.refs_manifest_a_layer_artifact
    resp = await oci.put_manifest(artifact.digest, artifact.content, MEDIA_TYPE_MANIFEST)
    expect_2xx(resp)
    expect_header(resp, "OCI-Subject", subject)
    # Populate registry with test index manifest
    artifact = data.refs_index_artifact
    resp = await oci.put_manifest(artifact.digest, artifact.content, MEDIA_TYPE_INDEX)
    expect_2xx(resp)
    expect_header(resp, "OCI-Subject", subject)
    # Populate registry with test blob
    config = data.configs[4]
    expect_2xx(await oci.upload_blob(config.digest, config.content, config.content_length))
    # Populate registry with test layer
    expect_2xx(await oci.upload_blob(data.layer_blob_digest, data.layer_blob_data, data.layer_blob_content_length))
    # Populate registry with test manifest
    expect_2xx(await oci.put_manifest(TEST_TAG_NAME, data.manifests[4].content, MEDIA_TYPE_MANIFEST))
    # Populate registry with reference blob after the image manifest is pushed
    ref_b = data.test_ref_blob_b
    expect_2xx(await oci.upload_blob(ref_b.digest, ref_b.content, ref_b.content_length))
    # Populate registry with test references manifest (config.MediaType = artifactType)
    artifact = data.refs_manifest_b_config_artifact
    resp = await oci.put_manifest(artifact.digest, artifact.content, MEDIA_TYPE_MANIFEST)
    expect_2xx(resp)
    expect_header(resp, "OCI-Subject", subject)
    # Populate registry with test references manifest (ArtifactType, config.MediaType = emptyJSON)
    artifact = data.refs_manifest_b_layer_artifact
    resp = await oci.put_manifest(artifact.digest, artifact.content, MEDIA_TYPE_MANIFEST)
    expect_2xx(resp)
    expect_header(resp, "OCI-Subject", subject)
    # Populate registry with test references manifest to a non-existent subject
    artifact = data.refs_manifest_c_layer_artifact
    resp = await oci.put_manifest(artifact.digest, artifact.content, MEDIA_TYPE_MANIFEST)
    expect_2xx(resp)
    expect_header(resp, "OCI-Subject", data.manifests[3].digest)


# ---- Test content discovery endpoints (listing tags) ------------------------------------------------


# Go: Content Discovery / Test content discovery endpoints (listing tags) / GET request to list tags
#     should yield 200 response
@spec("Test content discovery endpoints (listing tags)", "GET request to list tags should yield 200 response")
async def test_list_tags_200(oci: Oci) -> None:
    """GET /tags/list: 200; remembers the tags and their number."""
    resp = await oci.do("GET", "/v2/<name>/tags/list")
    expect_status(resp, 200)
    oci.state.tag_list = resp.tag_list()
    oci.state.num_tags = len(oci.state.tag_list)


# Go: Content Discovery / Test content discovery endpoints (listing tags) / GET number of tags should be
#     limitable by `n` query parameter
@spec(
    "Test content discovery endpoints (listing tags)", "GET number of tags should be limitable by `n` query parameter"
)
async def test_list_tags_limited_by_n(oci: Oci) -> None:
    """GET /tags/list?n=numTags/2: 200 and exactly numTags/2 tags."""
    num_results = oci.state.num_tags // 2
    resp = await oci.do("GET", "/v2/<name>/tags/list", query={"n": str(num_results)})
    expect_status(resp, 200)
    oci.state.tag_list = resp.tag_list()
    assert len(oci.state.tag_list) == num_results, (
        f"expected {num_results} tags, got {oci.state.tag_list}\n{resp.describe()}"
    )


# Go: Content Discovery / Test content discovery endpoints (listing tags) / GET start of tag is set by
#     `last` query parameter
@spec("Test content discovery endpoints (listing tags)", "GET start of tag is set by `last` query parameter")
async def test_list_tags_last(oci: Oci) -> None:
    """GET /tags/list?n=k, then GET /tags/list?n=k&last=<k-th tag>: 200.

    Faithful to Go, which asserts on the list of the *first* request (it never re-reads ``tagList`` from
    the second response): at most k tags, containing the k-th. ``tagList[numResults-1]`` would panic in
    Go when the first page is shorter than k or k is 0; that is a failure here too.
    """
    num_results = oci.state.num_tags // 2
    resp = await oci.do("GET", "/v2/<name>/tags/list", query={"n": str(num_results)})
    oci.state.tag_list = resp.tag_list()
    tag_list = oci.state.tag_list
    assert 0 < num_results <= len(tag_list), (
        f"tagList[{num_results - 1}] is out of range of {tag_list} (Go panics)\n{resp.describe()}"
    )
    resp = await oci.do("GET", "/v2/<name>/tags/list", query={"n": str(num_results), "last": tag_list[num_results - 1]})
    expect_status(resp, 200)
    assert len(tag_list) <= num_results, f"first page {tag_list} longer than n={num_results}"
    assert tag_list[num_results - 1] in tag_list


# ---- Test content discovery endpoints (listing references) ------------------------------------------


# Go: Content Discovery / Test content discovery endpoints (listing references) / GET request to
#     nonexistent blob should result in empty 200 response
@spec(
    "Test content discovery endpoints (listing references)",
    "GET request to nonexistent blob should result in empty 200 response",
)
async def test_referrers_unknown_digest_empty_200(oci: Oci) -> None:
    """GET /referrers/sha256(hello world): 200, Content-Type exactly the OCI index type, no manifests."""
    resp = await oci.do("GET", "/v2/<name>/referrers/<digest>", digest=oci.data.dummy_digest)
    expect_status(resp, 200)
    expect_header(resp, "Content-Type", MEDIA_TYPE_INDEX)
    manifests = referrers_index(resp)
    assert len(manifests) == 0, f"expected no referrers, got {manifests}\n{resp.describe()}"


# Go: Content Discovery / Test content discovery endpoints (listing references) / GET request to existing
#     blob should yield 200
@spec("Test content discovery endpoints (listing references)", "GET request to existing blob should yield 200")
async def test_referrers_of_subject_200(oci: Oci) -> None:
    """GET /referrers/<manifests[4]>: 200, OCI index Content-Type, the 5 artifacts (distinct), each with
    its one test annotation pulled up."""
    resp = await oci.do("GET", "/v2/<name>/referrers/<digest>", digest=oci.data.manifests[4].digest)
    expect_status(resp, 200)
    expect_header(resp, "Content-Type", MEDIA_TYPE_INDEX)
    manifests = referrers_index(resp)
    assert len(manifests) == 5, f"expected 5 referrers, got {len(manifests)}: {manifests}\n{resp.describe()}"
    assert manifests[0].get("digest") != manifests[1].get("digest")
    expect_annotations(oci, resp, manifests)


# Go: Content Discovery / Test content discovery endpoints (listing references) / GET request to existing
#     blob with filter should yield 200
@spec(
    "Test content discovery endpoints (listing references)",
    "GET request to existing blob with filter should yield 200",
)
async def test_referrers_filtered_200(oci: Oci) -> None:
    """GET /referrers/<manifests[4]>?artifactType=<A>: 200, OCI index Content-Type; with
    ``OCI-Filters-Applied: artifactType`` the 2 type-A artifacts, without it all 5 (and a warning)."""
    resp = await oci.do(
        "GET",
        "/v2/<name>/referrers/<digest>",
        digest=oci.data.manifests[4].digest,
        query={"artifactType": TEST_REF_ARTIFACT_TYPE_A},
    )
    expect_status(resp, 200)
    expect_header(resp, "Content-Type", MEDIA_TYPE_INDEX)
    manifests = referrers_index(resp)
    # also check resp header "OCI-Filters-Applied: artifactType" denoting that an artifactType filter was applied
    if resp.header("OCI-Filters-Applied"):
        assert len(manifests) == 2, f"expected 2 filtered referrers, got {manifests}\n{resp.describe()}"
        expect_header(resp, "OCI-Filters-Applied", ARTIFACT_TYPE_FILTER)
    else:
        assert len(manifests) == 5, f"expected 5 (unfiltered) referrers, got {manifests}\n{resp.describe()}"
        warn("filtering by artifact-type is not implemented")
    expect_annotations(oci, resp, manifests)


# Go: Content Discovery / Test content discovery endpoints (listing references) / GET request to missing
#     manifest should yield 200
@spec("Test content discovery endpoints (listing references)", "GET request to missing manifest should yield 200")
async def test_referrers_of_missing_subject_200(oci: Oci) -> None:
    """GET /referrers/<manifests[3]> (never pushed): 200, OCI index Content-Type, exactly artifact C."""
    resp = await oci.do("GET", "/v2/<name>/referrers/<digest>", digest=oci.data.manifests[3].digest)
    expect_status(resp, 200)
    expect_header(resp, "Content-Type", MEDIA_TYPE_INDEX)
    manifests = referrers_index(resp)
    assert len(manifests) == 1, f"expected 1 referrer, got {manifests}\n{resp.describe()}"
    assert manifests[0].get("digest") == oci.data.refs_manifest_c_layer_artifact.digest


# ---- Teardown (OCI_DELETE_MANIFEST_BEFORE_BLOBS=true: manifests, then blobs) ------------------------


# Go: Content Discovery / Teardown / Delete created manifest & associated tags
@spec("Teardown", "Delete created manifest & associated tags")
async def test_teardown_delete_manifests(oci: Oci) -> None:
    """DELETE /manifests/<ref> for every manifest of the workflow (and tagtest0): each 2xx, 404 or 405."""
    data = oci.data
    references = [
        data.refs_index_artifact.digest,
        data.manifests[2].digest,
        data.manifests[4].digest,
        data.refs_manifest_a_config_artifact.digest,
        data.refs_manifest_a_layer_artifact.digest,
        TEST_TAG_NAME,
        data.refs_manifest_b_config_artifact.digest,
        data.refs_manifest_b_layer_artifact.digest,
        data.refs_manifest_c_layer_artifact.digest,
    ]
    for reference in references:
        resp = await oci.do("DELETE", "/v2/<name>/manifests/<digest>", digest=reference)
        expect_2xx(resp, 405, 404)


# Go: Content Discovery / Teardown / Delete config blob created in tests
@spec("Teardown", "Delete config blob created in tests")
async def test_teardown_delete_config(oci: Oci) -> None:
    """DELETE /blobs/<configs[2]>: 2xx or 405."""
    resp = await oci.do("DELETE", "/v2/<name>/blobs/<digest>", digest=oci.data.configs[2].digest)
    expect_2xx(resp, 405)


# Go: Content Discovery / Teardown / Delete layer blob created in setup
@spec("Teardown", "Delete layer blob created in setup")
async def test_teardown_delete_layer(oci: Oci) -> None:
    """DELETE /blobs/<layer>: 2xx or 405."""
    resp = await oci.do("DELETE", "/v2/<name>/blobs/<digest>", digest=oci.data.layer_blob_digest)
    expect_2xx(resp, 405)


# Go: Content Discovery / Teardown / References teardown
@spec("Teardown", "References teardown")
async def test_teardown_references(oci: Oci) -> None:
    """DELETE the artifacts and manifests[4] again, then configs[4], both reference blobs and the empty
    JSON blob: each 2xx, 404 or 405."""
    data = oci.data
    for reference in (
        data.refs_index_artifact.digest,
        data.refs_manifest_a_config_artifact.digest,
        data.refs_manifest_a_layer_artifact.digest,
        data.manifests[4].digest,
        data.refs_manifest_b_config_artifact.digest,
        data.refs_manifest_b_layer_artifact.digest,
    ):
        resp = await oci.do("DELETE", "/v2/<name>/manifests/<reference>", reference=reference)
        expect_2xx(resp, 405, 404)
    # Delete config blob, reference blobs and empty JSON blob created in setup
    for digest in (data.configs[4].digest, data.test_ref_blob_a.digest, data.test_ref_blob_b.digest, EMPTY_JSON_DIGEST):
        resp = await oci.do("DELETE", "/v2/<name>/blobs/<digest>", digest=digest)
        expect_2xx(resp, 405, 404)
