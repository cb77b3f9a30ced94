"""schemathesis against the catalog API's own OpenAPI document (``/api/v1/openapi.json``), served by a live
registry: ``create_app`` on a free loopback port, run by an ``aiohttp.web.AppRunner`` on an event loop in a
background thread, with real images pushed first (an image with two tags, a second repository, an index and a
signature) so that the repository and tag endpoints have data.

Both auth modes: the open registry (where anyone may PATCH and DELETE, so those operations run for real), and token
mode with anonymous requests only. Every generated request (positive and negative data, deterministic) must get a
non-5xx answer with a documented status code, a documented content type, and a body that matches its schema.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import pytest
import schemathesis
from aiohttp import web
from hypothesis import event, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from catalog.openapi import Operation, operations
from registry.app import create_app
from registry.config import MemoryStorage, Settings
from tests.catalog.conftest import basic, catalog_settings, push_artifact, push_image, push_index
from tests.reliability.strategies import PROPERTY

T = TypeVar("T")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CONFIG = {"generation": {"deterministic": True, "database": "none"}}
SCHEMATHESIS = settings(PROPERTY, max_examples=15)  # per operation, generation mode and auth mode


@dataclass
class LiveApp:
    """An app served on 127.0.0.1 from a background thread's event loop."""

    url: str
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)


@dataclass
class _Served:
    runner: web.AppRunner
    url: str


async def _serve(app: web.Application) -> _Served:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return _Served(runner, f"http://{host}:{port}")


async def _push_sample_data(url: str, token: bool) -> None:
    """Two repositories, two tags, an index and a signature. In token mode as ``root`` through the token service
    (repositories are public by default, so anonymous requests see them)."""
    async with aiohttp.ClientSession(base_url=url) as session:
        headers: dict[str, str] = {}
        if token:
            scope = "repository:library/web:pull,push repository:library/tools:pull,push"
            async with session.get(
                "/auth/token",
                params=[("service", "dockyard"), *[("scope", s) for s in scope.split()]],
                headers={"Authorization": basic("root", ROOT_PASSWORD)["Authorization"]},
            ) as resp:
                assert resp.status == 200, await resp.text()
                headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        first = await push_image(session, "library/web", "1.0", {"srv/index.html": b"<h1>hi</h1>"}, headers=headers)  # type: ignore[arg-type]
        arm = await push_image(
            session,  # type: ignore[arg-type]
            "library/web",
            None,
            {"srv/index.html": b"<h1>arm</h1>"},
            architecture="arm64",
            headers=headers,
        )
        await push_image(session, "library/web", "latest", {"srv/index.html": b"<h1>hi</h1>"}, headers=headers)  # type: ignore[arg-type]
        await push_index(session, "library/web", "multi", [first, arm], headers=headers)  # type: ignore[arg-type]
        await push_artifact(session, "library/web", first, "application/vnd.dev.cosign", b"sig", headers=headers)  # type: ignore[arg-type]
        await push_image(session, "library/tools", "v2", {"bin/tool": b"#!/bin/sh\n"}, headers=headers)  # type: ignore[arg-type]


ROOT_PASSWORD = "root-secret-333"


async def _add_root(app: web.Application) -> None:
    from auth.guard import GUARD

    await app[GUARD].accounts.add_user("root", ROOT_PASSWORD, admin=True, actor="test")


@pytest.fixture(scope="module", params=["open", "token"])
def live_catalog(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    token = request.param == "token"
    settings = catalog_settings(tmp_path_factory.mktemp(f"catalog-{request.param}"), token=token)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="live-catalog", daemon=True)
    thread.start()
    app = create_app(settings)
    live = LiveApp("", loop)
    served = live.run(_serve(app))
    live.url = served.url
    try:
        if token:
            live.run(_add_root(app))
        live.run(_push_sample_data(served.url, token))
        yield live
    finally:
        live.run(served.runner.cleanup())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def documented_operations() -> list[Operation]:
    """The operations of the document, known at collection (building an app imports every module that adds
    operations); a test checks that the live server documents exactly these."""
    create_app(Settings(storage=MemoryStorage()))
    return operations()


OPERATIONS = documented_operations()
DOCUMENTED = {operation.operation_id: operation for operation in OPERATIONS}
# Path parameters naming what _push_sample_data pushed: without them nearly every request would be a 404.
KNOWN = [
    {"name": "library/web", "tag": "1.0", "ns": "library"},
    {"name": "library/web", "tag": "multi", "ns": "library"},
    {"name": "library/tools", "tag": "v2", "ns": "library"},
]
# Negative data for every operation with a query parameter or a body (path parameters are unconstrained strings
# and can't be left out: an operation with only those has no invalid request to generate).
CASES = [
    pytest.param(operation.operation_id, mode, id=f"{operation.operation_id}-{mode.value}")
    for operation in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE
    or operation.request_body
    or any(p.location == "query" for p in operation.parameters)
]


@pytest.fixture(scope="module")
def live_schema(live_catalog: LiveApp) -> OpenApiSchema:
    """The schema as the live server serves it."""
    config = SchemathesisConfig.from_dict(CONFIG)
    return schemathesis.openapi.from_url(f"{live_catalog.url}/api/v1/openapi.json", config=config)


def test_the_live_document_is_the_documented_one(live_schema: OpenApiSchema) -> None:
    served = sorted(result.ok().definition.raw["operationId"] for result in live_schema.get_all_operations())
    assert served == sorted(operation.operation_id for operation in OPERATIONS)


# schemathesis's own pytest integration (``schemathesis.pytest.from_fixture(...).parametrize()``) fails on pytest 9
# (it sets ``Function._nodeid``, gone there), so each operation's strategy runs under hypothesis directly.
@pytest.mark.parametrize(("operation_id", "mode"), CASES)
def test_catalog_api_conforms_to_its_openapi_document(
    live_catalog: LiveApp, live_schema: OpenApiSchema, operation_id: str, mode: GenerationMode
) -> None:
    operation = live_schema.find_operation_by_id(operation_id)
    path_names = {p.name for p in DOCUMENTED[operation_id].parameters if p.location == "path"}
    known = [{k: v for k, v in values.items() if k in path_names} for values in KNOWN] if path_names else []
    strategy = st.one_of(
        operation.as_strategy(generation_mode=mode),
        *[operation.as_strategy(generation_mode=mode, path_parameters=values) for values in known],
    )

    @SCHEMATHESIS
    @given(case=strategy)
    def check(case: Case) -> None:
        response = case.call_and_validate(base_url=live_catalog.url, checks=CHECKS, timeout=30)
        event(f"{case.method} {response.status_code}")

    check()
