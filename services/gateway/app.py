"""The gateway service: what `raceday serve gateway` runs.

Its gRPC port serves only grpc.health.v1 (added by the bootstrap); the REST API and dashboard
are served by uvicorn in the same event loop, started in `start()` and stopped in `stop()`.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence

import grpc

from services.common.config import Env
from services.common.logs import log_event
from services.gateway.backend import Backend
from services.gateway.health import HealthMonitor
from services.gateway.http_server import HttpServer
from services.gateway.settings import GatewaySettings
from services.gateway.stream import AlertSource, ChangeHub
from services.gateway.webapp import WebApp, create_web_app

logger = logging.getLogger(__name__)


class GatewayApp:
    """The HTTP gateway as a ServiceApp."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._backend: Backend | None = None
        self._http: HttpServer | None = None
        self.web: WebApp | None = None
        self.hub: ChangeHub | None = None

    @property
    def http_port(self) -> int:
        """The bound HTTP port (meaningful after start; useful when 0 was requested)."""
        if self._http is None:
            raise RuntimeError("the gateway has not started")
        return self._http.port

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        """No servicers: the gateway's gRPC port carries only the health service."""
        return ()

    async def start(self) -> None:
        """Open the channels (in the running loop) and start the HTTP server."""
        backend = Backend(self.settings)
        health = HealthMonitor(
            backend, deadline_s=self.settings.health_deadline_s, cache_s=self.settings.health_cache_s
        )
        hub = ChangeHub(
            backend.writer_channel,
            client_queue=self.settings.stream_client_queue,
            heartbeat_s=self.settings.stream_heartbeat_s,
            alerts=AlertSource(backend),
        )
        self.web = create_web_app(self.settings, backend, health, hub)
        http = HttpServer(
            self.web.asgi,
            self.settings.bind_host,
            self.settings.http_port,
            grace_seconds=self.settings.grace_seconds,
        )
        try:
            await http.start()
        except BaseException:
            await backend.close()
            raise
        hub.start()
        self._backend, self._http, self.hub = backend, http, hub
        # Start-up objects (routes, schemas, imported modules) never die: keep them out of the
        # cyclic collector's full passes, which otherwise show up as latency spikes under load.
        gc.freeze()
        log_event(logger, "gateway_http_started", host=self.settings.bind_host, http_port=http.port)

    async def stop(self) -> None:
        """End the streams, stop the HTTP server, then close the channels."""
        if self.hub is not None:
            await self.hub.stop()
            self.hub = None
        if self._http is not None:
            await self._http.stop()
            self._http = None
        if self._backend is not None:
            await self._backend.close()
            self._backend = None


def create_app(env: Env) -> GatewayApp:
    """Build the gateway app from the environment (raises ConfigError on bad settings)."""
    return GatewayApp(GatewaySettings.from_env(env))
