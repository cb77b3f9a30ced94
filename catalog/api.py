"""The catalog's JSON API under ``/api/v1/catalog/`` and its OpenAPI document at ``/api/v1/openapi.json``.

Repository names contain slashes, so what follows a name comes after a ``/-/`` separator (a path component can't
be ``-`` in a repository name)::

    GET    /api/v1/catalog/search?q=&page=&per_page=              Page[RepositorySummary], best match first
    GET    /api/v1/catalog/home                                   HomeView
    GET    /api/v1/catalog/namespaces/{ns}?page=&per_page=        NamespaceView
    GET    /api/v1/catalog/repositories/{name}                    RepositoryDetail
    PATCH  /api/v1/catalog/repositories/{name}                    {description?, visibility?} -> RepositoryDetail
    GET    /api/v1/catalog/repositories/{name}/-/tags?page=&per_page=   Page[TagSummary]
    GET    /api/v1/catalog/repositories/{name}/-/tags/{tag}       TagDetail
    DELETE /api/v1/catalog/repositories/{name}/-/tags/{tag}       204

Every handler calls one ``Catalog`` method (``app[catalog.keys.CATALOG]``) for the request's viewer
(``catalog.viewer.viewer_of``: session cookie or HTTP Basic; anonymous otherwise). Errors are
``{"error": {"code", "message"}}`` with the ``CatalogError``'s status (a database that can't be reached: 503
``UNAVAILABLE`` with ``Retry-After``); ``page``/``per_page`` that are not integers
in range (per_page at most 100) are 400. Private repositories the caller may not see answer 404, like unknown ones.
A read-only personal access token may not PATCH or DELETE (403). Changes use PATCH and DELETE only, which a
browser never sends cross-site without a CORS preflight (that this API does not grant): no CSRF through here; and
with the session cookie they must come from this registry's origin (``catalog.web.origin``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from auth.database import is_unavailable
from catalog import keys
from catalog.errors import CatalogError, InvalidInput
from catalog.openapi import (
    PAGE,
    PER_PAGE,
    REPOSITORY,
    TAG,
    Operation,
    add_operation,
    document,
    path_parameter,
    query_parameter,
)
from catalog.queries import MAX_PAGE, MAX_PER_PAGE, Catalog
from catalog.signin import TooManyAttempts
from catalog.viewer import viewer_of
from catalog.views import (
    HomeView,
    NamespaceView,
    Page,
    RepositoryDetail,
    RepositorySummary,
    TagDetail,
    TagSummary,
    Viewer,
)
from registry.errors import DATABASE_UNAVAILABLE, RETRY_AFTER

__all__ = ["BASE", "RepositoryUpdate", "add_catalog_api"]

log = logging.getLogger(__name__)

BASE = "/api/v1/catalog"
OPENAPI_PATH = "/api/v1/openapi.json"
# A name whose path components never start with "-": "/-/" always separates the name from what follows.
NAME = r"{name:[^/-][^/]*(?:/[^/-][^/]*)*}"
Handler = Callable[[web.Request, Catalog, Viewer], Awaitable[Any]]
_CODES = {
    400: "INVALID_INPUT",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    422: "UNREADABLE_LAYER",
    429: "TOO_MANY_REQUESTS",
}


class RepositoryUpdate(BaseModel):
    """The body of ``PATCH .../repositories/{name}``: the fields to change (at least one)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    visibility: Literal["public", "private"] | None = None


def error_response(exc: CatalogError) -> web.Response:
    """The JSON error of ``exc``, with its status."""
    code = _CODES.get(exc.status, "INTERNAL_ERROR")
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyAttempts) else None
    return web.json_response({"error": {"code": code, "message": str(exc)}}, status=exc.status, headers=headers)


def unavailable_response(request: web.Request, exc: Exception) -> web.Response:
    """503 ``UNAVAILABLE`` with ``Retry-After``: the database can't be reached right now (one log line)."""
    log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
    body = {"error": {"code": "UNAVAILABLE", "message": DATABASE_UNAVAILABLE}}
    return web.json_response(body, status=503, headers={"Retry-After": RETRY_AFTER})


