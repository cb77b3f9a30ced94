"""The route table, as data. ``read_only`` drops every write route in this one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from registry.handlers import base, blobs, listing, manifests, uploads

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NAME = r"{name:.+}"


class Route(NamedTuple):
    method: str
    path: str
    handler: Handler
    writes: bool = False


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v2/", base.api_base),
    Route("GET", "/healthz", base.healthz),
    Route("GET", "/v2/_catalog", listing.catalog),
    Route("GET", f"/v2/{NAME}/tags/list", listing.list_tags),
    Route("GET", f"/v2/{NAME}/referrers/{{digest}}", listing.referrers),
    Route("GET", f"/v2/{NAME}/manifests/{{reference}}", manifests.get_manifest),
    Route("PUT", f"/v2/{NAME}/manifests/{{reference}}", manifests.put_manifest, writes=True),
    Route("DELETE", f"/v2/{NAME}/manifests/{{reference}}", manifests.delete_manifest, writes=True),
    Route("GET", f"/v2/{NAME}/blobs/{{digest}}", blobs.get_blob),
    Route("DELETE", f"/v2/{NAME}/blobs/{{digest}}", blobs.delete_blob, writes=True),
    Route("POST", f"/v2/{NAME}/blobs/uploads/", uploads.start_upload, writes=True),
    Route("GET", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.upload_status, writes=True),
    Route("PATCH", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.patch_upload, writes=True),
    Route("PUT", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.finish_upload, writes=True),
    Route("DELETE", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.cancel_upload, writes=True),
)


def add_routes(app: web.Application, read_only: bool = False) -> None:
    """Register the table on ``app`` (GET routes answer HEAD too)."""
    for route in ROUTES:
        if read_only and route.writes:
            continue
        if route.method == "GET":
            app.router.add_get(route.path, route.handler, allow_head=True)
        else:
            app.router.add_route(route.method, route.path, route.handler)
