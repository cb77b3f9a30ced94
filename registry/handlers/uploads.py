"""``/v2/<name>/blobs/uploads/``: open (or mount, or upload in one request), PATCH, PUT, status, cancel."""

from __future__ import annotations

import contextlib
import re

from aiohttp import web

from registry.errors import ErrorCode, RegistryError
from registry.handlers.common import access_control, body, query_digest, repo_name, settings, store
from registry.reference import Digest, check_name
from registry.store.uploads import range_header
from storage.errors import StorageError

# ASCII digits only (``\d`` would take Arabic-Indic digits too), at most 20 (int() refuses strings over 4300 digits):
# no offset a registry will ever hold has more, and a longer value is simply malformed.
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]{1,20})-([0-9]{1,20})(?:/(?:[0-9]{1,20}|\*))?")


def _session_headers(name: str, upload_id: str, offset: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Docker-Upload-UUID": upload_id,
        "Range": range_header(offset),
        "Content-Length": "0",
    }


def _created(name: str, digest: Digest) -> web.Response:
    headers = {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest), "Content-Length": "0"}
    return web.Response(status=201, headers=headers)


def _chunk_start(request: web.Request) -> int | None:
    """The start offset from ``Content-Range`` (None when absent: a streamed chunk); 416 if inconsistent."""
    header = request.headers.get("Content-Range")
    if header is None:
        return None
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        raise RegistryError(ErrorCode.RANGE_INVALID, f"malformed Content-Range {header[:100]!r}")
    start, end = int(match[1]), int(match[2])
    length = request.content_length
    if end < start or (length is not None and length != end - start + 1):
        raise RegistryError(ErrorCode.RANGE_INVALID, f"Content-Range {header!r} does not match Content-Length {length}")
    return start


def _may_mount(request: web.Request, source: str | None) -> bool:
    """A mount from ``source`` needs pull access to it; a mount without ``from`` (from anywhere in the
    registry) is the open registry's ``auto_mount`` only: with access control it could reveal blobs of
    repositories the caller may not read. Refused mounts fall back to a normal upload (202)."""
    control = access_control(request)
    if source is None:
        return control is None and settings(request).auto_mount
    return control is None or control.may_pull(request, source)


async def start_upload(request: web.Request) -> web.Response:
    """POST: mount (``mount``/``from``), monolithic upload (``digest``), or open a session (202)."""
    name = repo_name(request)
    reg = store(request)
    mount = query_digest(request, "mount")
    if mount is not None:
        source = check_name(request.query["from"]) if "from" in request.query else None
        if _may_mount(request, source) and await reg.uploads.mount(name, mount, source):
            return _created(name, mount)
    digest = query_digest(request)
    upload_id = await reg.uploads.start(name)
    if digest is not None:
        try:
            await reg.uploads.finish(name, upload_id, digest, body(request))
        except Exception:  # disk full, storage down, client gone: no client knows this session, keep nothing
            with contextlib.suppress(StorageError):
                await reg.uploads.discard(name, upload_id)
            raise
        return _created(name, digest)
    return web.Response(status=202, headers=_session_headers(name, upload_id, 0))


async def patch_upload(request: web.Request) -> web.Response:
    """PATCH: append a chunk (ordered by ``Content-Range``) or a streamed body."""
    name, upload_id = repo_name(request), request.match_info["uuid"]
    offset = await store(request).uploads.append(name, upload_id, body(request), _chunk_start(request))
    return web.Response(status=202, headers=_session_headers(name, upload_id, offset))


async def finish_upload(request: web.Request) -> web.Response:
    """PUT ``?digest=``: append the last chunk if any, verify and publish the blob (201)."""
    name, upload_id = repo_name(request), request.match_info["uuid"]
    digest = query_digest(request)
    if digest is None:
        raise RegistryError(ErrorCode.DIGEST_INVALID, "the digest query parameter is required to finish an upload")
    reg = store(request)
    start = _chunk_start(request)
    if start is not None and start != await reg.uploads.offset(name, upload_id):
        await reg.uploads.append(name, upload_id, body(request), start)  # raises the 416 with the right Range
    await reg.uploads.finish(name, upload_id, digest, body(request))
    return _created(name, digest)


async def upload_status(request: web.Request) -> web.Response:
    """GET: 204 with the ``Range`` received so far."""
    name, upload_id = repo_name(request), request.match_info["uuid"]
    offset = await store(request).uploads.offset(name, upload_id)
    return web.Response(status=204, headers=_session_headers(name, upload_id, offset))


async def cancel_upload(request: web.Request) -> web.Response:
    """DELETE: abandon the session and its bytes (204)."""
    name, upload_id = repo_name(request), request.match_info["uuid"]
    await store(request).uploads.cancel(name, upload_id)
    return web.Response(status=204)
