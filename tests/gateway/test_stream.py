"""GET /api/stream: every committed poll reaches every client once, from any writer through any gateway."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
from prometheus_client import REGISTRY

from services.common.health import wait_serving
from services.common.net import free_port
from services.common.nztime import utc_now
from services.common.proto.raceday.v1 import writer_pb2, writer_pb2_grpc
from services.common.supervisor import ProcessSpec, Supervisor
from services.common.timestamps import datetime_to_ts
from services.gateway import sample
from services.gateway.stream import Change, ChangeHub
from tests.e2e.stack import http_get, metric_values, wait_for
from tests.gateway.conftest import BASE_ENV, AlertRow, insert_alerts, running_stack


@dataclass
class Event:
    """One Server-Sent Event."""

    kind: str
    id: int | None
    data: dict[str, Any] = field(default_factory=dict)


async def read_events(
    response: httpx.Response, count: int, kinds: tuple[str, ...] | None = ("race",)
) -> list[Event]:
    """The first `count` events of the given kinds (every kind when None; comments skipped)."""
    events: list[Event] = []
    kind, event_id, data = "message", None, ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("id: "):
            event_id = int(line[len("id: ") :])
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif line == "":
            if data and (kinds is None or kind in kinds):
                events.append(Event(kind, event_id, json.loads(data)))
                if len(events) == count:
                    return events
            kind, event_id, data = "message", None, ""
    return events


@asynccontextmanager
async def sse(base_url: str, params: dict[str, str]) -> AsyncIterator[httpx.Response]:
    """An open event stream."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=60)) as http,
        http.stream("GET", "/api/stream", params=params) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield response


def _race_builders(prefix: str) -> list[sample.RaceBuilder]:
    now = utc_now()
    meeting = sample.build_meeting(f"{prefix}-m", "Replica Park", now)
    builders = []
    for number in (1, 2):
        start = now + timedelta(minutes=20 * number)
        race = sample.build_race(meeting, f"{prefix}-r{number}", number, start, field_size=6)
        builders.append(sample.RaceBuilder(meeting, race, sample.build_runners(race.race_id, 6), start))
    return builders


def _upstream_connected(metrics_url: str) -> bool:
    status, text = http_get(metrics_url)
    return status == 200 and metric_values(text, "raceday_stream_upstream_connected").get("") == 1.0


