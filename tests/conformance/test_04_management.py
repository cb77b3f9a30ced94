"""Workflow "Content Management": a port of ``conformance/04_management_test.go`` (distribution-spec v1.1.1).

Each test is one Go spec, named in its ``# Go:`` comment as ``Content Management / <context> / <spec
text>``; they run in the Go order and share :class:`ManagementState` (Go's ``tagToDelete``, ``numTags``
and ``blobDeleteAllowed``). Go's ``Teardown`` context of this workflow is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.conformance.harness import (
    Response,
    Runner,
    Workflow,
    expect_2xx,
    expect_conforming_error,
    expect_status,
    run_only_if,
)
from tests.conformance.testdata import MEDIA_TYPE_MANIFEST, TEST_TAG_NAME, UNSUPPORTED

pytestmark = pytest.mark.asyncio(loop_scope="session")

DEFAULT_TAG_NAME = TEST_TAG_NAME  # Go: const defaultTagName = "tagtest0"


@dataclass
class ManagementState:
    """The Go workflow's variables."""

    tag_to_delete: str = ""
    num_tags: int = 0
    blob_delete_allowed: bool = True


WORKFLOW = Workflow("Content Management", ManagementState)
spec = WORKFLOW.spec
Oci = Runner[ManagementState]


def unmarshal_tag_list(resp: Response) -> list[Any]:
    """Go: ``json.Unmarshal([]byte(resp.String()), &TagList{})`` must succeed; returns ``tagList.Tags``."""
    document = resp.json()
    assert isinstance(document, dict), f"the tags list is not a JSON object\n{resp.describe()}"
    tags = document.get("tags")
    assert tags is None or isinstance(tags, list), f"'tags' is not a list\n{resp.describe()}"
    return tags or []


# ---- Setup -------------------------------------------------------------------------------------------


# Go: Content Management / Setup / Populate registry with test config blob
@spec("Setup", "Populate registry with test config blob")
async def test_setup_populate_config_blob(oci: Oci) -> None:
    """POST an upload session, PUT configs[3] with ?digest=: 2xx."""
    config = oci.data.configs[3]
    expect_2xx(await oci.upload_blob(config.digest, config.content, config.content_length))


# Go: Content Management / Setup / Populate registry with test layer
@spec("Setup", "Populate registry with test layer")
async def test_setup_populate_layer(oci: Oci) -> None:
    """POST an upload session, PUT the layer with ?digest=: 2xx."""
    data = oci.data
    expect_2xx(await oci.upload_blob(data.layer_blob_digest, data.layer_blob_data, data.layer_blob_content_length))


# Go: Content Management / Setup / Populate registry with test tag
@spec("Setup", "Populate registry with test tag")
async def test_setup_populate_tag(oci: Oci) -> None:
    """PUT manifests[3] as tag tagtest0: 2xx."""
    oci.state.tag_to_delete = DEFAULT_TAG_NAME
    resp = await oci.put_manifest(oci.state.tag_to_delete, oci.data.manifests[3].content, MEDIA_TYPE_MANIFEST)
    expect_2xx(resp)


# Go: Content Management / Setup / Check how many tags there are before anything gets deleted
@spec("Setup", "Check how many tags there are before anything gets deleted")
async def test_setup_count_tags(oci: Oci) -> None:
    """GET /tags/list: 200 with a JSON tags list; remembers how many tags there are."""
    resp = await oci.do("GET", "/v2/<name>/tags/list")
    expect_status(resp, 200)
    oci.state.num_tags = len(unmarshal_tag_list(resp))


# ---- Manifest delete ---------------------------------------------------------------------------------


# Go: Content Management / Manifest delete / DELETE request to manifest tag should return 202, unless tag
#     deletion is disallowed (400/405)
@spec(
    "Manifest delete", "DELETE request to manifest tag should return 202, unless tag deletion is disallowed (400/405)"
)
async def test_delete_tag_202(oci: Oci) -> None:
    """DELETE /manifests/tagtest0: 202, or 400 (whose error code must be UNSUPPORTED) or 405."""
    resp = await oci.do("DELETE", "/v2/<name>/manifests/<reference>", reference=oci.state.tag_to_delete)
    expect_status(resp, 400, 202, 405)
    if resp.status == 400:
        expect_conforming_error(resp, UNSUPPORTED)


# Go: Content Management / Manifest delete / DELETE request to manifest (digest) should yield 202 response
#     unless already deleted
@spec("Manifest delete", "DELETE request to manifest (digest) should yield 202 response unless already deleted")
async def test_delete_manifest_by_digest_202(oci: Oci) -> None:
    """DELETE /manifests/<manifests[3]>: 202, or 404 if deleting the tag already removed it."""
    resp = await oci.do("DELETE", "/v2/<name>/manifests/<digest>", digest=oci.data.manifests[3].digest)
    expect_status(resp, 202, 404)


# Go: Content Management / Manifest delete / GET request to deleted manifest URL should yield 404
#     response, unless delete is disallowed
@spec("Manifest delete", "GET request to deleted manifest URL should yield 404 response, unless delete is disallowed")
async def test_get_deleted_manifest_404(oci: Oci) -> None:
    """GET /manifests/<manifests[3]>: 404, or 200 if deletes are disallowed."""
    resp = await oci.do("GET", "/v2/<name>/manifests/<digest>", digest=oci.data.manifests[3].digest)
    expect_status(resp, 404, 200)


# Go: Content Management / Manifest delete / GET request to tags list should reflect manifest deletion
@spec("Manifest delete", "GET request to tags list should reflect manifest deletion")
async def test_tags_list_reflects_deletion(oci: Oci) -> None:
    """GET /tags/list: 200 with fewer tags than before the deletes."""
    resp = await oci.do("GET", "/v2/<name>/tags/list")
    expect_status(resp, 200)
    tags = unmarshal_tag_list(resp)
    assert len(tags) < oci.state.num_tags, (
        f"expected fewer than {oci.state.num_tags} tags after the deletes, got {tags}\n{resp.describe()}"
    )


# ---- Blob delete -------------------------------------------------------------------------------------


# Go: Content Management / Blob delete / DELETE request to blob URL should yield 202 response
@spec("Blob delete", "DELETE request to blob URL should yield 202 response")
async def test_delete_blobs_202(oci: Oci) -> None:
    """DELETE /blobs/<configs[3]> then /blobs/<layer>: each 202, 404 or 405 (a 405 on the layer means
    blob deletion is disallowed)."""
    # config blob
    resp = await oci.do("DELETE", "/v2/<name>/blobs/<digest>", digest=oci.data.configs[3].digest)
    expect_status(resp, 202, 404, 405)
    # layer blob
    resp = await oci.do("DELETE", "/v2/<name>/blobs/<digest>", digest=oci.data.layer_blob_digest)
    expect_status(resp, 202, 404, 405)
    if resp.status == 405:
        oci.state.blob_delete_allowed = False


# Go: Content Management / Blob delete / GET request to deleted blob URL should yield 404 response
@spec("Blob delete", "GET request to deleted blob URL should yield 404 response")
async def test_get_deleted_blob_404(oci: Oci) -> None:
    """Unless blob deletion is disallowed: GET /blobs/<configs[3]>: 404."""
    run_only_if(oci.state.blob_delete_allowed, "blob deletion is disallowed (405)")
    resp = await oci.do("GET", "/v2/<name>/blobs/<digest>", digest=oci.data.configs[3].digest)
    expect_status(resp, 404)
