"""REST errors: one exception type carrying the status and the JSON body of rest-api.md §1.5."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import grpc

# Upstream status → HTTP status (rest-api.md §1.6); anything else is a 500.
GRPC_TO_HTTP: Final[Mapping[grpc.StatusCode, int]] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# Short messages for statuses raised by the framework rather than by a handler.
HTTP_MESSAGES: Final[Mapping[int, str]] = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type: send application/json",
    500: "Internal server error",
    503: "Service unavailable",
    504: "Upstream deadline exceeded",
}

# Upstream INVALID_ARGUMENT details are ours, but keep them short in a response.
_MAX_DETAIL_CHARS: Final = 200


class ApiError(Exception):
    """An error response: HTTP status, the short `error` text, optional details and extra keys."""

    def __init__(
        self,
        status: int,
        error: str,
        details: Mapping[str, Any] | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = dict(details) if details is not None else None
        self.extra = dict(extra) if extra is not None else {}
        self.headers = dict(headers) if headers is not None else {}

    def body(self, request_id: str) -> dict[str, Any]:
        """The JSON body; 5xx bodies carry the request id for support."""
        document: dict[str, Any] = {"error": self.error}
        if self.details is not None:
            document["details"] = self.details
        document.update(self.extra)
        if self.status >= 500:
            document["request_id"] = request_id
        return document


def bad_request(error: str, **details: Any) -> ApiError:
    """A 400 with `details` when given."""
    return ApiError(400, error, details or None)


def from_rpc_error(exc: grpc.aio.AioRpcError, service: str, not_found: str) -> ApiError:
    """Translate a failed call to `service` into the REST error the contract prescribes."""
    code = exc.code()
    status = GRPC_TO_HTTP.get(code, 500)
    if status == 404:
        return ApiError(404, not_found)
    if status == 400:
        detail = (exc.details() or "Invalid request")[:_MAX_DETAIL_CHARS]
        return ApiError(400, detail)
    if status == 503:
        return ApiError(503, f"{service.capitalize()} service unavailable", {"service": service})
    if status == 504:
        return ApiError(504, f"{service.capitalize()} service timed out", {"service": service})
    return ApiError(500, "Internal server error", {"service": service})
