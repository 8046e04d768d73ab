"""The gateway's ASGI application: REST routes, OpenAPI, docs, the dashboard, error handling.

Layers, outermost first: GatewayMiddleware (request ids, security headers, body limit), CORS (only
when origins are configured), gzip for bodies of 1 KB or more, then FastAPI's router.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from services.gateway.api import build_operations
from services.gateway.backend import Backend
from services.gateway.cache import GZIP_LEVEL, GZIP_MINIMUM_BYTES
from services.gateway.errors import HTTP_MESSAGES, ApiError
from services.gateway.health import HealthMonitor
from services.gateway.middleware import GatewayMiddleware
from services.gateway.openapi import Operation, build_document
from services.gateway.responses import error_response, json_bytes, request_id_of
from services.gateway.settings import GatewaySettings
from services.gateway.stream import STREAM_OPERATION, ChangeHub, stream_handler

STATIC_DIR: Final = Path(__file__).parent / "static"
CORS_HEADERS: Final = (
    "Content-Type",
    "If-None-Match",
    "X-Request-ID",
    "X-Race-Polling",
    "X-Race-Initial-Load",
    "X-Pools-Fetch",
    "X-Prefetch",
)


@dataclass(frozen=True, slots=True)
class WebApp:
    """The wrapped ASGI app to serve, the inner FastAPI app, and the OpenAPI document."""

    asgi: ASGIApp
    fastapi: FastAPI
    openapi: dict[str, Any]
    operations: tuple[Operation, ...]


def _allowed_methods(request: Request) -> str:
    """Every method some route accepts on this path (for 405's Allow header)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        for method in getattr(route, "methods", None) or ():
            match, _ = route.matches({**request.scope, "method": method})
            if match == Match.FULL:
                methods.add(method)
    return ", ".join(sorted(methods))


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc, request_id_of(request))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        headers = dict(exc.headers or {})
        if status == 405:
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        message = HTTP_MESSAGES.get(status, "Request failed")
        return error_response(ApiError(status, message, headers=headers), request_id_of(request))

    async def validation_error(request: Request, exc: Exception) -> Response:
        return error_response(ApiError(400, "Invalid request"), request_id_of(request))

    async def unexpected(request: Request, exc: Exception) -> Response:
        return error_response(ApiError(500, HTTP_MESSAGES[500]), request_id_of(request))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


def _add_documentation(app: FastAPI, document: dict[str, Any]) -> None:
    body = json_bytes(document)
    docs_page = (STATIC_DIR / "docs" / "index.html").read_bytes()

    async def openapi_document(request: Request) -> Response:
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})

    async def api_docs(request: Request) -> Response:
        return Response(
            docs_page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"}
        )

    for path in ("/api/openapi.json", "/openapi.json"):
        app.add_api_route(path, openapi_document, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/api/docs", api_docs, methods=["GET", "HEAD"], include_in_schema=False)
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

        app.mount("/api/docs/vendor", StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    except ImportError:  # pragma: no cover - the dependency is declared; the page says what is missing
        pass


def _add_dashboard(app: FastAPI) -> None:
    page = (STATIC_DIR / "index.html").read_bytes()

    async def dashboard(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    app.add_api_route("/", dashboard, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/race/{race_id}", dashboard, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/alerts", dashboard, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")


def create_web_app(
    settings: GatewaySettings, backend: Backend, health: HealthMonitor, hub: ChangeHub
) -> WebApp:
    """Build the whole HTTP application around `backend`."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="Raceday")
    _install_error_handlers(app)
    operations = tuple(
        build_operations(backend, health, compat_aliases=settings.compat_aliases, clock=settings.clock)
    )
    for operation in operations:
        methods = [operation.method, "HEAD"] if operation.method == "GET" else [operation.method]
        for path in (operation.path, *operation.extra_paths):
            app.add_api_route(path, operation.handler, methods=methods, include_in_schema=False)
    app.add_api_route("/api/stream", stream_handler(hub), methods=["GET"], include_in_schema=False)
    document = build_document(operations)
    document["paths"]["/api/stream"] = STREAM_OPERATION
    _add_documentation(app, document)
    _add_dashboard(app)

    # The same threshold and level as the bodies the encoding cache compresses itself.
    asgi: ASGIApp = GZipMiddleware(app, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=GZIP_LEVEL)
    if settings.cors_origins:
        asgi = CORSMiddleware(
            asgi,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "OPTIONS"],
            allow_headers=list(CORS_HEADERS),
            expose_headers=["X-Request-ID", "ETag"],
            max_age=600,
        )
    asgi = GatewayMiddleware(
        asgi,
        cors_enabled=bool(settings.cors_origins),
        hsts=settings.hsts,
        clock=settings.clock if settings.clock.speed != 1.0 else None,
    )
    return WebApp(asgi=asgi, fastapi=app, openapi=document, operations=operations)