async def test_two_writers_and_two_gateways_deliver_every_commit_to_every_client_once(
    fresh_database_url: str, tmp_path: Path
) -> None:
    # Four processes on loopback: gateway A follows writer A, gateway B writer B; polls are committed
    # through both writers, and every client of either gateway must see each commit once.
    common = {
        **os.environ,
        **BASE_ENV,
        "RACEDAY_DATABASE_URL": fresh_database_url,
        "RACEDAY_TRANSFORMER_ADDR": f"127.0.0.1:{free_port()}",
        "RACEDAY_FETCHER_ADDR": f"127.0.0.1:{free_port()}",
    }
    raceday = [sys.executable, "-m", "services.cli", "serve"]
    supervisor = Supervisor()
    writer_ports, http_ports, metrics_urls = [], [], []
    try:
        for replica in ("a", "b"):
            port = free_port()
            env = {
                **common,
                "RACEDAY_WRITER_PORT": str(port),
                "RACEDAY_WRITER_METRICS_PORT": str(free_port()),
            }
            await supervisor.start(
                ProcessSpec(f"writer-{replica}", [*raceday, "writer"], env, tmp_path / "w.log")
            )
            await wait_serving(f"127.0.0.1:{port}", timeout_s=60)
            writer_ports.append(port)
        for replica, writer_port in zip(("a", "b"), writer_ports, strict=True):
            grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
            env = {
                **common,
                "RACEDAY_WRITER_ADDR": f"127.0.0.1:{writer_port}",
                "RACEDAY_GATEWAY_PORT": str(grpc_port),
                "RACEDAY_GATEWAY_HTTP_PORT": str(http_port),
                "RACEDAY_GATEWAY_METRICS_PORT": str(metrics_port),
            }
            await supervisor.start(
                ProcessSpec(f"gateway-{replica}", [*raceday, "gateway"], env, tmp_path / "g.log")
            )
            await wait_serving(f"127.0.0.1:{grpc_port}", timeout_s=60)
            http_ports.append(http_port)
            metrics_urls.append(f"http://127.0.0.1:{metrics_port}/metrics")
        for url in metrics_urls:
            await asyncio.to_thread(
                wait_for, lambda url=url: _upstream_connected(url), 60, "the gateway's change feed"
            )
        live, other = _race_builders("replicas")
        urls = [f"http://127.0.0.1:{port}" for port in http_ports]
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in writer_ports]
        try:
            writers = [writer_pb2_grpc.WriterServiceStub(channel) for channel in channels]
            async with (
                sse(urls[0], {}) as everything_a,
                sse(urls[0], {"race_id": live.race.race_id}) as live_a,
                sse(urls[1], {}) as everything_b,
                sse(urls[1], {"raceIds": f"{live.race.race_id},nothing-else"}) as live_b,
            ):
                # The handler subscribes before it answers, so every stream is registered by now.
                readers = [
                    asyncio.create_task(read_events(everything_a, 6)),
                    asyncio.create_task(read_events(live_a, 3)),
                    asyncio.create_task(read_events(everything_b, 6)),
                    asyncio.create_task(read_events(live_b, 3)),
                ]
                for step in range(3):
                    polled_at = utc_now()
                    for builder, writer in ((live, writers[step % 2]), (other, writers[(step + 1) % 2])):
                        update = builder.poll(
                            polled_at,
                            holds=sample.holds_for(builder.runners, step),
                            win_pool=900_000,
                            place_pool=300_000,
                        )
                        await sample.write(writer, update)
                seen = await asyncio.wait_for(asyncio.gather(*readers), timeout=60)
        finally:
            for channel in channels:
                await channel.close()
    finally:
        await supervisor.stop()

    everything = [seen[0], seen[2]]
    live_only = [seen[1], seen[3]]
    for events in everything:
        ids = [event.id for event in events if event.id is not None]
        assert len(ids) == len(set(ids)) == 6 and ids == sorted(ids)
        assert {event.data["race_id"] for event in events} == {live.race.race_id, other.race.race_id}
    assert [e.id for e in seen[0]] == [e.id for e in seen[2]]
    for events in live_only:
        assert [event.data["race_id"] for event in events] == [live.race.race_id] * 3
        assert [e.id for e in events] == [e.id for e in seen[0] if e.data["race_id"] == live.race.race_id]
    first = seen[0][0].data
    assert first["committed_at"].endswith(("+12:00", "+13:00")) and first["money_flow_rows"] > 0


def _change(change_id: int, race_id: str = "r1") -> Change:
    return Change(change_id, race_id, json.dumps({"race_id": race_id}), committed_at=0.0)


def _hub(client_queue: int = 8) -> ChangeHub:
    return ChangeHub(grpc.aio.insecure_channel("127.0.0.1:9"), client_queue=client_queue, heartbeat_s=0.05)


async def test_a_client_that_falls_behind_is_dropped_not_buffered() -> None:
    hub = _hub(client_queue=2)
    slow, _, _ = hub.connect(frozenset(), None)
    keeping_up, _, _ = hub.connect(frozenset({"r1"}), None)
    for change_id in range(1, 4):
        hub.publish(_change(change_id))
        keeping_up.queue.get_nowait()
    assert slow.dropped and slow not in hub.clients
    assert not keeping_up.dropped and keeping_up in hub.clients
    assert slow.queue.qsize() == 2  # never more than its bound


async def test_a_reconnecting_client_gets_what_it_missed_or_a_reset() -> None:
    hub = _hub()
    for change_id in range(10, 15):
        hub.publish(_change(change_id, race_id="r1" if change_id % 2 else "r2"))
    client, missed, reset = hub.connect(frozenset({"r1"}), last_event_id=11)
    assert [c.id for c in missed] == [13] and not reset
    _, missed, reset = hub.connect(frozenset(), last_event_id=5)  # older than the buffer
    assert reset and [c.id for c in missed] == [10, 11, 12, 13, 14]
    # The stream: the retry hint, then the missed events; a keep-alive while idle; a reset when the
    # gateway loses the writers.
    stream = hub.events(client, missed=[hub.buffer[3]], reset=False)
    assert await anext(stream) == b"retry: 3000\n\n"
    assert (await anext(stream)).startswith(b"id: 13\nevent: race\n")
    assert await anext(stream) == b": keep-alive\n\n"
    hub.connected.set()
    hub._upstream(False)
    assert (await anext(stream)).startswith(b"event: reset\n")
    assert not hub.buffer


