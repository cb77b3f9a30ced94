"""Fixtures of the hostile-input suite: a seeded registry app on the memory driver (for the /v2 property tests)."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from registry import keys
from registry.app import create_app
from registry.config import MemoryStorage, Settings
from storage.memory import MemoryDriver
from tests.reliability.tally import Tally
from tests.support.oci import OCI_INDEX, OCI_MANIFEST, descriptor, image_manifest, push_image

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]

SEED_NAME = "lib/app"
SEED_TAG = "v1"
# What tests/support/oci.push_image pushes for the seed: these exact bytes.
SEED_CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "tag": SEED_TAG}).encode()
SEED_LAYER = f"layer of {SEED_NAME}:{SEED_TAG}".encode()


def seed_manifest() -> bytes:
    """The seed image's manifest, byte for byte as pushed."""
    return json.dumps(image_manifest(SEED_CONFIG, [SEED_LAYER])).encode()


def seed_index() -> bytes:
    """An OCI index whose one entry is the seed image."""
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, seed_manifest())]}
    ).encode()


@dataclass
class SeededRegistry:
    """An app over a memory driver the test can inspect, holding ``lib/app:v1`` and an open upload session."""

    client: Client
    driver: MemoryDriver
    manifest_digest: str
    manifest: bytes
    upload_id: str = ""

    def storage(self) -> dict[str, bytes]:
        """Every key of the storage and its bytes (modification times left out)."""
        return {key: data for key, (data, _modified) in self.driver.files.items()}

    async def listing(self) -> tuple[list[str], list[str] | None]:
        """What the metadata index lists: the repositories, and the tags of the seed repository."""
        app = self.client.server.app
        assert app is not None
        index = app[keys.METADATA_INDEX]
        return await index.repository_names(), await index.tag_names(SEED_NAME)

    async def reseed(self) -> None:
        """Put the seed image back (idempotent) if an earlier example deleted it, and open a fresh session."""
        resp = await self.client.head(f"/v2/{SEED_NAME}/manifests/{SEED_TAG}")
        if resp.status != 200:
            self.manifest_digest, self.manifest = await push_image(self.client, SEED_NAME, SEED_TAG)
        resp = await self.client.post(f"/v2/{SEED_NAME}/blobs/uploads/")
        assert resp.status == 202, await resp.text()
        self.upload_id = resp.headers["Docker-Upload-UUID"]


@pytest.fixture
async def seeded(aiohttp_client: ClientFactory) -> SeededRegistry:
    driver = MemoryDriver()
    client = await aiohttp_client(create_app(Settings(storage=MemoryStorage()), driver=driver))
    digest, manifest = await push_image(client, SEED_NAME, SEED_TAG)
    assert manifest == seed_manifest()
    registry = SeededRegistry(client, driver, digest, manifest)
    await registry.reseed()
    return registry


EXAMPLES = pytest.StashKey[int]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Count the examples a hypothesis test runs (through ``.hypothesis.inner_test``, the documented hook for
    wrapping each example), for its row in REPORT.md."""
    handle = getattr(getattr(item, "obj", None), "hypothesis", None)
    if handle is None:
        return (yield)
    inner, count = handle.inner_test, [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return inner(*args, **kwargs)

    handle.inner_test = functools.wraps(inner)(counted)
    try:
        return (yield)
    finally:
        handle.inner_test = inner
        item.stash[EXAMPLES] = count[0]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Any:
    """Keep each phase's report on the item, so the ``tally`` fixture knows whether its test passed; a property
    test's examples become its row of REPORT.md."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    examples = item.stash.get(EXAMPLES, 0)
    if report.when == "call" and examples:
        rows = Tally(item.nodeid)
        rows.record("Hostile input", _property_row(item), tried=examples)
        rows.write("passed" if report.passed else "failed")
    return report


def _property_row(item: pytest.Item) -> str:
    """The report's name of a property test: its module's subject and the test's name."""
    module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")
    test = item.name.split("[")[0].removeprefix("test_").replace("_", " ")
    return f"property ({module.replace('_', ' ')}): {test}"


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """Rows for REPORT.md (see ``tests/reliability/tally.py``), written with the test's result when it ends."""
    rows = Tally(request.node.nodeid)
    yield rows
    call = getattr(request.node, "report_call", None)
    rows.write("passed" if call is not None and call.passed else "failed")
