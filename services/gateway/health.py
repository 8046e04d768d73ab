"""`GET /health`: real probes of the services behind the gateway, cached briefly (rest-api.md §2.1).

`status` is healthy exactly when the writer answers GetStatus and reports its database connected
(the gateway can serve data); `workers` reflects the fetcher's and transformer's standard gRPC
health, and is degraded while the fetcher holds polls it could not commit yet (`spool`: how
many and how old, from its GetSchedulerStatus). Concurrent requests share one probe round, and
a result is reused for `cache_s` seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from services.common.health import SERVING, check_health
from services.common.nztime import format_nz, utc_now
from services.common.proto.raceday.v1 import fetcher_pb2, fetcher_pb2_grpc, query_pb2
from services.common.timestamps import ts_to_datetime
from services.gateway.backend import Backend

SERVICES: Final = ("writer", "transformer", "fetcher")


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One probe round: HTTP status and body."""

    status_code: int
    body: dict[str, Any]


def _state(result: int | BaseException) -> str:
    if isinstance(result, BaseException):
        return "unknown"
    return "serving" if result == SERVING else "not_serving"


class HealthMonitor:
    """Probes the writer, transformer and fetcher with short deadlines; caches the answer."""

    def __init__(self, backend: Backend, *, deadline_s: float, cache_s: float) -> None:
        self._backend = backend
        self._deadline_s = deadline_s
        self._cache_s = cache_s
        self._cached: tuple[float, HealthReport] | None = None
        self._inflight: asyncio.Task[HealthReport] | None = None
        self._generation = 0
        self._fetcher = fetcher_pb2_grpc.FetcherServiceStub(backend.fetcher_channel)
        backend.on_unavailable = self.invalidate

    def invalidate(self) -> None:
        """Forget the cached report (a data call just found the writer unreachable)."""
        self._generation += 1
        self._cached = None
        self._inflight = None

    async def report(self) -> HealthReport:
        """The latest report, probing again when the cached one is older than `cache_s`."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self._cache_s:
            return self._cached[1]
        generation = self._generation
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._probe())
        # Shielded: a client that disconnects must not cancel the round others wait on.
        report = await asyncio.shield(self._inflight)
        if generation == self._generation:
            self._cached = (time.monotonic(), report)
        return report

    async def _status(self) -> query_pb2.GetStatusResponse:
        response: query_pb2.GetStatusResponse = await self._backend.query.GetStatus(
            query_pb2.GetStatusRequest(), timeout=self._deadline_s
        )
        return response

    async def _scheduler(self) -> fetcher_pb2.GetSchedulerStatusResponse:
        response: fetcher_pb2.GetSchedulerStatusResponse = await self._fetcher.GetSchedulerStatus(
            fetcher_pb2.GetSchedulerStatusRequest(), timeout=self._deadline_s
        )
        return response

    async def _probe(self) -> HealthReport:
        backend = self._backend
        status, writer, transformer, fetcher, scheduler = await asyncio.gather(
            self._status(),
            check_health(backend.writer_channel, "", self._deadline_s),
            check_health(backend.transformer_channel, "", self._deadline_s),
            check_health(backend.fetcher_channel, "", self._deadline_s),
            self._scheduler(),
            return_exceptions=True,
        )
        for result in (status, writer, transformer, fetcher, scheduler):
            if isinstance(result, asyncio.CancelledError):
                raise result
        return build_report(status, writer, transformer, fetcher, utc_now(), scheduler=scheduler)


def build_report(
    status: query_pb2.GetStatusResponse | BaseException,
    writer: int | BaseException,
    transformer: int | BaseException,
    fetcher: int | BaseException,
    now: datetime,
    *,
    scheduler: fetcher_pb2.GetSchedulerStatusResponse | BaseException | None = None,
) -> HealthReport:
    """Combine probe outcomes into the contract's body."""
    services = {
        "writer": _state(writer),
        "transformer": _state(transformer),
        "fetcher": _state(fetcher),
    }
    spool = _spool(scheduler, now)
    caught_up = spool is None or (spool["polls"] == 0 and spool["commit_breaker"] == "closed")
    serving = services["transformer"] == services["fetcher"] == "serving"
    workers = "operational" if serving and caught_up else "degraded"
    if isinstance(status, BaseException):
        if services["writer"] == "serving":
            services["writer"] = "unknown"
        return _report(now, "unknown", workers, services, spool, error="writer unavailable")
    # GetStatus answered, so the writer is reachable even if its health check was slow.
    if services["writer"] == "unknown":
        services["writer"] = "serving"
    if not status.database_connected:
        return _report(
            now, "disconnected", workers, services, spool, error="writer reports its database disconnected"
        )
    data_age: float | None = None
    if status.HasField("last_race_write"):
        data_age = round(max(0.0, (now - ts_to_datetime(status.last_race_write)).total_seconds()), 3)
    return _report(now, "connected", workers, services, spool, data_age_seconds=data_age)


def _spool(
    scheduler: fetcher_pb2.GetSchedulerStatusResponse | BaseException | None, now: datetime
) -> dict[str, Any] | None:
    """The fetcher's outage spool as the body shows it (None when the fetcher did not answer)."""
    if scheduler is None or isinstance(scheduler, BaseException):
        return None
    oldest_age: float | None = None
    if scheduler.HasField("oldest_spooled_poll_ms"):
        oldest_age = round(max(0.0, now.timestamp() - scheduler.oldest_spooled_poll_ms / 1000), 3)
    return {
        "polls": scheduler.spooled_polls,
        "oldest_age_seconds": oldest_age,
        "commit_breaker": scheduler.commit_circuit_state or "closed",
    }


def _report(
    now: datetime,
    database: str,
    workers: str,
    services: dict[str, str],
    spool: dict[str, Any] | None,
    **last: str | float | None,
) -> HealthReport:
    # Healthy exactly when the database is connected (the gateway can serve data); `last` is the
    # error of an unhealthy report or the data age of a healthy one, and ends the body.
    healthy = database == "connected"
    body: dict[str, Any] = {
        "timestamp": format_nz(now),
        "status": "healthy" if healthy else "unhealthy",
        "database": database,
        "workers": workers,
        "services": services,
        "spool": spool,
        **last,
    }
    return HealthReport(200 if healthy else 503, body)
