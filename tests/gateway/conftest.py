"""Gateway fixtures: a real stack (writer on PostgreSQL, transformer, fetcher, gateway) on loopback.

The writer, transformer and fetcher are the real service apps; the gateway runs its HTTP server in
the test's event loop. Data is seeded through the writer's own gRPC API, never straight into SQL,
except alerts (`insert_alerts`): the gateway's tests choose their values, which the write path
derives from the polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import grpc
import httpx
import psycopg
import pytest
import pytest_asyncio

from services.common.config import Env
from services.common.database import scratch_database
from services.common.metrics import MetricsEndpoint
from services.common.net import free_port
from services.common.nztime import nz_date, nz_midnight, utc_now
from services.common.proto.raceday.v1 import race_pb2, writer_pb2, writer_pb2_grpc
from services.common.server import RunningServer, ServiceApp, start_server
from services.common.service_apps import create_app
from services.common.settings import ServerSettings, ServiceName
from services.gateway import sample
from services.gateway.app import GatewayApp

BASE_ENV: Mapping[str, str] = {
    "RACEDAY_GATEWAY_HTTP_PORT": "0",
    "NZTAB_BASE_URL": "http://127.0.0.1:9",
    "NZTAB_FROM": "tests@example.co.nz",
    "NZTAB_PARTNER": "Raceday Tests",
    "NZTAB_PARTNER_ID": "raceday-tests",
    "RACEDAY_FETCHER_SCHEDULER_ENABLED": "false",
    "RACEDAY_LOG_LEVEL": "WARNING",
}


@dataclass(slots=True)
class Service:
    """One started service app and its server."""

    app: ServiceApp
    running: RunningServer
    metrics: MetricsEndpoint | None

    async def stop(self) -> None:
        """Stop the server, then the app."""
        await self.running.server.stop(0)
        await self.app.stop()
        if self.metrics is not None:
            self.metrics.close()


async def start_service(service: ServiceName, environ: Mapping[str, str]) -> Service:
    """Start a real service app on free loopback ports."""
    settings = ServerSettings(
        service=service,
        bind_host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        log_level="WARNING",
        grace_seconds=1.0,
    )
    app = create_app(service, Env(dict(environ)))
    running, metrics = await start_server(app, settings, with_metrics=False)
    return Service(app, running, metrics)


@dataclass(slots=True)
class Stack:
    """Services behind one gateway, plus clients for seeding and requests."""

    environ: dict[str, str]
    services: dict[str, Service]
    writer_channel: grpc.aio.Channel
    writer: writer_pb2_grpc.WriterServiceAsyncStub
    http: httpx.AsyncClient
    now: datetime = field(default_factory=utc_now)
    day: SeededDay | None = None

    @property
    def gateway(self) -> GatewayApp:
        """The gateway app (for its HTTP port)."""
        app = self.services["gateway"].app
        assert isinstance(app, GatewayApp)
        return app

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port> of the gateway."""
        return f"http://127.0.0.1:{self.gateway.http_port}"

    async def stop_service(self, name: str) -> None:
        """Stop one service (e.g. the writer, to see the gateway degrade)."""
        service = self.services.pop(name)
        await service.stop()

    async def close(self) -> None:
        """Stop everything in reverse start order."""
        await self.http.aclose()
        await self.writer_channel.close()
        for name in reversed(list(self.services)):
            await self.services[name].stop()
        self.services.clear()


@contextlib.asynccontextmanager
async def running_stack(
    database_url: str, extra_env: Mapping[str, str] | None = None, *, with_fetcher: bool = False
) -> AsyncIterator[Stack]:
    """Writer, transformer (and optionally the fetcher) and the gateway, in dependency order."""
    environ = {**BASE_ENV, "RACEDAY_DATABASE_URL": database_url, **(extra_env or {})}
    services: dict[str, Service] = {}
    names: tuple[ServiceName, ...] = ("writer", "transformer", "gateway")
    # Nothing listens here: a fetcher running elsewhere on its default port must not be probed.
    environ.setdefault("RACEDAY_FETCHER_ADDR", f"127.0.0.1:{free_port()}")
    if with_fetcher:
        names = ("writer", "transformer", "fetcher", "gateway")
    try:
        for name in names:
            service = await start_service(name, environ)
            services[name] = service
            environ[f"RACEDAY_{name.upper()}_ADDR"] = f"127.0.0.1:{service.running.grpc_port}"
        channel = grpc.aio.insecure_channel(environ["RACEDAY_WRITER_ADDR"])
        gateway = services["gateway"].app
        assert isinstance(gateway, GatewayApp)
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10)
        stack = Stack(environ, services, channel, writer_pb2_grpc.WriterServiceStub(channel), http)
    except BaseException:
        for service in reversed(list(services.values())):
            await service.stop()
        raise
    try:
        yield stack
    finally:
        await stack.close()


