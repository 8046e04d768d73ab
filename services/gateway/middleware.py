"""The outermost ASGI layer: request ids, security headers, body limits, metrics, last-resort 500s.

It wraps the whole application (CORS, compression and FastAPI inside it), so every response,
including the framework's own errors, carries X-Request-ID and the security headers.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import Final

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.clock import Clock
from services.common.logs import log_event
from services.gateway.errors import HTTP_MESSAGES, ApiError
from services.gateway.responses import JSON_TYPE, json_bytes
from services.gateway.settings import MAX_BODY_BYTES

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Dashboard and JSON: only our own origin, silks from any https image host.
DEFAULT_CSP: Final = (
    "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# The bundled Swagger UI sets inline styles; allowed on its own pages only.
DOCS_CSP: Final = DEFAULT_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
DOCS_PREFIX: Final = "/api/docs"
DRAIN_LIMIT_BYTES: Final = 4 * 1024 * 1024

HTTP_LATENCY = Histogram(
    "raceday_gateway_http_request_seconds",
    "Gateway HTTP request latency by endpoint, method and status class",
    ("endpoint", "method", "status"),
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class BodyTooLargeError(ApiError):
    """The request body exceeded MAX_BODY_BYTES."""

    def __init__(self) -> None:
        super().__init__(413, HTTP_MESSAGES[413], {"max_bytes": MAX_BODY_BYTES})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class GatewayMiddleware:
    """Assigns X-Request-ID, adds security and caching headers, enforces the body limit."""

    def __init__(self, app: ASGIApp, *, cors_enabled: bool, hsts: bool, clock: Clock | None = None) -> None:
        self.app = app
        # An accelerated clock is announced so the dashboard's countdowns follow it.
        self._clock = clock
        common: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"cross-origin" if cors_enabled else b"same-origin"),
        ]
        if hsts:
            common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        # Built once here, not per request: only the request id (and clock) vary.
        self._headers = (*common, (b"content-security-policy", DEFAULT_CSP.encode()))
        self._docs_headers = (*common, (b"content-security-policy", DOCS_CSP.encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP exchange (lifespan and other scopes pass through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = (_header(scope, b"x-request-id") or b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope.get("path", "")
        extra = self._extra_headers(request_id, path)
        state = {"started": False, "status": 500}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                state["status"] = int(message["status"])
                message["headers"] = _merge_headers(message.get("headers", ()), extra)
            await send(message)

        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _drain(receive, 0)
            await self._send_error(send_with_headers, BodyTooLargeError(), request_id)
            self._observe(scope, started, state["status"])
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    if message.get("more_body", False):
                        await _drain(receive, received)
                    raise BodyTooLargeError()
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except Exception:
            log_event(
                logger, "http_unhandled_error", logging.ERROR, request_id=request_id, path=path, exc_info=True
            )
            if not state["started"]:
                await self._send_error(send_with_headers, ApiError(500, HTTP_MESSAGES[500]), request_id)
        self._observe(scope, started, state["status"])

    def _extra_headers(self, request_id: str, path: str) -> tuple[tuple[bytes, bytes], ...]:
        fixed = self._docs_headers if path.startswith(DOCS_PREFIX) else self._headers
        headers = ((b"x-request-id", request_id.encode("latin-1")), *fixed)
        if self._clock is None:
            return headers
        clock = f"{self._clock.now_ms()};speed={self._clock.speed!r}".encode()
        return (*headers, (b"x-raceday-clock", clock))

    @staticmethod
    async def _send_error(send: Send, error: ApiError, request_id: str) -> None:
        body = json_bytes(error.body(request_id))
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", JSON_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _observe(scope: Scope, started: float, status: int) -> None:
        endpoint = scope.get("endpoint")
        name = getattr(endpoint, "__name__", "unmatched")
        HTTP_LATENCY.labels(name, scope.get("method", ""), f"{status // 100}xx").observe(
            time.perf_counter() - started
        )


async def _drain(receive: Receive, already: int) -> None:
    """Read and discard the rest of an oversized body (bounded), so the client sees our 413
    rather than a reset connection; past the bound the server closes the connection instead."""
    total = already
    while total <= DRAIN_LIMIT_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        total += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _merge_headers(
    headers: Iterable[tuple[bytes, bytes]], extra: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """Response headers with ours added: no server banner, Vary on encoding, a Cache-Control."""
    merged: list[tuple[bytes, bytes]] = []
    vary: list[bytes] = []
    has_cache_control = has_etag = False
    for key, value in headers:
        lowered = key.lower()
        if lowered in (b"server", b"x-powered-by", b"x-request-id"):
            continue
        if lowered == b"vary":
            vary.append(value)
            continue
        has_cache_control = has_cache_control or lowered == b"cache-control"
        has_etag = has_etag or lowered == b"etag"
        merged.append((lowered, value))
    if not any(b"accept-encoding" in item.lower() for item in vary):
        vary.append(b"Accept-Encoding")
    merged.append((b"vary", b", ".join(vary)))
    if not has_cache_control:
        # Validatable responses (static assets) revalidate; everything else is never stored.
        merged.append((b"cache-control", b"no-cache" if has_etag else b"no-store"))
    merged.extend(extra)
    return merged
