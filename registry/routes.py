"""The route table, as data. ``read_only`` drops every write route in this one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from registry.handlers import base, blobs, listing, manifests, uploads

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NAME = r"{name:.+}"


class Route(NamedTuple):
    """One endpoint. ``access`` is what a token must grant on the URL's repository: ``pull``, ``push``
    (which implies pull, as Docker clients ask) or ``delete``; ``catalog`` for the registry catalog,
    ``login`` for ``/v2/`` (any valid token), ``open`` for endpoints that need none."""

    method: str
    path: str
    handler: Handler
    access: str = "pull"

    @property
    def writes(self) -> bool:
        return self.access in ("push", "delete")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v2/", base.api_base, access="login"),
    Route("GET", "/healthz", base.healthz, access="open"),
    Route("GET", "/v2/_catalog", listing.catalog, access="catalog"),
    Route("GET", f"/v2/{NAME}/tags/list", listing.list_tags),
    Route("GET", f"/v2/{NAME}/referrers/{{digest}}", listing.referrers),
    Route("GET", f"/v2/{NAME}/manifests/{{reference}}", manifests.get_manifest),
    Route("PUT", f"/v2/{NAME}/manifests/{{reference}}", manifests.put_manifest, access="push"),
    Route("DELETE", f"/v2/{NAME}/manifests/{{reference}}", manifests.delete_manifest, access="delete"),
    Route("GET", f"/v2/{NAME}/blobs/{{digest}}", blobs.get_blob),
    Route("DELETE", f"/v2/{NAME}/blobs/{{digest}}", blobs.delete_blob, access="delete"),
    Route("POST", f"/v2/{NAME}/blobs/uploads/", uploads.start_upload, access="push"),
    Route("GET", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.upload_status, access="push"),
    Route("PATCH", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.patch_upload, access="push"),
    Route("PUT", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.finish_upload, access="push"),
    Route("DELETE", f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.cancel_upload, access="push"),
)


ACCESS: dict[Handler, str] = {route.handler: route.access for route in ROUTES}


def add_routes(app: web.Application, read_only: bool = False) -> None:
    """Register the table on ``app`` (GET routes answer HEAD too)."""
    for route in ROUTES:
        if read_only and route.writes:
            continue
        if route.method == "GET":
            app.router.add_get(route.path, route.handler, allow_head=True)
        else:
            app.router.add_route(route.method, route.path, route.handler)
