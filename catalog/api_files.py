"""The file-browser endpoints of the catalog API: an image's merged filesystem, one file's text, one layer's changes,
and the diff of two tags (see :mod:`catalog.files`)::

    GET /api/v1/catalog/repositories/{name}/-/tags/{tag}/files?path=/&platform=     DirectoryListing
    GET /api/v1/catalog/repositories/{name}/-/tags/{tag}/file?path=&platform=       FileContent
    GET /api/v1/catalog/repositories/{name}/-/tags/{tag}/layers/{index}?platform=   LayerChanges
    GET /api/v1/catalog/repositories/{name}/-/diff?from=&to=&platform=              TagDiff

``platform`` is ``os/architecture[/variant]``; empty or absent picks linux/amd64 when an index has it, else its
first image. Every handler first checks that the viewer may see the repository (404 otherwise, before any
parameter is looked at, so private repositories stay indistinguishable from unknown ones); errors are the catalog
API's ``{"error": {"code", "message"}}``. The app's ``keys.FILES`` is the :class:`ImageFiles` of its store; when
nothing else set it, :func:`add_files_api` creates one at startup and closes it at cleanup.
"""

from __future__ import annotations

from aiohttp import web

from catalog import keys
from catalog.api import BASE, NAME, endpoint
from catalog.errors import InvalidInput
from catalog.files import ImageFiles
from catalog.openapi import REPOSITORY, TAG, Operation, Parameter, add_operation, path_parameter, query_parameter
from catalog.queries import Catalog
from catalog.views import DirectoryListing, FileContent, FileEntry, TagDiff, View, Viewer
from registry import keys as registry_keys

__all__ = ["LayerChanges", "add_files_api"]


class LayerChanges(View):
    """What layer ``index`` (0 = bottom) of a tag deleted, added and changed, by path."""

    repository: str
    tag: str
    index: int
    entries: list[FileEntry]


def _platform(request: web.Request) -> str | None:
    return request.query.get("platform") or None


def _required(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    if not value:
        raise InvalidInput(f"the query parameter {name!r} is required")
    return value


async def _visible(request: web.Request, catalog: Catalog, viewer: Viewer) -> tuple[ImageFiles, str]:
    name = request.match_info["name"]
    await catalog.require_visible(viewer, name)
    return request.app[keys.FILES], name


async def list_files(request: web.Request, catalog: Catalog, viewer: Viewer) -> DirectoryListing:
    files, name = await _visible(request, catalog, viewer)
    path = request.query.get("path") or "/"
    return await files.directory(name, request.match_info["tag"], path, _platform(request))


async def read_file(request: web.Request, catalog: Catalog, viewer: Viewer) -> FileContent:
    files, name = await _visible(request, catalog, viewer)
    return await files.file(name, request.match_info["tag"], _required(request, "path"), _platform(request))


async def layer_changes(request: web.Request, catalog: Catalog, viewer: Viewer) -> LayerChanges:
    files, name = await _visible(request, catalog, viewer)
    raw, tag = request.match_info["index"], request.match_info["tag"]
    if not raw.isdecimal() or len(raw) > 6:
        raise InvalidInput(f"layer index must be a non-negative integer, not {raw[:20]!r}")
    entries = await files.layer(name, tag, int(raw), _platform(request))
    return LayerChanges(repository=name, tag=tag, index=int(raw), entries=entries)


async def tag_diff(request: web.Request, catalog: Catalog, viewer: Viewer) -> TagDiff:
    files, name = await _visible(request, catalog, viewer)
    return await files.diff(name, _required(request, "from"), _required(request, "to"), _platform(request))


# -- routes and OpenAPI -----------------------------------------------------------------------------------------

_TAG_ROUTE = f"{BASE}/repositories/{NAME}/-/tags/{{tag}}"
_TAG_DOC = f"{BASE}/repositories/{{name}}/-/tags/{{tag}}"


def _required_query(name: str, description: str) -> Parameter:
    return Parameter(name, "query", description, {"type": "string"}, required=True)


_PLATFORM = query_parameter("platform", "os/architecture[/variant]; default linux/amd64, else the first image")
_ERRORS = (400, 404, 422)
_OPERATIONS = [
    (
        Operation(
            "get",
            f"{_TAG_DOC}/files",
            "listFiles",
            "A directory of an image's merged filesystem",
            DirectoryListing,
            errors=_ERRORS,
            parameters=(REPOSITORY, TAG, query_parameter("path", "Directory to list", default="/"), _PLATFORM),
        ),
        f"{_TAG_ROUTE}/files",
        list_files,
    ),
    (
        Operation(
            "get",
            f"{_TAG_DOC}/file",
            "readFile",
            "The start of a regular file, as text unless binary",
            FileContent,
            errors=_ERRORS,
            parameters=(REPOSITORY, TAG, _required_query("path", "File to read"), _PLATFORM),
        ),
        f"{_TAG_ROUTE}/file",
        read_file,
    ),
    (
        Operation(
            "get",
            f"{_TAG_DOC}/layers/{{index}}",
            "layerChanges",
            "What one layer added, changed and deleted",
            LayerChanges,
            errors=_ERRORS,
            parameters=(REPOSITORY, TAG, path_parameter("index", "Layer index, 0 = bottom"), _PLATFORM),
        ),
        f"{_TAG_ROUTE}/layers/{{index}}",
        layer_changes,
    ),
    (
        Operation(
            "get",
            f"{BASE}/repositories/{{name}}/-/diff",
            "diffTags",
            "Layers and files that differ between tags",
            TagDiff,
            errors=_ERRORS,
            parameters=(
                REPOSITORY,
                _required_query("from", "The older tag (or digest)"),
                _required_query("to", "The newer tag (or digest)"),
                _PLATFORM,
            ),
        ),
        f"{BASE}/repositories/{NAME}/-/diff",
        tag_diff,
    ),
]


async def _open_files(app: web.Application) -> None:
    if keys.FILES not in app:
        app[keys.FILES] = ImageFiles(app[registry_keys.STORE])


async def _close_files(app: web.Application) -> None:
    if keys.FILES in app:
        app[keys.FILES].close()


def add_files_api(app: web.Application) -> None:
    """Register the file-browser endpoints on ``app``; at startup (after the store is open) set ``keys.FILES``
    unless it is already set. The app must hold ``keys.CATALOG`` by the time requests arrive."""
    for _, path, handler in _OPERATIONS:
        app.router.add_get(path, endpoint(handler))
    app.on_startup.append(_open_files)
    app.on_cleanup.append(_close_files)


for _operation, *_ in _OPERATIONS:
    add_operation(_operation)
