"""The catalog JSON API (``catalog.api``) over a catalog with accounts: status codes, JSON errors, visibility,
PATCH/DELETE permissions (HTTP Basic with passwords and personal access tokens), and the OpenAPI document."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from sqlalchemy.ext.asyncio import create_async_engine

import catalog.api_files  # noqa: F401  (importing it registers the file browser's operations, as the app does)
from catalog import keys
from catalog.api import BASE, add_catalog_api
from catalog.openapi import REPOSITORY, TAG, Operation, add_operation, operations
from catalog.views import DirectoryListing
from tests.catalog.test_queries import PASSWORD, CatalogWorld, _push_image, close_world, open_world
from tests.support.server import free_port

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]
REPOS = f"{BASE}/repositories"


def basic(user: str, secret: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[CatalogWorld]:
    opened = await open_world(f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}")
    await opened.repo("acme/app", minutes=3, pulls=5, visibility="public", description="The *app*", tags=3)
    await opened.repo("acme/secret", minutes=2, visibility="private", tags=1)
    await opened.repo("bob/tool", minutes=1)
    yield opened
    await close_world(opened)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, world: CatalogWorld) -> Client:
    app = web.Application()
    app[keys.CATALOG] = world.catalog
    add_catalog_api(app)
    return await aiohttp_client(app)


async def error_of(resp: Any, status: int, code: str) -> str:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    assert message
    return message


async def test_search_and_paging(client: Client) -> None:
    resp = await client.get(f"{BASE}/search", params={"q": "app", "per_page": "1"})
    assert resp.status == 200
    body = await resp.json()
    assert (body["total"], body["page"], body["per_page"]) == (1, 1, 1)
    assert body["items"][0]["name"] == "acme/app"
    everything = await (await client.get(f"{BASE}/search")).json()
    assert [item["name"] for item in everything["items"]] == ["acme/app", "bob/tool"]


@pytest.mark.parametrize(
    "query", [{"page": "0"}, {"page": "x"}, {"per_page": "101"}, {"per_page": "-1"}, {"page": "1.5"}]
)
async def test_bad_paging_is_400(client: Client, query: dict[str, str]) -> None:
    message = await error_of(await client.get(f"{BASE}/search", params=query), 400, "INVALID_INPUT")
    assert "between 1 and" in message
    await error_of(await client.get(f"{REPOS}/acme/app/-/tags", params=query), 400, "INVALID_INPUT")


async def test_home_and_namespace(client: Client) -> None:
    home = await (await client.get(f"{BASE}/home")).json()
    assert [r["name"] for r in home["recent"]] == ["acme/app", "bob/tool"]
    assert (home["repository_count"], home["tag_count"]) == (2, 3)
    acme = await (await client.get(f"{BASE}/namespaces/acme", headers=basic("alice"))).json()
    assert (acme["kind"], acme["repositories"]["total"]) == ("org", 2)
    await error_of(await client.get(f"{BASE}/namespaces/nobody"), 404, "NOT_FOUND")


async def test_private_repository_is_404_for_outsiders_everywhere(client: Client) -> None:
    for headers in ({}, basic("bob"), basic("alice", "wrong-password")):
        for path in ("acme/secret", "acme/secret/-/tags", "acme/secret/-/tags/t0"):
            await error_of(await client.get(f"{REPOS}/{path}", headers=headers), 404, "NOT_FOUND")
        found = await (await client.get(f"{BASE}/search", params={"q": "secret"}, headers=headers)).json()
        assert found["total"] == 0
        namespace = await (await client.get(f"{BASE}/namespaces/acme", headers=headers)).json()
        assert [r["name"] for r in namespace["repositories"]["items"]] == ["acme/app"]
    detail = await (await client.get(f"{REPOS}/acme/secret", headers=basic("alice"))).json()
    assert (detail["summary"]["visibility"], detail["can_admin"]) == ("private", True)
    assert (await client.get(f"{REPOS}/acme/secret", headers=basic("root"))).status == 200


async def test_repository_tags_and_tag(client: Client, world: CatalogWorld) -> None:
    detail = await (await client.get(f"{REPOS}/acme/app")).json()
    assert detail["description_html"] == "<p>The <em>app</em></p>\n"
    assert detail["can_admin"] is False
    tags = await (await client.get(f"{REPOS}/acme/app/-/tags", params={"per_page": "2", "page": "2"})).json()
    assert ([t["name"] for t in tags["items"]], tags["total"]) == (["t2"], 3)
    digest, _ = await _push_image(world, "acme/app", "v1")
    tag = await (await client.get(f"{REPOS}/acme/app/-/tags/v1")).json()
    assert tag["tag"]["digest"] == digest
    assert [layer["created_by"] for layer in tag["platforms"][0]["layers"]] == ["ADD rootfs.tar /", "COPY app /app"]
    await error_of(await client.get(f"{REPOS}/acme/app/-/tags/nope"), 404, "NOT_FOUND")
    await error_of(await client.get(f"{REPOS}/acme/nothing"), 404, "NOT_FOUND")


async def test_patch_permissions(client: Client) -> None:
    body = {"description": "# Hello"}
    await error_of(await client.patch(f"{REPOS}/acme/app", json=body), 403, "FORBIDDEN")
    await error_of(await client.patch(f"{REPOS}/acme/app", json=body, headers=basic("bob")), 403, "FORBIDDEN")
    await error_of(await client.patch(f"{REPOS}/acme/secret", json=body, headers=basic("bob")), 404, "NOT_FOUND")
    resp = await client.patch(f"{REPOS}/acme/app", json={**body, "visibility": "private"}, headers=basic("alice"))
    assert resp.status == 200, await resp.text()
    changed = await resp.json()
    assert (changed["description_html"], changed["summary"]["visibility"]) == ("<h1>Hello</h1>\n", "private")
    await error_of(await client.get(f"{REPOS}/acme/app"), 404, "NOT_FOUND")
    resp = await client.patch(f"{REPOS}/bob/tool", json={"visibility": "private"}, headers=basic("root"))
    assert resp.status == 200


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b"{}", b'{"visibility": "secret"}', b'{"owner": "bob"}', b'{"description": 5}'],
)
async def test_patch_rejects_bad_bodies(client: Client, body: bytes) -> None:
    resp = await client.patch(f"{REPOS}/acme/app", data=body, headers=basic("alice"))
    await error_of(resp, 400, "INVALID_INPUT")


async def test_patch_too_long_description(client: Client) -> None:
    resp = await client.patch(f"{REPOS}/acme/app", json={"description": "x" * 25_001}, headers=basic("alice"))
    assert "25000" in await error_of(resp, 400, "INVALID_INPUT")


async def test_read_only_token_cannot_change_anything(client: Client, world: CatalogWorld) -> None:
    assert world.accounts is not None
    _, read_only = await world.accounts.create_token("alice", "ro", read_only=True, actor="alice")
    _, writable = await world.accounts.create_token("alice", "rw", actor="alice")
    headers = basic("alice", read_only)
    assert (await client.get(f"{REPOS}/acme/secret", headers=headers)).status == 200  # reading is fine
    await error_of(
        await client.patch(f"{REPOS}/acme/app", json={"description": "x"}, headers=headers), 403, "FORBIDDEN"
    )
    await error_of(await client.delete(f"{REPOS}/acme/app/-/tags/t0", headers=headers), 403, "FORBIDDEN")
    resp = await client.patch(f"{REPOS}/acme/app", json={"description": "x"}, headers=basic("alice", writable))
    assert resp.status == 200


async def test_basic_credentials_are_throttled_like_docker_login(client: Client, world: CatalogWorld) -> None:
    world.catalog.limiter.max_failures = 2
    for _ in range(2):  # wrong passwords are anonymous: public content, no error
        assert (await client.get(f"{BASE}/search", headers=basic("alice", "wrong-password"))).status == 200
    resp = await client.get(f"{REPOS}/acme/secret", headers=basic("alice"))  # even the right one, for now
    await error_of(resp, 429, "TOO_MANY_REQUESTS")
    assert int(resp.headers["Retry-After"]) >= 1


async def test_delete_tag(client: Client, world: CatalogWorld) -> None:
    await _push_image(world, "acme/app", "v1")
    await error_of(await client.delete(f"{REPOS}/acme/app/-/tags/v1"), 403, "FORBIDDEN")
    await error_of(await client.delete(f"{REPOS}/acme/app/-/tags/v1", headers=basic("bob")), 403, "FORBIDDEN")
    resp = await client.delete(f"{REPOS}/acme/app/-/tags/v1", headers=basic("alice"))
    assert resp.status == 204
    assert await world.store.manifests.tags("acme/app") == []
    await error_of(await client.delete(f"{REPOS}/acme/app/-/tags/v1", headers=basic("alice")), 404, "NOT_FOUND")


async def test_routes_added_later_under_a_name_are_not_taken_for_names(
    aiohttp_client: ClientFactory, world: CatalogWorld
) -> None:
    async def diff(request: web.Request) -> web.Response:
        return web.json_response({"name": request.match_info["name"]})

    app = web.Application()
    app[keys.CATALOG] = world.catalog
    add_catalog_api(app)
    app.router.add_get(f"{REPOS}/{{name:.+?}}/-/diff", diff)
    client = await aiohttp_client(app)
    assert await (await client.get(f"{REPOS}/acme/app/-/diff")).json() == {"name": "acme/app"}


async def test_openapi_document_is_valid_and_extensible(client: Client) -> None:
    document = await (await client.get("/api/v1/openapi.json")).json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    assert set(paths[f"{REPOS}/{{name}}"]) == {"get", "patch"}
    assert set(paths[f"{REPOS}/{{name}}/-/tags/{{tag}}"]) == {"get", "delete"}
    search = paths[f"{BASE}/search"]["get"]
    assert search["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].startswith(
        "#/components/schemas/Page"
    )
    assert search["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert "RepositoryUpdate" in document["components"]["schemas"]
    for browser in ("files", "file"):
        assert "get" in paths[f"{REPOS}/{{name}}/-/tags/{{tag}}/{browser}"]
    assert "get" in paths[f"{REPOS}/{{name}}/-/diff"]
    files = Operation(
        "get",
        f"{REPOS}/{{name}}/-/tags/{{tag}}/extension-test",
        "extensionTest",
        "Files",
        DirectoryListing,
        parameters=(REPOSITORY, TAG),
    )
    before = len(operations())
    add_operation(files)
    try:
        extended = await (await client.get("/api/v1/openapi.json")).json()
        validate(extended)
        assert "DirectoryListing" in extended["components"]["schemas"]
        assert len(operations()) == before + 1
    finally:
        from catalog import openapi

        openapi._OPERATIONS.pop(("get", files.path))


async def test_a_database_outage_is_a_503_json_error_and_basic_fails_closed(
    client: Client, world: CatalogWorld
) -> None:
    dead = create_async_engine(f"postgresql+asyncpg://dockyard@127.0.0.1:{free_port()}/accounts")
    catalog = world.catalog
    catalog.engine = dead
    try:
        for resp in (await client.get(f"{BASE}/search"), await client.get(f"{REPOS}/acme/app")):
            assert "database" in await error_of(resp, 503, "UNAVAILABLE")
            assert resp.headers["Retry-After"] == "5"
        catalog.engine, catalog.limiter.engine = world.engine, dead  # only the failed-login limits are down
        assert (await client.get(f"{BASE}/search")).status == 200
        await error_of(await client.get(f"{BASE}/search", headers=basic("alice")), 503, "UNAVAILABLE")
    finally:
        catalog.engine = catalog.limiter.engine = world.engine
        await dead.dispose()
    assert (await client.get(f"{REPOS}/acme/secret", headers=basic("alice"))).status == 200
