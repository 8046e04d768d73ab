"""Asyncio gRPC server bootstrap shared by every service.

Each service supplies a `ServiceApp`: it registers its servicers, and may run
start-up work (migrations, partitions, background loops) before the health
service reports SERVING, and clean-up after the server stops. The bootstrap adds
the standard health service, reflection and the /metrics endpoint, and stops
gracefully on SIGTERM or SIGINT: health goes NOT_SERVING, in-flight calls get
`grace_seconds` to finish, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.logs import log_event
from services.common.metrics import MetricsEndpoint, start_metrics_endpoint
from services.common.settings import ServerSettings

logger = logging.getLogger(__name__)

# Event payloads are ~400 KB; leave generous headroom over gRPC's 4 MB default.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
SERVER_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
)


class ServiceApp(Protocol):
    """What a service plugs into the bootstrap."""

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        """Add servicers to the server; return their full service names (for health and reflection)."""
        ...

    async def start(self) -> None:
        """Start-up work that must finish before the service reports SERVING."""
        ...

    async def stop(self) -> None:
        """Clean-up after the server has stopped accepting calls."""
        ...


class RunningServer:
    """A started server: its bound ports, health servicer and a way to stop it."""

    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: health.aio.HealthServicer,
        services: Sequence[str],
        grpc_port: int,
        metrics_port: int | None,
    ) -> None:
        self.server = server
        self.health = health_servicer
        self.services = tuple(services)
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING or NOT_SERVING for the overall server and each service."""
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.services):
            await self.health.set(name, status)


async def start_server(
    app: ServiceApp, settings: ServerSettings, *, with_metrics: bool = True
) -> tuple[RunningServer, MetricsEndpoint | None]:
    """Start `app` on its ports; SERVING once `app.start()` has finished."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services = list(app.register(server))
    reflection.enable_server_reflection(
        (*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    grpc_port = server.add_insecure_port(f"{settings.bind_host}:{settings.grpc_port}")
    if grpc_port == 0:
        raise OSError(f"cannot bind gRPC port {settings.bind_host}:{settings.grpc_port}")
    metrics = start_metrics_endpoint(settings.bind_host, settings.metrics_port) if with_metrics else None
    running = RunningServer(server, health_servicer, services, grpc_port, metrics.port if metrics else None)
    await running.set_serving(False)
    await server.start()
    await app.start()
    await running.set_serving(True)
    log_event(
        logger,
        "service_started",
        service=settings.service,
        grpc_port=grpc_port,
        metrics_port=running.metrics_port,
    )
    return running, metrics


async def serve(app: ServiceApp, settings: ServerSettings) -> None:
    """Run `app` until SIGTERM or SIGINT, then stop gracefully."""
    running, metrics = await start_server(app, settings)
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    await stop_requested.wait()
    log_event(logger, "service_stopping", service=settings.service, grace_seconds=settings.grace_seconds)
    await running.set_serving(False)
    await running.server.stop(settings.grace_seconds)
    await app.stop()
    if metrics is not None:
        metrics.close()
    log_event(logger, "service_stopped", service=settings.service)
