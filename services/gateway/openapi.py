"""The OpenAPI 3.1 document, built from the same operation list that registers the routes."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from services import __version__
from services.gateway.params import Param
from services.gateway.schemas import COMPONENTS, Schema, ref

Handler = Callable[[Request], Awaitable[Response]]

# Standard error responses, each with the shared Error body.
_ERROR_TEXT: Final[dict[int, str]] = {
    400: "Invalid or missing input",
    404: "Unknown resource",
    413: "Body over 100 KB",
    415: "Body is not JSON",
    500: "Unexpected error",
    503: "A backing service is unavailable",
    504: "A backing call exceeded its deadline",
}
_HEADERS: Final[dict[str, Any]] = {
    "X-Request-ID": {"description": "Echoed from the request, or generated.", "schema": {"type": "string"}}
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path: its handler and what the document says about it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    responses: dict[int, Schema]
    params: Sequence[Param] = ()
    path_params: Sequence[str] = ()
    body: Schema | None = None
    errors: Sequence[int] = (400, 500, 503, 504)
    description: str = ""
    extra_paths: Sequence[str] = field(default_factory=tuple)


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation_document(operation: Operation, path: str) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 64},
        }
        for name in operation.path_params
    ]
    for param in operation.params:
        parameters.extend(param.openapi())
    responses: dict[str, Any] = {}
    for status, schema in operation.responses.items():
        responses[str(status)] = {
            "description": "OK" if status < 300 else "See body",
            "headers": _HEADERS,
            "content": _json(schema),
        }
    for status in operation.errors:
        responses.setdefault(
            str(status),
            {"description": _ERROR_TEXT[status], "headers": _HEADERS, "content": _json(ref("Error"))},
        )
    suffix = "" if path == operation.path else "_alias_" + re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")
    document: dict[str, Any] = {
        "summary": operation.summary,
        "operationId": f"{operation.handler.__name__}_{operation.method.lower()}{suffix}",
        "tags": [operation.tag],
        "parameters": parameters,
        "responses": responses,
    }
    if operation.description:
        document["description"] = operation.description
    if path != operation.path:
        document["description"] = f"Compatibility alias of `{operation.path}`."
    if operation.body is not None:
        document["requestBody"] = {"required": False, "content": _json(operation.body)}
    return document


def build_document(operations: Sequence[Operation]) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        for path in (operation.path, *operation.extra_paths):
            paths.setdefault(path, {})[operation.method.lower()] = _operation_document(operation, path)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Raceday REST API",
            "version": __version__,
            "description": (
                "NZ TAB racing money flow. Every query parameter and body key is accepted in snake_case "
                "and camelCase; timestamps are Pacific/Auckland with milliseconds and the offset; money is "
                'integer cents. Errors are JSON: {"error", "details"}.'
            ),
        },
        "paths": paths,
        "components": {"schemas": COMPONENTS},
    }
