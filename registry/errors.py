"""API errors: one table of the spec's error codes with their HTTP status, one exception, one middleware.

Handlers and the store raise :class:`RegistryError`; :func:`error_middleware` turns it (and storage
errors, aiohttp's own HTTP errors and anything unexpected) into the spec's body
``{"errors": [{"code", "message", "detail"}]}``. A traceback never reaches a client. Storage or a database that
can't be reached answers 503 ``UNAVAILABLE`` with ``Retry-After`` (Distribution's code for 503): clients retry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from aiohttp import web

from storage.errors import PathNotFound, StorageError, StorageFull, StorageUnavailable

log = logging.getLogger("dockyard.registry")
RETRY_AFTER = "5"  # seconds a client is asked to wait after a 503 (storage or database unavailable)
DATABASE_UNAVAILABLE = "the registry's database is temporarily unavailable, retry later"


class ErrorCode(Enum):
    """``(code, message, HTTP status)`` of every error the API answers with."""

    BLOB_UNKNOWN = ("BLOB_UNKNOWN", "blob unknown to registry", 404)
    BLOB_UPLOAD_INVALID = ("BLOB_UPLOAD_INVALID", "blob upload invalid", 400)
    BLOB_UPLOAD_UNKNOWN = ("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404)
    DIGEST_INVALID = ("DIGEST_INVALID", "provided digest did not match uploaded content", 400)
    MANIFEST_BLOB_UNKNOWN = ("MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry", 400)
    MANIFEST_INVALID = ("MANIFEST_INVALID", "manifest invalid", 400)
    MANIFEST_UNKNOWN = ("MANIFEST_UNKNOWN", "manifest unknown to registry", 404)
    NAME_INVALID = ("NAME_INVALID", "invalid repository name", 400)
    NAME_UNKNOWN = ("NAME_UNKNOWN", "repository name not known to registry", 404)
    SIZE_INVALID = ("SIZE_INVALID", "provided length did not match content length", 400)
    TAG_INVALID = ("TAG_INVALID", "manifest tag did not match URI", 400)
    UNAUTHORIZED = ("UNAUTHORIZED", "authentication required", 401)
    DENIED = ("DENIED", "requested access to the resource is denied", 403)
    UNSUPPORTED = ("UNSUPPORTED", "the operation is unsupported", 405)
    TOOMANYREQUESTS = ("TOOMANYREQUESTS", "too many requests", 429)
    INVALID_REQUEST = ("INVALID_REQUEST", "invalid request", 400)  # token service and account API only
    PAGINATION_NUMBER_INVALID = ("PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400)
    RANGE_INVALID = ("BLOB_UPLOAD_INVALID", "requested range not satisfiable", 416)
    PAYLOAD_TOO_LARGE = ("SIZE_INVALID", "payload too large", 413)
    NOT_FOUND = ("NOT_FOUND", "no such endpoint", 404)
    UNAVAILABLE = ("UNAVAILABLE", "storage temporarily unavailable, retry later", 503)
    STORAGE_FULL = ("STORAGE_FULL", "the registry's storage is full", 507)
    INTERNAL = ("UNKNOWN", "internal server error", 500)

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def message(self) -> str:
        return self.value[1]

    @property
    def status(self) -> int:
        return self.value[2]


class RegistryError(Exception):
    """An error answer: ``code`` picks the body's code and the status; ``detail`` is any JSON value;
    ``headers`` are added to the response (``Range``, ``Retry-After``, ``WWW-Authenticate``…)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message or code.message
        self.detail = detail
        self.headers = headers or {}
        super().__init__(f"{code.code}: {self.message}")

    def response(self, method: str) -> web.Response:
        """The JSON error response (without a body for HEAD, as HTTP requires)."""
        entry: dict[str, Any] = {"code": self.code.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        body = json.dumps({"errors": [entry]}).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", **self.headers}
        if method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return web.Response(status=self.code.status, headers=headers)
        return web.Response(status=self.code.status, body=body, headers=headers)


def _from_http(exc: web.HTTPException) -> RegistryError:
    if exc.status == 405:
        return RegistryError(ErrorCode.UNSUPPORTED, f"method not allowed on {exc.reason}")
    if exc.status == 413:
        return RegistryError(ErrorCode.PAYLOAD_TOO_LARGE)
    return RegistryError(ErrorCode.NOT_FOUND)


def _from_storage(exc: StorageError) -> RegistryError:
    if isinstance(exc, StorageFull):
        return RegistryError(ErrorCode.STORAGE_FULL, "no space left in the registry's storage")
    if isinstance(exc, StorageUnavailable):
        log.warning("storage unavailable: %s", exc)
        return RegistryError(ErrorCode.UNAVAILABLE, headers={"Retry-After": RETRY_AFTER})
    log.error("storage error: %s", exc)
    return RegistryError(ErrorCode.INTERNAL)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the spec's JSON error body."""
    try:
        return await handler(request)
    except RegistryError as exc:
        return exc.response(request.method)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http(exc).response(request.method)
    except PathNotFound as exc:
        log.error("unexpected missing key: %s", exc)
        return RegistryError(ErrorCode.INTERNAL).response(request.method)
    except StorageError as exc:
        return _from_storage(exc).response(request.method)
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception as exc:
        return _from_unexpected(request, exc).response(request.method)


def _from_unexpected(request: web.Request, exc: Exception) -> RegistryError:
    """A database that can't be reached is a retryable 503 (one log line); anything else is a logged 500."""
    from auth.database import is_unavailable  # SQLAlchemy loads only when an error needs classifying

    if is_unavailable(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        return RegistryError(ErrorCode.UNAVAILABLE, DATABASE_UNAVAILABLE, headers={"Retry-After": RETRY_AFTER})
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return RegistryError(ErrorCode.INTERNAL)
