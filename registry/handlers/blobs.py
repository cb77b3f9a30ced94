"""``/v2/<name>/blobs/<digest>``: GET, HEAD (with ranges) and DELETE."""

from __future__ import annotations

from aiohttp import web

from registry.blobresponse import BlobResponse, parse_range
from registry.errors import ErrorCode, RegistryError
from registry.handlers.common import digest_param, repo_name, settings, store


async def get_blob(request: web.Request) -> web.StreamResponse:
    """Serve the blob (206 for a satisfiable ``Range``, 307 to the backend when it can redirect)."""
    name, digest = repo_name(request), digest_param(request)
    reg = store(request)
    info = await reg.blobs.stat(name, digest)
    etag = f'"{digest}"'
    headers = {
        "Docker-Content-Digest": str(digest),
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Cache-Control": "max-age=31536000",
    }
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if request.method == "GET" and (url := await reg.driver.redirect_url(info.storage_key)):
        return web.Response(status=307, headers={**headers, "Location": url})
    span = parse_range(request.headers.get("Range"), info.size) if request.method == "GET" else None
    if span is None:
        return BlobResponse(reg.driver, info.storage_key, 0, info.size, 200, headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    return BlobResponse(reg.driver, info.storage_key, start, end - start + 1, 206, headers)


async def delete_blob(request: web.Request) -> web.Response:
    """Remove the blob from the repository (202); its bytes go at the next garbage collection."""
    name, digest = repo_name(request), digest_param(request)
    if not settings(request).delete_enabled:
        raise RegistryError(ErrorCode.UNSUPPORTED, "deletes are disabled on this registry")
    await store(request).blobs.unlink(name, digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})
