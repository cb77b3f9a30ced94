"""The user journey of the issue's "done when": push with docker and skopeo, pull back with podman,
page through the tags, delete a tag."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.support.accesslog import failures
from tests.support.api import describe, get_blob, get_manifest, sha256_of, tag_pages
from tests.support.clients import Docker, Podman, Skopeo
from tests.support.images import ImageFactory, OciLayout, write_docker_archive
from tests.support.server import LiveRegistry

pytestmark = pytest.mark.interop


def test_push_pull_list_delete(
    docker: Docker,
    skopeo: Skopeo,
    podman: Podman,
    registry_process: LiveRegistry,
    image_factory: ImageFactory,
    tmp_path: Path,
) -> None:
    """One multi-layer image, pushed by docker and by skopeo, pulled back identical, listed page by page,
    then one tag deleted (202) and gone while the others stay."""
    image = image_factory.image("journey")
    name = "journey/app"
    repo = f"{registry_process.host}/{name}"

    # docker push
    archive = write_docker_archive(image, tmp_path / "journey.tar", ["dockyard-test/journey:loaded"])
    docker.run("load", "--input", str(archive))
    docker.run("tag", "dockyard-test/journey:loaded", f"{repo}:docker")
    docker_digest = docker.push(f"{repo}:docker")

    # skopeo copy, under several tags
    skopeo_tags = ["1.0", "1.1", "latest", "skopeo"]
    for tag in skopeo_tags:
        skopeo.copy(image.oci_ref, f"docker://{repo}:{tag}")

    # podman pulls both back: same image, and the skopeo-pushed one with the very same manifest
    assert podman.pull(f"{repo}:skopeo") == image.image_id
    assert podman.image_inspect(f"{repo}:skopeo")["Digest"] == image.digest
    assert podman.pull(f"{repo}:docker") == image.image_id
    # the same image id: podman records the second manifest digest next to the first
    assert f"{repo}@{docker_digest}" in podman.image_inspect(f"{repo}:docker")["RepoDigests"]
    docker_manifest = get_manifest(registry_process, name, "docker")
    assert docker_manifest.status_code == 200, describe(docker_manifest, registry_process)
    assert sha256_of(docker_manifest.content) == docker_digest
    for layer in docker_manifest.json()["layers"]:
        blob = get_blob(registry_process, name, layer["digest"])
        assert blob.status_code == 200, describe(blob, registry_process)
        assert sha256_of(blob.content) == layer["digest"]
    back = OciLayout(tmp_path / "back")
    skopeo.copy(f"docker://{repo}:skopeo", f"oci:{back.root}:skopeo")
    pulled = back.all_blobs()
    for digest in [image.digest, *image.blob_digests]:
        assert pulled[digest] == image_factory.layout.read_blob(digest), f"{digest} changed on the way"

    # tags, one per page, following the Link header
    all_tags = sorted(["docker", *skopeo_tags])
    pages = tag_pages(registry_process, name, n=1)
    assert [page.tags for page in pages] == [[tag] for tag in all_tags]
    assert all(page.link is not None for page in pages[:-1])
    assert pages[-1].link is None
    assert [tag for page in tag_pages(registry_process, name, n=2) for tag in page.tags] == all_tags
    whole = requests.get(f"{registry_process.url}/v2/{name}/tags/list", timeout=30)
    assert whole.status_code == 200, describe(whole, registry_process)
    assert whole.json() == {"name": name, "tags": all_tags}
    assert "Link" not in whole.headers

    # delete one tag: 202, gone from the list and unresolvable, the manifest and other tags remain
    deleted = requests.delete(f"{registry_process.url}/v2/{name}/manifests/1.0", timeout=30)
    assert deleted.status_code == 202, describe(deleted, registry_process)
    gone = get_manifest(registry_process, name, "1.0")
    assert gone.status_code == 404, describe(gone, registry_process)
    assert gone.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    remaining = [tag for tag in all_tags if tag != "1.0"]
    assert skopeo.list_tags(f"docker://{repo}") == remaining
    assert [tag for page in tag_pages(registry_process, name, n=1) for tag in page.tags] == remaining
    for tag in remaining:
        still = get_manifest(registry_process, name, tag, method="HEAD")
        assert still.status_code == 200, describe(still, registry_process)
    assert get_manifest(registry_process, name, image.digest).content == image.manifest
    again = requests.delete(f"{registry_process.url}/v2/{name}/manifests/1.0", timeout=30)
    assert again.status_code == 404, describe(again, registry_process)
    assert failures(registry_process) == []
