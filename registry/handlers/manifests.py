"""``/v2/<name>/manifests/<reference>``: GET, HEAD, PUT and DELETE by tag or digest."""

from __future__ import annotations

from aiohttp import web

from registry import keys
from registry.errors import ErrorCode, RegistryError
from registry.handlers.common import read_limited, repo_name, settings, store
from registry.index import MetadataIndex
from registry.reference import Digest, is_tag, parse_reference


def metadata_index(request: web.Request) -> MetadataIndex | None:
    """The app's metadata index (told of every change after storage made it), or None without one."""
    return request.app.get(keys.METADATA_INDEX)


def lookup_reference(request: web.Request) -> Digest | str:
    """The reference of a GET/HEAD/DELETE: a tag that cannot exist is simply unknown (404), as the
    conformance suite expects; a malformed digest is still DIGEST_INVALID (400)."""
    try:
        return parse_reference(request.match_info["reference"])
    except RegistryError as exc:
        if exc.code is ErrorCode.TAG_INVALID:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, exc.message) from None
        raise


async def get_manifest(request: web.Request) -> web.Response:
    """The exact bytes pushed, with their media type and digest."""
    name, reference = repo_name(request), lookup_reference(request)
    manifest = await store(request).manifests.get(name, reference)
    etag = f'"{manifest.digest}"'
    headers = {
        "Content-Type": manifest.media_type,
        "Docker-Content-Digest": str(manifest.digest),
        "ETag": etag,
    }
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if request.method == "HEAD":
        return web.Response(status=200, headers={**headers, "Content-Length": str(len(manifest.body))})
    if (index := metadata_index(request)) is not None:
        await index.pulled(name, reference)  # counted like Docker Hub: a manifest GET is a pull
    return web.Response(status=200, body=manifest.body, headers=headers)


async def put_manifest(request: web.Request) -> web.Response:
    """Validate and store a manifest; 201 with its digest (and ``OCI-Subject`` when it has a subject)."""
    name, reference = repo_name(request), parse_reference(request.match_info["reference"])
    extra_tags = request.query.getall("tag", [])
    if bad := [t for t in extra_tags if not is_tag(t)]:
        raise RegistryError(ErrorCode.TAG_INVALID, f"invalid tag {bad[0][:200]!r}")
    data = await read_limited(request, settings(request).max_manifest_size)
    result = await store(request).manifests.put(
        name, reference, data, request.headers.get("Content-Type", ""), extra_tags
    )
    if (index := metadata_index(request)) is not None:
        tags = ([reference] if isinstance(reference, str) else []) + extra_tags
        await index.manifest_pushed(name, result.digest, tags)
    headers = {
        "Location": f"/v2/{name}/manifests/{result.digest}",
        "Docker-Content-Digest": str(result.digest),
        "Content-Length": "0",
    }
    if result.subject is not None:
        headers["OCI-Subject"] = str(result.subject)
    return web.Response(status=201, headers=headers)


async def delete_manifest(request: web.Request) -> web.Response:
    """By tag: remove only the tag. By digest: remove the manifest and every tag pointing to it. 202."""
    name, reference = repo_name(request), lookup_reference(request)
    if not settings(request).delete_enabled:
        raise RegistryError(ErrorCode.UNSUPPORTED, "deletes are disabled on this registry")
    await store(request).manifests.delete(name, reference)
    if (index := metadata_index(request)) is not None:
        if isinstance(reference, Digest):
            await index.manifest_deleted(name, reference)
        else:
            await index.tag_deleted(name, reference)
    return web.Response(status=202)
