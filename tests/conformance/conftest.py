"""Fixtures of the conformance port: one registry per storage backend for the whole session, shared by
the four workflow modules in order (as the Go suite runs Pull, Push, Content Discovery and Content
Management against one registry and one namespace), and one :class:`Runner` per workflow module.

pytest groups the tests by the session fixture's parameter, so every backend sees the modules, and the
specs inside each module, in the Go order: ``test_01_pull`` … ``test_04_management``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from registry.app import create_app
from registry.config import FilesystemStorage, MemoryStorage, S3Storage, Settings
from tests.conformance.harness import AUTOMATIC_CROSSMOUNT, OciClient, Runner, Workflow
from tests.conformance.testdata import suite_data
from tests.support.s3 import S3Server

STORAGES = ("memory", "filesystem", "s3")


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=STORAGES)
async def oci_registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[OciClient]:
    """The registry under test (auto-mount as ``OCI_AUTOMATIC_CROSSMOUNT`` says), behind a reggie-like client."""
    storage: MemoryStorage | FilesystemStorage | S3Storage
    if request.param == "memory":
        storage = MemoryStorage()
    elif request.param == "s3":
        server: S3Server = request.getfixturevalue("s3")
        storage = S3Storage(**server.driver_settings(server.new_bucket(), prefix="conformance"))
    else:
        storage = FilesystemStorage(root=tmp_path_factory.mktemp("conformance-registry"))
    app = create_app(Settings(storage=storage, auto_mount=AUTOMATIC_CROSSMOUNT))
    async with TestClient(TestServer(app)) as client:
        yield OciClient(client)


@pytest.fixture(scope="module")
def oci(request: pytest.FixtureRequest, oci_registry: OciClient) -> Runner[Any]:
    """The runner of the requesting module's ``WORKFLOW``: its specs share this object's ``state``."""
    workflow: Workflow[Any] = request.module.WORKFLOW
    return Runner(workflow, oci_registry, suite_data())
