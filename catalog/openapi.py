"""The OpenAPI 3.1 document of the catalog API (``GET /api/v1/openapi.json``), built from a route table.

The table is a registry of ``Operation`` entries keyed by (method, path). ``catalog.api`` registers its endpoints
when imported; another module adds its own by calling ``add_operation`` at import time, next to the code that
registers the aiohttp route, e.g. the file browser::

    from catalog.openapi import Operation, add_operation, path_parameter, query_parameter
    from catalog.views import DirectoryListing

    add_operation(
        Operation(
            "get",
            "/api/v1/catalog/repositories/{name}/-/tags/{tag}/files",
            "listFiles",
            "A directory of an image's merged filesystem",
            response=DirectoryListing,
            parameters=(REPOSITORY, TAG, query_parameter("path", "Directory to list", default="/")),
        )
    )

``path`` uses OpenAPI's ``{param}`` syntax (not aiohttp's ``{name:.+}``); a second ``add_operation`` for the same
method and path replaces the first. Response and request bodies are pydantic models: their JSON schemas (mode
"serialization" for responses, "validation" for request bodies) land under ``components/schemas`` and are referred to
with ``$ref``. Every operation also documents its error statuses with the shared ``ErrorBody`` schema
(``{"error": {"code", "message"}}``). ``document()`` builds the whole document from the table on each call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

__all__ = [
    "PAGE",
    "PER_PAGE",
    "REPOSITORY",
    "TAG",
    "ErrorBody",
    "ErrorDetail",
    "Operation",
    "Parameter",
    "add_operation",
    "document",
    "operations",
    "path_parameter",
    "query_parameter",
]

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
_STATUS_TEXT = {
    200: "OK",
    204: "No content",
    400: "Invalid input",
    403: "Forbidden: not signed in, or not an admin of the namespace",
    404: "Not found (or not visible to the caller)",
    409: "Conflict",
}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error of the catalog API."""

    error: ErrorDetail


@dataclass(frozen=True)
class Parameter:
    """A path or query parameter; ``schema`` is its JSON schema."""

    name: str
    location: Literal["path", "query"]
    description: str
    schema: dict[str, Any]
    required: bool = False

    def to_openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.location,
            "description": self.description,
            "required": self.required or self.location == "path",
            "schema": self.schema,
        }


def path_parameter(name: str, description: str) -> Parameter:
    """A required string path parameter."""
    return Parameter(name, "path", description, {"type": "string"}, required=True)


def query_parameter(name: str, description: str, *, default: str | int | None = None, **schema: Any) -> Parameter:
    """An optional query parameter: a string, or an integer when ``default`` is one (``schema`` adds keywords
    such as ``minimum``)."""
    kind = "integer" if isinstance(default, int) else "string"
    full: dict[str, Any] = {"type": kind, **schema}
    if default is not None:
        full["default"] = default
    return Parameter(name, "query", description, full)


REPOSITORY = path_parameter("name", "Repository name; may contain '/' (sent as is, not percent-encoded)")
TAG = path_parameter("tag", "Tag name")
PAGE = query_parameter("page", "1-based page number", default=1, minimum=1)
PER_PAGE = query_parameter("per_page", "Items per page", default=25, minimum=1, maximum=100)


@dataclass(frozen=True)
class Operation:
    """One endpoint. ``response`` None: no body (``status`` should then be 204)."""

    method: Literal["get", "put", "post", "patch", "delete"]
    path: str
    operation_id: str
    summary: str
    response: type[BaseModel] | None = None
    status: int = 200
    parameters: tuple[Parameter, ...] = ()
    request_body: type[BaseModel] | None = None
    errors: tuple[int, ...] = (400, 404)
    description: str = ""
    tags: tuple[str, ...] = ("catalog",)


_OPERATIONS: dict[tuple[str, str], Operation] = {}


def add_operation(operation: Operation) -> None:
    """Add ``operation`` to the document (replacing one with the same method and path)."""
    _OPERATIONS[(operation.method, operation.path)] = operation


def operations() -> list[Operation]:
    """The table, in the order of registration."""
    return list(_OPERATIONS.values())


def document(*, title: str = "dockyard catalog API", version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every registered operation."""
    table = operations()
    refs, schemas = _schemas(table)
    paths: dict[str, dict[str, Any]] = {}
    for operation in table:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation, refs)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "The public image catalog: search, namespaces, repositories, tags. Private repositories "
            "appear only to their namespace's members and site admins (HTTP Basic with a password or personal "
            "access token, or the web session).",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


Refs = dict[tuple[type[Any], JsonSchemaMode], dict[str, Any]]


def _schemas(table: list[Operation]) -> tuple[Refs, dict[str, Any]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for operation in table:
        if operation.response is not None:
            wanted.append((operation.response, "serialization"))
        if operation.request_body is not None:
            wanted.append((operation.request_body, "validation"))
    found, definitions = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = definitions.get("$defs", {})
    return dict(found), schemas


def _operation(operation: Operation, refs: Refs) -> dict[str, Any]:
    found: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": list(operation.tags),
        "parameters": [p.to_openapi() for p in operation.parameters],
        "responses": _responses(operation, refs),
    }
    if operation.description:
        found["description"] = operation.description
    if operation.request_body is not None:
        schema = refs[(operation.request_body, "validation")]
        found["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return found


def _responses(operation: Operation, refs: Refs) -> dict[str, Any]:
    success: dict[str, Any] = {"description": _STATUS_TEXT.get(operation.status, "Success")}
    if operation.response is not None:
        success["content"] = {"application/json": {"schema": refs[(operation.response, "serialization")]}}
    responses = {str(operation.status): success}
    error = {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}
    for status in operation.errors:
        responses[str(status)] = {"description": _STATUS_TEXT.get(status, "Error"), "content": error}
    return responses
