"""Acceptance 4: with the writer stopped (or hanging), /health answers 503 naming it and every data
endpoint answers a JSON 503/504 within its deadline instead of hanging."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest

from services.common.config import Env
from services.common.server import start_server
from services.common.settings import ServerSettings
from services.gateway.app import create_app
from tests.gateway.conftest import health_when, running_stack, seed_day

DEADLINE_S = 0.5
# The client gives up well after the gateway's deadline: a hang fails the test instead of stalling it.
CLIENT_TIMEOUT_S = DEADLINE_S * 4 + 2

DATA_PATHS = (
    "/api/meetings",
    "/api/meetings/m",
    "/api/races?meeting_id=m",
    "/api/races/r",
    "/api/races/navigation?race_id=r",
    "/api/races/upcoming",
    "/api/races/next-scheduled",
    "/api/entrants?race_id=r",
    "/api/race-pools?race_id=r",
    "/api/race-results?race_id=r",
    "/api/money-flow-timeline?race_id=r",
    "/api/user-alert-configs",
)


async def test_writer_stopped_health_503_and_data_503(fresh_database_url: str) -> None:
    async with running_stack(fresh_database_url, {"RACEDAY_GATEWAY_DEADLINE_S": str(DEADLINE_S)}) as stack:
        await seed_day(stack, "stop")
        assert (await stack.http.get("/health")).status_code == 200
        await stack.stop_service("writer")
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=CLIENT_TIMEOUT_S) as client:
            # The first failing data call invalidates the cached healthy report.
            for path in DATA_PATHS:
                response = await client.get(path)
                assert response.status_code == 503, (path, response.text)
                body = response.json()
                assert body["error"] == "Writer service unavailable"
                assert body["details"] == {"service": "writer"}
                assert body["request_id"] == response.headers["x-request-id"]
            saved = await client.post(
                "/api/user-alert-configs",
                json={"indicators": [{"display_order": 1, "percentage_range_min": 5, "color": "#FFFFFF"}]},
            )
            assert saved.status_code == 503
            for path in ("/health", "/api/health"):
                health = await client.get(path)
                assert health.status_code == 503
                body = health.json()
                assert body["status"] == "unhealthy" and body["database"] == "unknown"
                assert body["services"]["writer"] != "serving"
                assert body["services"]["transformer"] == "serving"
                assert "writer" in body["error"]
            # Validation still answers without the writer.
            assert (await client.get("/api/entrants")).status_code == 400


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung peer)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


async def test_hung_writer_yields_504_within_the_deadline(silent_port: int) -> None:
    env = Env(
        {
            "RACEDAY_GATEWAY_HTTP_PORT": "0",
            "RACEDAY_GATEWAY_DEADLINE_S": str(DEADLINE_S),
            "RACEDAY_WRITER_ADDR": f"127.0.0.1:{silent_port}",
            "RACEDAY_TRANSFORMER_ADDR": f"127.0.0.1:{silent_port}",
            "RACEDAY_FETCHER_ADDR": f"127.0.0.1:{silent_port}",
        }
    )
    app = create_app(env)
    settings = ServerSettings("gateway", "127.0.0.1", 0, 0, "WARNING", 1.0)
    running, _ = await start_server(app, settings, with_metrics=False)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{app.http_port}", timeout=CLIENT_TIMEOUT_S
        ) as client:
            responses = await asyncio.gather(*(client.get(path) for path in DATA_PATHS[:4]))
            for response in responses:
                assert response.status_code == 504, response.text
                assert response.json()["error"] == "Writer service timed out"
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json()["services"] == {
                "writer": "unknown",
                "transformer": "unknown",
                "fetcher": "unknown",
            }
    finally:
        await running.server.stop(0)
        await app.stop()


async def test_health_with_every_service_then_the_fetcher_stopped(fresh_database_url: str) -> None:
    async with running_stack(fresh_database_url, with_fetcher=True) as stack:
        body = (await stack.http.get("/health")).json()
        assert body["services"] == {"writer": "serving", "transformer": "serving", "fetcher": "serving"}
        assert body["workers"] == "operational" and body["status"] == "healthy"
        await stack.stop_service("fetcher")
        body = await health_when(stack, "/api/health", lambda b: b["services"]["fetcher"] != "serving")
        # Pipeline trouble degrades the workers but must not flip the status the browser reads.
        assert (await stack.http.get("/api/health")).status_code == 200
        assert body["status"] == "healthy" and body["workers"] == "degraded"
        assert body["services"]["fetcher"] == "unknown"