@dataclass(slots=True)
class SeededDay:
    """What `seed_day` wrote: ids to query and the builders to write further polls."""

    meeting_ids: list[str]
    races: dict[str, sample.RaceBuilder]
    live_race: str
    future_race: str
    final_race: str
    quiet_race: str
    other_day_meeting: str

    def neighbours(self, race_id: str) -> tuple[str | None, str | None]:
        """The seeded races before and after `race_id` among those of its NZ racing day, in the
        navigation order (rest-api.md §2.6). Near NZ midnight the seeded races straddle two days,
        so a neighbour can be on the other side of it: then there is none."""
        key = {
            rid: (b.start, b.meeting.meeting_name, b.race.race_number, rid)
            for rid, b in self.races.items()
            if nz_date(b.start) == nz_date(self.races[race_id].start)
        }
        ordered = sorted(key, key=key.__getitem__)
        at = ordered.index(race_id)
        return (ordered[at - 1] if at > 0 else None, ordered[at + 1] if at + 1 < len(ordered) else None)


async def health_when(
    stack: Stack, path: str, condition: Callable[[dict[str, Any]], bool], timeout_s: float = 60.0
) -> dict[str, Any]:
    """The first health body (at `path`) that meets `condition`; the gateway caches probes for 2 s
    and a probe may time out on a busy machine, so ask again until it does."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await stack.http.get(path)
        body: dict[str, Any] = response.json()
        if condition(body) or asyncio.get_running_loop().time() > deadline:
            return body
        await asyncio.sleep(0.2)


async def seed_day(stack: Stack, prefix: str) -> SeededDay:
    """Two meetings today: a final race with results, a live race 3 min from the start with a
    timeline from 60 to 4, a race 40 min out, a race with no money flow; plus a meeting tomorrow."""
    now = stack.now
    ids = {key: f"{prefix}-{key}" for key in ("m1", "m2", "m3")}
    m1 = sample.build_meeting(ids["m1"], "Awapuni", now)
    m2 = sample.build_meeting(ids["m2"], "Addington", now, category="H")
    races: dict[str, sample.RaceBuilder] = {}

    def builder(
        meeting: race_pb2.Meeting, number: int, start: datetime, count: int, **kw: object
    ) -> sample.RaceBuilder:
        race_id = f"{meeting.meeting_id}-r{number}"
        runners = sample.build_runners(race_id, count, **kw)  # type: ignore[arg-type]
        race = sample.build_race(meeting, race_id, number, start, field_size=count)
        races[race_id] = sample.RaceBuilder(meeting, race, runners, start)
        return races[race_id]

    final = builder(m1, 1, now - timedelta(minutes=20), 6)
    live = builder(m1, 2, now + timedelta(minutes=3, seconds=20), 8, scratched=(8,))
    future = builder(m1, 3, now + timedelta(minutes=40), 7)
    quiet = builder(m2, 1, now + timedelta(minutes=95), 5)

    # The live race: one poll in every bucket from 60 down to 4; runner 2 firms sharply from the
    # 10 bucket (money and price), which the dashboard must colour.
    firming = {10: 3, 11: 8, 12: 9}
    for step, minutes in enumerate((62, 57, 52, 47, 42, 37, 32, 27, 22, 17, 12, 7, 4)):
        polled_at = now - timedelta(minutes=minutes - 3, seconds=-20)
        firm = firming.get(step, 0)
        await sample.write(
            stack.writer,
            live.poll(
                polled_at,
                holds=sample.holds_for(live.runners, firm),
                win_pool=1_000_000 + step * 300_000,
                place_pool=400_000 + step * 110_000,
                odds={live.runners[1].entrant_id: round(live.runners[1].win_odds - firm * 0.3, 2)},
            ),
        )
    # The final race: polls before its start, then interim and final results after it.
    for minutes in (30, 10, 2):
        polled_at = final.start - timedelta(minutes=minutes)
        await sample.write(
            stack.writer,
            final.poll(
                polled_at, holds=sample.holds_for(final.runners, 0), win_pool=2_000_000, place_pool=800_000
            ),
        )
    for minutes, status in ((3, "interim"), (8, "final")):
        polled_at = final.start + timedelta(minutes=minutes)
        await sample.write(
            stack.writer,
            final.poll(
                polled_at,
                holds={},
                win_pool=2_100_000,
                place_pool=820_000,
                status=status,
                results=sample.results_for(final.runners, polled_at, status),
            ),
        )
    for minutes in (70, 50):
        polled_at = future.start - timedelta(minutes=minutes)
        if polled_at <= now:
            await sample.write(
                stack.writer,
                future.poll(
                    polled_at, holds=sample.holds_for(future.runners, 0), win_pool=300_000, place_pool=100_000
                ),
            )
    # Baseline-only meeting: entities but no time series.
    await stack.writer.UpsertMeetings(
        writer_pb2.UpsertMeetingsRequest(
            meetings=[writer_pb2.MeetingWithRaces(meeting=m2, races=[quiet.race])]
        ),
        timeout=10,
    )
    tomorrow = now + timedelta(days=1)
    m3 = sample.build_meeting(ids["m3"], "Riccarton", tomorrow)
    await stack.writer.UpsertMeetings(
        writer_pb2.UpsertMeetingsRequest(
            meetings=[
                writer_pb2.MeetingWithRaces(
                    meeting=m3, races=[sample.build_race(m3, f"{ids['m3']}-r1", 1, tomorrow, field_size=9)]
                )
            ]
        ),
        timeout=10,
    )
    return SeededDay(
        meeting_ids=[ids["m1"], ids["m2"]],
        races=races,
        live_race=live.race.race_id,
        future_race=future.race.race_id,
        final_race=final.race.race_id,
        quiet_race=quiet.race.race_id,
        other_day_meeting=ids["m3"],
    )


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One race_alerts row to insert."""

    race_id: str
    entrant_id: str
    kind: str
    time_interval: int
    value: float
    polled_at: datetime


