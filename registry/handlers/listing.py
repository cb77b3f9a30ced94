"""Listings: ``/v2/<name>/tags/list``, ``/v2/_catalog`` and ``/v2/<name>/referrers/<digest>``."""

from __future__ import annotations

import json

from aiohttp import web

from registry.errors import ErrorCode, RegistryError
from registry.handlers.common import access_control, digest_param, json_response, page, repo_name, settings, store
from registry.handlers.manifests import metadata_index
from registry.manifests import OCI_INDEX


async def list_tags(request: web.Request) -> web.Response:
    """Tags sorted lexically, paginated with ``n``/``last`` and a ``Link`` header. Read from the metadata index
    (kept in step by every push and delete before they answer) when it knows the repository, else from storage
    (a repository with blobs but no manifest yet, or no index)."""
    name = repo_name(request)
    index = metadata_index(request)
    tags = await index.tag_names(name, request.query.get("last"), _fetch_limit(request)) if index else None
    if tags is None:
        reg = store(request)
        if not await reg.repos.exists(name):
            raise RegistryError(ErrorCode.NAME_UNKNOWN, f"repository {name} not known to registry", {"name": name})
        tags = await reg.manifests.tags(name)
    tags, link = page(request, tags)
    return json_response({"name": name, "tags": tags}, {"Link": link} if link else None)


async def catalog(request: web.Request) -> web.Response:
    """Repository names sorted lexically, paginated like the tags list. Read from the metadata index when the
    app has one (never a walk over storage), else from storage."""
    control = access_control(request)
    names = await _repository_names(request, limit_pages=control is None)
    if control is not None:
        names = await control.visible(request, names)
    names, link = page(request, names)
    return json_response({"repositories": names}, {"Link": link} if link else None)


def _fetch_limit(request: web.Request) -> int | None:
    """How many items one page needs from the index: one more than ``n`` (so that ``page`` still sees whether a
    next page exists), or None (all) without a valid ``n``."""
    raw_n = request.query.get("n", "")
    if not (raw_n.isascii() and raw_n.isdigit()):
        return None
    return min(int(raw_n), settings(request).page_size_max) + 1


async def _repository_names(request: web.Request, limit_pages: bool) -> list[str]:
    """The candidates for one ``_catalog`` page: names after ``last``; when nothing is filtered out later
    (``limit_pages``), only one more than the page needs."""
    index = metadata_index(request)
    if index is None:
        return await store(request).repos.catalog()
    return await index.repository_names(request.query.get("last"), _fetch_limit(request) if limit_pages else None)


async def referrers(request: web.Request) -> web.Response:
    """An image index of the manifests whose subject is the digest (empty, not 404, when none)."""
    name, digest = repo_name(request), digest_param(request)
    artifact_type = request.query.get("artifactType")
    found = await store(request).manifests.referrers(name, digest, artifact_type)
    found.sort(key=lambda d: str(d["digest"]))
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}
    headers = {"Content-Type": OCI_INDEX}
    if artifact_type:
        headers["OCI-Filters-Applied"] = "artifactType"
    return web.Response(body=json.dumps(index).encode(), headers=headers)