async def test_alerts_reach_the_clients_that_asked_for_them_classified_for_their_user(
    fresh_database_url: str,
) -> None:
    async with running_stack(fresh_database_url) as stack:
        hub = stack.gateway.hub
        assert hub is not None
        one, two = _race_builders("alerts")
        for builder in (one, two):
            update = builder.poll(
                utc_now(), holds=sample.holds_for(builder.runners, 0), win_pool=900_000, place_pool=300_000
            )
            await sample.write(stack.writer, update)
        saved = await stack.http.post(
            "/api/user-alert-configs",
            json={
                "user_id": "stream-picky",
                "indicators": [
                    {
                        "display_order": order,
                        "percentage_range_min": low,
                        "percentage_range_max": high,
                        "color": "#E5E7EB",
                        "enabled": False,
                    }
                    for order, low, high in ((1, 5, 10), (2, 10, 15), (3, 15, 20), (4, 20, 25), (5, 25, 50))
                ],
            },
        )
        assert saved.status_code == 200
        await asyncio.wait_for(hub.connected.wait(), timeout=30)  # the alert baseline precedes it
        for bad in ({"alerts": "maybe"}, {"alerts": "1", "userId": "x" * 101}):
            assert (await stack.http.get("/api/stream", params=bad)).status_code == 400
        pushed_before = REGISTRY.get_sample_value("raceday_stream_alerts_pushed_total") or 0.0
        base = stack.base_url
        async with (
            sse(base, {}) as plain,
            sse(base, {"alerts": "1"}) as everything,
            sse(base, {"alerts": "true", "userId": "stream-picky", "race_id": one.race.race_id}) as picky,
        ):
            readers = [
                asyncio.create_task(read_events(plain, 2, None)),
                asyncio.create_task(read_events(everything, 5, None)),
                asyncio.create_task(read_events(picky, 3, None)),
            ]
            now = utc_now()
            ids = await insert_alerts(
                fresh_database_url,
                [
                    AlertRow(one.race.race_id, one.runners[1].entrant_id, "win_money", 15, 7.0, now),
                    AlertRow(one.race.race_id, one.runners[2].entrant_id, "win_price", 15, 60.0, now),
                    AlertRow(two.race.race_id, two.runners[0].entrant_id, "place_money", 35, 20.0, now),
                ],
            )
            # The writer announces the write that stored them (RaceChange.alerts), once.
            change = writer_pb2.RaceChange(
                id=10_000,
                race_id=one.race.race_id,
                meeting_id=one.meeting.meeting_id,
                status="open",
                alerts=3,
            )
            change.polled_at.CopyFrom(datetime_to_ts(now))
            change.committed_at.CopyFrom(datetime_to_ts(now))
            hub.receive(change)
            # A later poll without alerts: a real commit, after the alert events on every stream.
            await asyncio.sleep(0.5)
            update = one.poll(
                utc_now(), holds=sample.holds_for(one.runners, 1), win_pool=950_000, place_pool=310_000
            )
            await sample.write(stack.writer, update)
            plain_events, all_events, picky_events = await asyncio.wait_for(
                asyncio.gather(*readers), timeout=60
            )

    assert [event.kind for event in plain_events] == ["race", "race"]  # never an alert unless asked
    assert [event.kind for event in all_events] == ["race", "alert", "alert", "alert", "race"]
    alerts = [event for event in all_events if event.kind == "alert"]
    assert [event.data["alert_id"] for event in alerts] == ids  # oldest first
    assert all(event.id is None and event.data["indicator"] is None for event in alerts)
    assert alerts[1].data["runner_name"] == one.runners[2].name and alerts[1].data["value"] == 60.0
    # The picky user's stream: its race only, and only what its one enabled range (50%+) holds.
    assert [event.kind for event in picky_events] == ["race", "alert", "race"]
    assert picky_events[1].data["alert_id"] == ids[1]
    assert picky_events[1].data["indicator"] == {"display_order": 6, "color": "#F3E8FF", "label": "50%+"}
    pushed = REGISTRY.get_sample_value("raceday_stream_alerts_pushed_total") or 0.0
    assert pushed - pushed_before == 4
