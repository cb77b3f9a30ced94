"""``/v2/`` (API version check) and ``/healthz`` (storage reachable)."""

from __future__ import annotations

from aiohttp import web

from registry.handlers.common import json_response, store
from storage.errors import PathNotFound, StorageError


async def api_base(request: web.Request) -> web.Response:  # noqa: ARG001
    """200 with an empty JSON object: this is a registry speaking the v2 API."""
    return json_response({})


async def healthz(request: web.Request) -> web.Response:
    """200 when the storage answers, 503 otherwise."""
    try:
        await store(request).driver.list("/")
    except PathNotFound:
        pass
    except StorageError as exc:
        return json_response({"status": "unavailable", "storage": exc.driver}, status=503)
    return json_response({"status": "ok"})
