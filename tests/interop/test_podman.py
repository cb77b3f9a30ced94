"""podman against a live dockyard: pull what skopeo pushed, push it to another repository, pull that back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.accesslog import failures
from tests.support.api import describe, get_blob, get_manifest, sha256_of
from tests.support.clients import Podman, Skopeo
from tests.support.images import ImageFactory, MultiArchImage
from tests.support.server import LiveRegistry

pytestmark = pytest.mark.interop


def test_pull_push_and_pull_back(
    skopeo: Skopeo, podman: Podman, registry_process: LiveRegistry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    """podman pulls the skopeo-pushed image unchanged, pushes it elsewhere, and pulls that back identical."""
    image = image_factory.image("podman-roundtrip")
    source = f"{registry_process.host}/ns/podman-src:v1"
    target = f"{registry_process.host}/ns/podman-dst:v2"
    skopeo.copy(image.oci_ref, f"docker://{source}")

    pulled_id = podman.pull(source)
    pulled = podman.image_inspect(source)
    assert pulled_id == image.image_id
    assert pulled["Id"] == image.image_id
    assert pulled["Digest"] == image.digest
    assert f"{registry_process.host}/ns/podman-src@{image.digest}" in pulled["RepoDigests"]

    pushed_digest = podman.push(source, target, tmp_path / "digest")

    raw = skopeo.inspect_raw(f"docker://{target}")
    assert sha256_of(raw) == pushed_digest, "the registry must serve the manifest podman pushed, byte for byte"
    manifest = json.loads(raw)
    assert manifest["config"]["digest"] == image.config_digest
    config = get_blob(registry_process, "ns/podman-dst", image.config_digest)
    assert config.status_code == 200, describe(config, registry_process)
    assert config.content == image.config
    for layer in manifest["layers"]:
        blob = get_blob(registry_process, "ns/podman-dst", layer["digest"])
        assert blob.status_code == 200, describe(blob, registry_process)
        assert sha256_of(blob.content) == layer["digest"]
        assert len(blob.content) == layer["size"]

    podman.remove_all_images()
    assert podman.pull(target) == image.image_id
    again = podman.image_inspect(target)
    assert again["Digest"] == pushed_digest
    assert again["RootFS"]["Layers"] == [layer.diff_id for layer in image.layers]
    assert failures(registry_process) == []


def test_pull_multi_arch_picks_the_host_platform(
    skopeo: Skopeo, podman: Podman, registry_process: LiveRegistry, multi_arch_image: MultiArchImage
) -> None:
    """podman resolves a pushed index to its linux/amd64 manifest (the arm64 one is only stored)."""
    ref = f"{registry_process.host}/ns/podman-multi:v1"
    skopeo.copy(multi_arch_image.oci_ref, f"docker://{ref}", "--all")
    amd64 = next(child for child in multi_arch_image.children if child.architecture == "amd64")

    assert podman.pull(ref) == amd64.image_id
    head = get_manifest(registry_process, "ns/podman-multi", "v1", method="HEAD")
    assert head.status_code == 200, describe(head, registry_process)
    assert head.headers["Docker-Content-Digest"] == multi_arch_image.digest
    assert int(head.headers["Content-Length"]) == len(multi_arch_image.index)