def earlier_today(now: datetime, minutes: float) -> datetime:
    """`minutes` before `now`, but not before today's NZ midnight: alerts the default window (today)
    holds whatever the time of day the tests run at."""
    return max(now - timedelta(minutes=minutes), nz_midnight(nz_date(now)))


async def insert_alerts(database_url: str, rows: list[AlertRow]) -> list[int]:
    """Store alerts as the writer does (in order, so ids grow with the list); their ids."""
    ids: list[int] = []
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for row in rows:
            previous = row.time_interval + (5 if row.time_interval >= 5 else 1)
            cur = await conn.execute(
                "INSERT INTO race_alerts (race_id, entrant_id, kind, time_interval, previous_interval, value,"
                " polled_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING alert_id",
                (
                    row.race_id,
                    row.entrant_id,
                    row.kind,
                    row.time_interval,
                    previous,
                    row.value,
                    row.polled_at,
                ),
            )
            found = await cur.fetchone()
            assert found is not None
            ids.append(int(found[0]))
    return ids


@pytest.fixture(scope="module")
def module_database_url(pg_server_url: str) -> Iterator[str]:
    """A database shared by one test module (its tests only read, or use their own ids)."""
    with scratch_database(pg_server_url, "raceday_gw") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def seeded_stack(module_database_url: str) -> AsyncIterator[Stack]:
    """A running stack with `seed_day` written once for the module."""
    async with running_stack(module_database_url) as stack:
        stack.day = await seed_day(stack, f"t{uuid.uuid4().hex[:6]}")
        yield stack
