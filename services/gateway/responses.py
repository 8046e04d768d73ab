"""JSON responses of the contract: compact UTF-8, weak ETags with 304s, error bodies."""

from __future__ import annotations

import json
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from services.gateway.cache import Encoded, weak_etag
from services.gateway.errors import ApiError

JSON_TYPE: Final = "application/json"


def json_bytes(data: Any) -> bytes:
    """Compact JSON; NaN and infinities are refused rather than emitted as invalid JSON."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _matches(if_none_match: str, etag: str) -> bool:
    tags = [tag.strip() for tag in if_none_match.split(",")]
    opaque = etag.removeprefix("W/")
    return "*" in tags or any(tag.removeprefix("W/") == opaque for tag in tags)


def accepts_gzip(request: Request) -> bool:
    """True when Accept-Encoding allows gzip (a q=0 refuses it)."""
    for item in request.headers.get("accept-encoding", "").lower().split(","):
        coding, _, parameters = item.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            return parameters.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def encoded_response(request: Request, encoded: Encoded, status_code: int = 200) -> Response:
    """A JSON success body with `Cache-Control: no-cache` and a weak ETag (304 when it matches)."""
    headers = {"ETag": encoded.etag, "Cache-Control": "no-cache"}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and request.method in ("GET", "HEAD") and _matches(if_none_match, encoded.etag):
        return Response(status_code=304, headers=headers)
    content = encoded.body
    if encoded.compressed is not None and accepts_gzip(request):
        # Already compressed once for every client; the gzip middleware passes it through.
        content = encoded.compressed
        headers["Content-Encoding"] = "gzip"
    return Response(content, status_code=status_code, media_type=JSON_TYPE, headers=headers)


def json_response(request: Request, data: Any, status_code: int = 200) -> Response:
    """An uncached JSON body (compressed by the middleware when large enough)."""
    body = json_bytes(data)
    return encoded_response(request, Encoded(body, weak_etag(body), None), status_code)


def request_id_of(request: Request) -> str:
    """The request id the outer middleware assigned."""
    value = request.scope.get("state", {}).get("request_id", "")
    return str(value)


def error_response(error: ApiError, request_id: str) -> Response:
    """The JSON error body of rest-api.md §1.5 (never cached)."""
    headers = {"Cache-Control": "no-store", **error.headers}
    return Response(
        json_bytes(error.body(request_id)), status_code=error.status, media_type=JSON_TYPE, headers=headers
    )
