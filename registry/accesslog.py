"""Request ids and structured access logs: one JSON object per request."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

REQUEST_ID = "X-Request-Id"
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")


async def stamp_response(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response carries the API version and the request id."""
    incoming = request.headers.get(REQUEST_ID, "")
    response.headers[REQUEST_ID] = incoming if _SAFE_ID.fullmatch(incoming) else uuid.uuid4().hex
    response.headers[API_VERSION[0]] = API_VERSION[1]


class JsonAccessLogger(AbstractAccessLogger):
    """Logs ``{"time", "request_id", "remote", "method", "path", "status", "bytes", "duration_ms", "agent"}``.

    ``bytes`` counts what went on the wire (headers and body).

    Only the path is logged, never the query string or headers, so no credential can reach a log line.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_taken: float) -> None:
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "request_id": response.headers.get(REQUEST_ID, ""),
            "remote": request.remote,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(time_taken * 1000, 3),
            "agent": request.headers.get("User-Agent", "")[:200],
        }
        self.logger.info(json.dumps(record))


def access_logger() -> logging.Logger:
    return logging.getLogger("dockyard.access")
