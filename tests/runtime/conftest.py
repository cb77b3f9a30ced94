"""Fixtures shared by the runtime tests: the live registries they pull from, test images, skopeo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clients import Skopeo, ToolHome
from tests.support.images import ImageFactory
from tests.support.registries import Registry, distribution_registry
from tests.support.server import live_registry


@pytest.fixture(params=["dockyard", "distribution"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """Every test using it runs against a live dockyard and a live CNCF Distribution."""
    if request.param == "dockyard":
        (tmp_path / "dockyard").mkdir()
        with live_registry(tmp_path / "dockyard") as live:
            yield Registry("dockyard", live.host, live.log, live.data)
    else:
        with distribution_registry(tmp_path / "distribution") as registry:
            yield registry


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> ImageFactory:
    """Test images; the busybox layer is compressed once per module."""
    made = ImageFactory(tmp_path_factory.mktemp("oci-images"))
    _ = made.base_layer
    return made


@pytest.fixture
def skopeo(tool_home: ToolHome) -> Skopeo:
    return Skopeo(tool_home)
