"""Every service starts in-process on real gRPC ports and answers the standard health check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from services.common.config import Env
from services.common.health import SERVING, check_health
from services.common.server import RunningServer, start_server
from services.common.service_apps import create_app
from services.common.settings import ServerSettings, ServiceName

# Start order: dependencies first, so the fetcher and gateway find their peers serving.
START_ORDER: tuple[ServiceName, ...] = ("writer", "transformer", "fetcher", "gateway")


@pytest.fixture
async def stack(fresh_database_url: str) -> AsyncIterator[dict[ServiceName, RunningServer]]:
    environ = {
        "RACEDAY_DATABASE_URL": fresh_database_url,
        "RACEDAY_GATEWAY_HTTP_PORT": "0",
        "NZTAB_BASE_URL": "http://127.0.0.1:9",
        "NZTAB_FROM": "tests@example.co.nz",
        "NZTAB_PARTNER": "Raceday Tests",
        "NZTAB_PARTNER_ID": "raceday-tests",
        "RACEDAY_FETCHER_SCHEDULER_ENABLED": "false",
    }
    started: dict[ServiceName, RunningServer] = {}
    apps = []
    try:
        for service in START_ORDER:
            env = Env(environ)
            settings = ServerSettings(
                service=service,
                bind_host="127.0.0.1",
                grpc_port=0,
                metrics_port=0,
                log_level="INFO",
                grace_seconds=1.0,
            )
            app = create_app(service, env)
            running, metrics = await start_server(app, settings)
            apps.append((app, running, metrics))
            started[service] = running
            environ[f"RACEDAY_{service.upper()}_ADDR"] = f"127.0.0.1:{running.grpc_port}"
        yield started
    finally:
        for app, running, metrics in reversed(apps):
            await running.server.stop(0)
            await app.stop()
            if metrics is not None:
                metrics.close()


async def test_each_service_reports_serving(stack: dict[ServiceName, RunningServer]) -> None:
    assert set(stack) == set(START_ORDER)
    for service, running in stack.items():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            assert await check_health(channel, "", deadline_s=2) == SERVING, service
            for name in running.services:
                assert await check_health(channel, name, deadline_s=2) == SERVING, name
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await check_health(channel, "no.such.Service", deadline_s=2)
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
