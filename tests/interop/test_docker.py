"""docker (a private dockerd) against a live dockyard: push, pull back, cross-repository mount."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.accesslog import failures, matching, records
from tests.support.api import describe, get_blob, get_manifest, sha256_of
from tests.support.clients import Docker, Skopeo
from tests.support.images import Image, ImageFactory, MultiArchImage, random_bytes, write_docker_archive
from tests.support.server import LiveRegistry

pytestmark = pytest.mark.interop

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def load_image(docker: Docker, image: Image, tmp_path: Path) -> str:
    """``docker load`` ``image`` as a local name; returns that name."""
    local = f"dockyard-test/{image.tag}:loaded"
    archive = write_docker_archive(image, tmp_path / f"{image.tag}.tar", [local])
    docker.run("load", "--input", str(archive))
    assert docker.image_inspect(local)["Id"] == image.config_digest
    return local


def check_pushed(registry: LiveRegistry, name: str, tag: str, digest: str, image: Image) -> dict[str, object]:
    """The manifest docker pushed is served under ``tag`` with that digest; its config is the image's."""
    response = get_manifest(registry, name, tag)
    assert response.status_code == 200, describe(response, registry)
    assert response.headers["Docker-Content-Digest"] == digest
    assert sha256_of(response.content) == digest
    assert response.headers["Content-Type"].split(";")[0] == DOCKER_MANIFEST
    manifest: dict[str, object] = response.json()
    config = manifest["config"]
    assert isinstance(config, dict)
    assert config["digest"] == image.config_digest
    layers = manifest["layers"]
    assert isinstance(layers, list)
    assert len(layers) == len(image.layers)
    return manifest


def test_push_rmi_pull_roundtrip(
    docker: Docker, registry_process: LiveRegistry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    """A three-layer image (busybox, a small file, 12 MiB of random bytes): ``docker push``, ``docker rmi``,
    ``docker pull`` (by tag and by digest) give the same image id and digest, and the container sees the files."""
    big = image_factory.random_layer(12 << 20, tmp_path.name)
    image = image_factory.image("docker-roundtrip", extra_layers=[big])
    local = load_image(docker, image, tmp_path)
    remote = f"{registry_process.host}/ns/docker-app:v1"
    docker.run("tag", local, remote)

    digest = docker.push(remote)

    check_pushed(registry_process, "ns/docker-app", "v1", digest, image)
    docker.remove_all_images()
    assert docker.image_ids() == []
    docker.run("pull", remote)
    pulled = docker.image_inspect(remote)
    assert pulled["Id"] == image.config_digest
    assert f"{registry_process.host}/ns/docker-app@{digest}" in pulled["RepoDigests"]
    assert pulled["RootFS"]["Layers"] == [layer.diff_id for layer in image.layers]
    output = docker.run("run", "--rm", "--network", "none", remote, "cat", "/hello.txt").stdout
    assert output.encode() == image.hello_text()
    checksum = docker.run("run", "--rm", "--network", "none", remote, "sha256sum", "/blob.bin").stdout.split()[0]
    assert f"sha256:{checksum}" == sha256_of(random_bytes(12 << 20, tmp_path.name))

    assert docker.push(remote) == digest, "pushing again must give the same digest (layers already exist)"
    docker.remove_all_images()
    by_digest = f"{registry_process.host}/ns/docker-app@{digest}"
    docker.run("pull", by_digest)
    assert docker.image_inspect(by_digest)["Id"] == image.config_digest
    assert failures(registry_process) == []


def test_pull_multi_arch_index(
    docker: Docker, skopeo: Skopeo, registry_process: LiveRegistry, multi_arch_image: MultiArchImage
) -> None:
    """docker pulls the linux/amd64 image out of a pushed OCI index and runs it."""
    ref = f"{registry_process.host}/ns/docker-multi:v1"
    skopeo.copy(multi_arch_image.oci_ref, f"docker://{ref}", "--all")
    amd64 = next(child for child in multi_arch_image.children if child.architecture == "amd64")

    docker.run("pull", ref)

    pulled = docker.image_inspect(ref)
    assert pulled["Id"] == amd64.config_digest
    assert pulled["Architecture"] == "amd64"
    assert f"{registry_process.host}/ns/docker-multi@{multi_arch_image.digest}" in pulled["RepoDigests"]
    output = docker.run("run", "--rm", "--network", "none", ref, "cat", "/hello.txt").stdout
    assert output.encode() == amd64.hello_text()


def test_push_to_second_repository_mounts_blobs(
    docker: Docker, registry_process: LiveRegistry, image_factory: ImageFactory, tmp_path: Path
) -> None:
    """Pushing the same image to a second repository mounts its blobs (no upload) and pulls back the same."""
    image = image_factory.image("docker-mount")
    local = load_image(docker, image, tmp_path)
    first = f"{registry_process.host}/ns/first:v1"
    second = f"{registry_process.host}/other/second:v1"
    docker.run("tag", local, first)
    docker.run("tag", local, second)
    first_digest = docker.push(first)
    before_second = len(records(registry_process))

    second_digest = docker.push(second)

    assert second_digest == first_digest, "the same image must give the same manifest in both repositories"
    manifest = check_pushed(registry_process, "other/second", "v1", second_digest, image)
    # docker asks to mount each layer it already pushed to this registry (POST ?mount=&from= -> 201);
    # only the config blob is uploaded again, in one upload session (POST -> 202, PATCH, PUT).
    posts = matching(registry_process, "POST", r"/v2/other/second/blobs/uploads/", since=before_second)
    mounted = [r for r in posts if r.status == 201]
    sessions = [r for r in posts if r.status == 202]
    patches = matching(registry_process, "PATCH", r"/v2/other/second/blobs/uploads/.*", since=before_second)
    assert len(mounted) == len(image.layers), f"layer mounts: {[str(r) for r in posts]}"
    assert len(sessions) <= 1, f"layers were uploaded again instead of mounted: {[str(r) for r in posts]}"
    assert len(patches) <= 1, f"uploads: {[str(r) for r in patches]}"
    layers = manifest["layers"]
    assert isinstance(layers, list)
    for layer in layers:
        blob = get_blob(registry_process, "other/second", layer["digest"])
        assert blob.status_code == 200, describe(blob, registry_process)
        assert sha256_of(blob.content) == layer["digest"]

    docker.remove_all_images()
    docker.run("pull", second)
    assert docker.image_inspect(second)["Id"] == image.config_digest
    first_manifest = get_manifest(registry_process, "ns/first", "v1")
    assert first_manifest.status_code == 200, describe(first_manifest, registry_process)
    assert sha256_of(first_manifest.content) == second_digest, "the first repository is unchanged"
    assert failures(registry_process) == []
