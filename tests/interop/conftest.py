"""Fixtures of the interop suite: images built once per session, one private dockerd per worker,
and the real clients (skopeo, podman, buildah, docker) with private state under each test's temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clients import Buildah, Docker, Podman, Skopeo, ToolHome
from tests.support.dockerd import Dockerd, running_dockerd
from tests.support.images import ImageFactory, MultiArchImage
from tests.support.s3 import S3Server
from tests.support.server import LiveRegistry, live_registry


@pytest.fixture(params=["filesystem", "s3"])
def registry_process(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveRegistry]:
    """Every interop test runs against a live ``dockyard serve`` twice: on the filesystem and on S3 (moto)."""
    env: dict[str, str] | None = None
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3")
        env = server.registry_env(server.new_bucket(), prefix="interop")
    with live_registry(tmp_path, env=env) as reg:
        yield reg


@pytest.fixture(scope="session")
def image_factory(tmp_path_factory: pytest.TempPathFactory) -> ImageFactory:
    """The session's OCI layout; its busybox layer is compressed once, each image adds a small unique layer."""
    factory = ImageFactory(tmp_path_factory.mktemp("oci-images"))
    _ = factory.base_layer  # build it now, not in the first test's timing
    return factory


@pytest.fixture(scope="session")
def multi_arch_image(image_factory: ImageFactory) -> MultiArchImage:
    """One linux/amd64 + linux/arm64 OCI index (read-only: tests push it, never change it)."""
    return image_factory.multi_arch("multi")


@pytest.fixture
def skopeo(tool_home: ToolHome, registry_process: LiveRegistry) -> Skopeo:
    return Skopeo(tool_home, registry_process)


@pytest.fixture
def podman(tool_home: ToolHome, registry_process: LiveRegistry) -> Podman:
    return Podman(tool_home, registry_process)


@pytest.fixture
def buildah(tool_home: ToolHome, registry_process: LiveRegistry) -> Buildah:
    return Buildah(tool_home, registry_process)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """One private dockerd per session (per xdist worker), stopped by pid at the end."""
    with running_dockerd() as daemon:
        yield daemon


@pytest.fixture
def docker(dockerd: Dockerd, tool_home: ToolHome, registry_process: LiveRegistry) -> Iterator[Docker]:
    """The docker CLI on the worker's dockerd; every image is removed afterwards, so tests never share layers."""
    client = Docker(dockerd.host, dockerd.config_dir, tool_home, registry_process)
    client.remove_all_images()
    try:
        yield client
    finally:
        client.remove_all_images()
