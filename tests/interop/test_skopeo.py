"""skopeo against a live dockyard: copies in both directions, multi-arch indexes, inspect, list-tags, delete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.accesslog import failures, matching, records
from tests.support.api import describe, get_blob, get_manifest, sha256_of
from tests.support.clients import Skopeo, ToolError
from tests.support.images import OCI_INDEX, OCI_MANIFEST, ImageFactory, MultiArchImage, OciLayout
from tests.support.server import LiveRegistry

pytestmark = pytest.mark.interop


def test_copy_to_registry_and_back_is_byte_identical(
    skopeo: Skopeo, registry_process: LiveRegistry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    """OCI layout -> registry -> a new OCI layout: same manifest digest, every blob byte for byte.

    The third layer is 12 MiB of incompressible bytes, so uploads and downloads span several buffers."""
    big = image_factory.random_layer(12 << 20, tmp_path.name)
    image = image_factory.image("skopeo-roundtrip", extra_layers=[big])
    ref = f"docker://{registry_process.host}/ns/roundtrip:v1"

    skopeo.copy(image.oci_ref, ref)

    response = get_manifest(registry_process, "ns/roundtrip", "v1")
    assert response.status_code == 200, describe(response, registry_process)
    assert response.content == image.manifest, "the registry must serve the exact manifest bytes pushed"
    assert response.headers["Docker-Content-Digest"] == image.digest
    assert response.headers["Content-Type"].split(";")[0] == OCI_MANIFEST

    back = OciLayout(tmp_path / "back")
    skopeo.copy(ref, f"oci:{back.root}:v1")

    assert back.manifest_for("v1") == image.manifest
    pulled = back.all_blobs()
    for digest in [image.digest, *image.blob_digests]:
        assert digest in pulled, f"{digest} missing from the pulled layout"
        assert pulled[digest] == image_factory.layout.read_blob(digest), f"{digest} differs after the round trip"
    assert failures(registry_process) == []


def test_multi_arch_index_copy_all(
    skopeo: Skopeo, registry_process: LiveRegistry, multi_arch_image: MultiArchImage, tmp_path: Path
) -> None:
    """``copy --all`` of a linux/amd64 + linux/arm64 index, then back: index, manifests and blobs identical."""
    ref = f"docker://{registry_process.host}/ns/multi:v1"

    skopeo.copy(multi_arch_image.oci_ref, ref, "--all")

    response = get_manifest(registry_process, "ns/multi", "v1")
    assert response.status_code == 200, describe(response, registry_process)
    assert response.content == multi_arch_image.index
    assert response.headers["Docker-Content-Digest"] == multi_arch_image.digest
    assert response.headers["Content-Type"].split(";")[0] == OCI_INDEX
    platforms = [f"{m['platform']['os']}/{m['platform']['architecture']}" for m in response.json()["manifests"]]
    assert platforms == multi_arch_image.platforms() == ["linux/amd64", "linux/arm64"]
    for child in multi_arch_image.children:
        by_digest = get_manifest(registry_process, "ns/multi", child.digest)
        assert by_digest.status_code == 200, describe(by_digest, registry_process)
        assert by_digest.content == child.manifest
        config = get_blob(registry_process, "ns/multi", child.config_digest)
        assert config.status_code == 200, describe(config, registry_process)
        assert json.loads(config.content)["architecture"] == child.architecture

    back = OciLayout(tmp_path / "back")
    skopeo.copy(ref, f"oci:{back.root}:v1", "--all")

    assert back.manifest_for("v1") == multi_arch_image.index
    pulled = back.all_blobs()
    for child in multi_arch_image.children:
        for digest in [child.digest, *child.blob_digests]:
            assert pulled.get(digest) == OciLayout(multi_arch_image.layout).read_blob(digest), digest
    assert failures(registry_process) == []


def test_copy_of_one_platform_from_index(
    skopeo: Skopeo, registry_process: LiveRegistry, multi_arch_image: MultiArchImage, tmp_path: Path
) -> None:
    """Without ``--all`` skopeo resolves the index to the arm64 manifest when told that architecture."""
    ref = f"docker://{registry_process.host}/ns/multi:v1"
    skopeo.copy(multi_arch_image.oci_ref, ref, "--all")
    arm64 = next(child for child in multi_arch_image.children if child.architecture == "arm64")

    out = tmp_path / "arm64"
    skopeo.run("--override-arch", "arm64", "copy", "--quiet", "--src-tls-verify=false", ref, f"oci:{out}:arm64")

    assert OciLayout(out).manifest_for("arm64") == arm64.manifest


def test_inspect_reports_the_pushed_image(
    skopeo: Skopeo, registry_process: LiveRegistry, image_factory: ImageFactory
) -> None:
    """``skopeo inspect`` (parsed, ``--raw`` and ``--config --raw``) sees exactly what was pushed."""
    image = image_factory.image("skopeo-inspect", labels={"org.example.suite": "interop"})
    ref = f"docker://{registry_process.host}/team/app/inspect:1.0"
    skopeo.copy(image.oci_ref, ref)

    info = skopeo.inspect(ref)
    raw = skopeo.inspect_raw(ref)
    config = skopeo.inspect_raw(ref, "--config")

    assert info["Digest"] == image.digest
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert info["Layers"] == [layer.digest for layer in image.layers]
    assert info["Labels"] == {"org.example.suite": "interop"}
    assert "1.0" in info["RepoTags"]
    assert raw == image.manifest
    assert config == image.config


def test_list_tags_after_pushing_several(
    skopeo: Skopeo, registry_process: LiveRegistry, image_factory: ImageFactory
) -> None:
    """``skopeo list-tags`` lists every pushed tag (two images, five tags) exactly once."""
    first = image_factory.image("skopeo-tags-a")
    second = image_factory.image("skopeo-tags-b")
    repo = f"docker://{registry_process.host}/ns/tagged"
    tags = {"v1": first, "v1.0": first, "latest": second, "v2": second, "stable_2024": second}
    for tag, image in tags.items():
        skopeo.copy(image.oci_ref, f"{repo}:{tag}")

    listed = skopeo.list_tags(repo)

    assert sorted(listed) == sorted(tags)
    assert len(listed) == len(set(listed))
    for tag, image in tags.items():
        assert skopeo.inspect(f"{repo}:{tag}")["Digest"] == image.digest, tag


def test_delete_removes_the_manifest(
    skopeo: Skopeo, registry_process: LiveRegistry, image_factory: ImageFactory
) -> None:
    """``skopeo delete`` (a DELETE by digest) removes that manifest and its tag; another image stays."""
    doomed = image_factory.image("skopeo-delete")
    kept = image_factory.image("skopeo-keep")
    repo = f"docker://{registry_process.host}/ns/deletable"
    skopeo.copy(doomed.oci_ref, f"{repo}:old")
    skopeo.copy(kept.oci_ref, f"{repo}:new")

    skopeo.delete(f"{repo}:old")

    by_digest = get_manifest(registry_process, "ns/deletable", doomed.digest)
    assert by_digest.status_code == 404, describe(by_digest, registry_process)
    assert by_digest.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    by_tag = get_manifest(registry_process, "ns/deletable", "old")
    assert by_tag.status_code == 404, describe(by_tag, registry_process)
    with pytest.raises(ToolError, match="manifest unknown"):
        skopeo.inspect(f"{repo}:old")
    assert skopeo.list_tags(repo) == ["new"]
    assert skopeo.inspect(f"{repo}:new")["Digest"] == kept.digest
    kept_blob = get_blob(registry_process, "ns/deletable", kept.layers[-1].digest)
    assert kept_blob.status_code == 200, describe(kept_blob, registry_process)
    assert sha256_of(kept_blob.content) == kept.layers[-1].digest


def test_copy_to_second_repository_mounts_blobs(
    skopeo: Skopeo, registry_process: LiveRegistry, image_factory: ImageFactory
) -> None:
    """A second copy of an image to another repository mounts the blobs the registry already holds."""
    image = image_factory.image("skopeo-mount")
    skopeo.copy(image.oci_ref, f"docker://{registry_process.host}/ns/origin:v1")
    before = len(records(registry_process))

    skopeo.copy(image.oci_ref, f"docker://{registry_process.host}/elsewhere/copy:v1")

    # each layer: POST ?mount=<digest>&from=ns/origin -> 201; only the config is uploaded again (skopeo
    # never tries to reuse a config), in one upload session (POST -> 202, PATCH, PUT)
    posts = matching(registry_process, "POST", r"/v2/elsewhere/copy/blobs/uploads/", since=before)
    patches = matching(registry_process, "PATCH", r"/v2/elsewhere/copy/blobs/uploads/.*", since=before)
    assert len([r for r in posts if r.status == 201]) == len(image.layers), [str(r) for r in posts]
    assert len([r for r in posts if r.status == 202]) <= 1, f"layers uploaded again: {[str(r) for r in posts]}"
    assert len(patches) <= 1, [str(r) for r in patches]
    for digest in image.blob_digests:
        blob = get_blob(registry_process, "elsewhere/copy", digest)
        assert blob.status_code == 200, describe(blob, registry_process)
        assert sha256_of(blob.content) == digest
    response = get_manifest(registry_process, "elsewhere/copy", "v1")
    assert response.content == image.manifest, describe(response, registry_process)


def test_pushing_a_tag_again_moves_it(
    skopeo: Skopeo, registry_process: LiveRegistry, image_factory: ImageFactory
) -> None:
    """Copying another image to an existing tag moves the tag; the old manifest stays reachable by digest."""
    old = image_factory.image("skopeo-old")
    new = image_factory.image("skopeo-new")
    ref = f"docker://{registry_process.host}/ns/moving:latest"

    skopeo.copy(old.oci_ref, ref)
    assert skopeo.inspect(ref)["Digest"] == old.digest
    skopeo.copy(new.oci_ref, ref)

    assert skopeo.inspect(ref)["Digest"] == new.digest
    assert skopeo.inspect_raw(ref) == new.manifest
    by_digest = get_manifest(registry_process, "ns/moving", old.digest)
    assert by_digest.status_code == 200, describe(by_digest, registry_process)
    assert by_digest.content == old.manifest
    assert skopeo.list_tags(f"docker://{registry_process.host}/ns/moving") == ["latest"]