def endpoint(handler: Handler, status: int = 200) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a handler: find the catalog and the viewer, run, answer its model as JSON (204 for None)."""

    async def run(request: web.Request) -> web.Response:
        try:
            catalog = request.app[keys.CATALOG]
            result = await handler(request, catalog, await viewer_of(request))
        except CatalogError as exc:
            return error_response(exc)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return unavailable_response(request, exc)
        if result is None:
            return web.Response(status=204)
        return web.json_response(text=result.model_dump_json(), status=status)

    return run


def page_args(request: web.Request) -> tuple[int, int]:
    """``page`` and ``per_page`` from the query string (defaults 1 and 25), or ``InvalidInput``."""
    return _int_query(request, "page", 1, MAX_PAGE), _int_query(request, "per_page", 25, MAX_PER_PAGE)


def _int_query(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdecimal() or not 1 <= int(raw) <= maximum:
        raise InvalidInput(f"{name} must be an integer between 1 and {maximum}")
    return int(raw)


# -- handlers -----------------------------------------------------------------------------------------------


async def search(request: web.Request, catalog: Catalog, viewer: Viewer) -> Page[RepositorySummary]:
    page, per_page = page_args(request)
    return await catalog.search(viewer, request.query.get("q", ""), page, per_page)


async def home(_request: web.Request, catalog: Catalog, viewer: Viewer) -> HomeView:
    return await catalog.home(viewer)


async def namespace(request: web.Request, catalog: Catalog, viewer: Viewer) -> NamespaceView:
    page, per_page = page_args(request)
    return await catalog.namespace(viewer, request.match_info["ns"], page, per_page)


async def repository(request: web.Request, catalog: Catalog, viewer: Viewer) -> RepositoryDetail:
    return await catalog.repository(viewer, request.match_info["name"])


async def update_repository(request: web.Request, catalog: Catalog, viewer: Viewer) -> RepositoryDetail:
    name = request.match_info["name"]
    await catalog.require_visible(viewer, name)  # 404 before anything else for what the caller can't see
    update = await _update_body(request)
    if update.visibility is not None:
        await catalog.set_visibility(viewer, name, update.visibility)
    if update.description is not None:
        await catalog.set_description(viewer, name, update.description)
    return await catalog.repository(viewer, name)


async def tags(request: web.Request, catalog: Catalog, viewer: Viewer) -> Page[TagSummary]:
    page, per_page = page_args(request)
    return await catalog.tags(viewer, request.match_info["name"], page, per_page)


async def tag(request: web.Request, catalog: Catalog, viewer: Viewer) -> TagDetail:
    return await catalog.tag(viewer, request.match_info["name"], request.match_info["tag"])


async def delete_tag(request: web.Request, catalog: Catalog, viewer: Viewer) -> None:
    await catalog.delete_tag(viewer, request.match_info["name"], request.match_info["tag"])


async def openapi(_request: web.Request) -> web.Response:
    """The OpenAPI document of every registered operation."""
    return web.json_response(document())


async def _update_body(request: web.Request) -> RepositoryUpdate:
    try:
        update = RepositoryUpdate.model_validate_json(await request.read() or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"invalid body: {where}: {first['msg']}") from None
    if update.description is None and update.visibility is None:
        raise InvalidInput("nothing to change: send description and/or visibility")
    return update


# -- the route table ----------------------------------------------------------------------------------------

_REPO = f"{BASE}/repositories/{NAME}"
_DOC_REPO = f"{BASE}/repositories/{{name}}"
_QUERY = query_parameter("q", "Words to find in names and descriptions; empty lists everything", default="")
_NAMESPACE = path_parameter("ns", "User or organization name")
_ROUTES: list[tuple[Operation, str, Handler]] = [
    (
        Operation(
            "get",
            f"{BASE}/search",
            "search",
            "Search repositories",
            Page[RepositorySummary],
            parameters=(_QUERY, PAGE, PER_PAGE),
            errors=(400,),
        ),
        f"{BASE}/search",
        search,
    ),
    (
        Operation("get", f"{BASE}/home", "home", "Recently pushed and most pulled repositories", HomeView, errors=()),
        f"{BASE}/home",
        home,
    ),
    (
        Operation(
            "get",
            f"{BASE}/namespaces/{{ns}}",
            "namespace",
            "The repositories of a user or organization",
            NamespaceView,
            parameters=(_NAMESPACE, PAGE, PER_PAGE),
        ),
        f"{BASE}/namespaces/{{ns}}",
        namespace,
    ),
    (
        Operation(
            "get",
            f"{_DOC_REPO}/-/tags",
            "listTags",
            "Tags, newest push first",
            Page[TagSummary],
            parameters=(REPOSITORY, PAGE, PER_PAGE),
        ),
        f"{_REPO}/-/tags",
        tags,
    ),
    (
        Operation(
            "get",
            f"{_DOC_REPO}/-/tags/{{tag}}",
            "getTag",
            "A tag: platforms, layers, config, referrers",
            TagDetail,
            parameters=(REPOSITORY, TAG),
            errors=(404,),
        ),
        f"{_REPO}/-/tags/{{tag}}",
        tag,
    ),
    (
        Operation(
            "delete",
            f"{_DOC_REPO}/-/tags/{{tag}}",
            "deleteTag",
            "Delete a tag (namespace admins)",
            None,
            204,
            parameters=(REPOSITORY, TAG),
            errors=(403, 404),
        ),
        f"{_REPO}/-/tags/{{tag}}",
        delete_tag,
    ),
    (
        Operation(
            "get",
            _DOC_REPO,
            "getRepository",
            "A repository: summary, description, sizes",
            RepositoryDetail,
            parameters=(REPOSITORY,),
            errors=(404,),
        ),
        _REPO,
        repository,
    ),
    (
        Operation(
            "patch",
            _DOC_REPO,
            "updateRepository",
            "Change description and/or visibility (namespace admins)",
            RepositoryDetail,
            parameters=(REPOSITORY,),
            request_body=RepositoryUpdate,
            errors=(400, 403, 404),
        ),
        _REPO,
        update_repository,
    ),
]


def add_catalog_api(app: web.Application) -> None:
    """Register the catalog endpoints and ``/api/v1/openapi.json`` on ``app`` (which must hold
    ``keys.CATALOG`` by the time requests arrive). Routes under a repository name are added tags first, so that
    routes added later with a ``/-/`` suffix are never taken for a name."""
    for operation, path, handler in _ROUTES:
        app.router.add_route(operation.method.upper(), path, endpoint(handler, operation.status))
    app.router.add_get(OPENAPI_PATH, openapi)


for _operation, *_ in _ROUTES:
    add_operation(_operation)
