"""GET /api/stream: every committed poll reaches every client once, from any writer through any gateway."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import httpx

from services.common.proto.raceday.v1 import writer_pb2_grpc
from services.gateway import sample
from services.gateway.app import GatewayApp
from services.gateway.stream import Change, ChangeHub
from tests.gateway.conftest import running_stack, seed_day, start_service


@dataclass
class Event:
    """One Server-Sent Event."""

    kind: str
    id: int | None
    data: dict[str, Any] = field(default_factory=dict)


async def read_events(response: httpx.Response, count: int) -> list[Event]:
    """The first `count` `race` events of a stream (comments and other events skipped)."""
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
            if kind == "race" and data:
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


async def test_two_writers_and_two_gateways_deliver_every_commit_to_every_client_once(
    fresh_database_url: str,
) -> None:
    async with running_stack(fresh_database_url) as stack:
        day = await seed_day(stack, "push")
        second_writer = await start_service("writer", stack.environ)
        second_env = {**stack.environ, "RACEDAY_WRITER_ADDR": f"127.0.0.1:{second_writer.running.grpc_port}"}
        second_gateway = await start_service("gateway", second_env)
        channel = grpc.aio.insecure_channel(second_env["RACEDAY_WRITER_ADDR"])
        try:
            gateways = [stack.gateway, second_gateway.app]
            assert all(isinstance(g, GatewayApp) and g.hub is not None for g in gateways)
            hubs = [g.hub for g in gateways if isinstance(g, GatewayApp) and g.hub is not None]
            for hub in hubs:
                await asyncio.wait_for(hub.connected.wait(), timeout=30)
            live = day.races[day.live_race]
            future = day.races[day.future_race]
            urls = [f"http://127.0.0.1:{g.http_port}" for g in gateways if isinstance(g, GatewayApp)]
            async with (
                sse(urls[0], {}) as everything_a,
                sse(urls[0], {"race_id": live.race.race_id}) as live_a,
                sse(urls[1], {}) as everything_b,
                sse(urls[1], {"raceIds": f"{live.race.race_id},nothing-else"}) as live_b,
            ):
                # The handler subscribes before it answers, so every stream is registered by now.
                assert all(len(hub.clients) == 2 for hub in hubs)
                readers = [
                    asyncio.create_task(read_events(everything_a, 6)),
                    asyncio.create_task(read_events(live_a, 3)),
                    asyncio.create_task(read_events(everything_b, 6)),
                    asyncio.create_task(read_events(live_b, 3)),
                ]
                writers = [stack.writer, writer_pb2_grpc.WriterServiceStub(channel)]
                holds = sample.holds_for(live.runners, 20)
                for step in range(3):
                    polled_at = stack.now + timedelta(seconds=step + 1)
                    for builder, writer in ((live, writers[step % 2]), (future, writers[(step + 1) % 2])):
                        await sample.write(
                            writer, builder.poll(polled_at, holds=holds, win_pool=900_000, place_pool=300_000)
                        )
                seen = await asyncio.wait_for(asyncio.gather(*readers), timeout=60)
        finally:
            await channel.close()
            await second_gateway.stop()
            await second_writer.stop()

    everything = [seen[0], seen[2]]
    live_only = [seen[1], seen[3]]
    for events in everything:
        ids = [event.id for event in events if event.id is not None]
        assert len(ids) == len(set(ids)) == 6 and ids == sorted(ids)
        assert {event.data["race_id"] for event in events} == {live.race.race_id, future.race.race_id}
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
