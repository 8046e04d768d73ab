"""`GET /api/stream`: committed race writes pushed to the browser as Server-Sent Events.

One ChangeHub per gateway process follows the writers' WatchRaceChanges stream (reconnecting
after a loss) and fans each change out to the connected clients, filtered by race. It keeps the
last BUFFER changes so a client that reconnects with `Last-Event-ID` (EventSource does so by
itself) gets what it missed; when it missed more than that, or the hub itself lost the writers
for a while, the client is sent a `reset` event and refreshes by polling. Each client has a
bounded queue: a client that does not keep up is dropped (its stream ends; it reconnects and
resumes), never buffered without bound. An idle stream carries a comment line every heartbeat.

Events: `race` with the change as JSON (race_id, meeting_id, polled_at, generated_at,
committed_at, status, money_flow_rows, odds_rows, baseline; instants with the NZ offset) and the
change id as the event id; `reset` with no data worth reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import grpc
from prometheus_client import Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from services.common.fanout import DroppingQueue
from services.common.logs import log_event
from services.common.nztime import format_nz, utc_now
from services.common.proto.raceday.v1 import writer_pb2, writer_pb2_grpc
from services.common.timestamps import ts_to_datetime
from services.gateway.errors import ApiError

logger = logging.getLogger(__name__)

BUFFER: Final = 5000
RECONNECT_MAX_S: Final = 5.0
MAX_RACES: Final = 200
MAX_ID_CHARS: Final = 100
RACE_PARAMS: Final = ("race_id", "raceId", "race_ids", "raceIds")

# The OpenAPI description of GET /api/stream (a stream, so not one of the JSON operations).
STREAM_OPERATION: Final = {
    "get": {
        "summary": "Committed race writes as Server-Sent Events (the live push)",
        "tags": ["Live"],
        "description": (
            "A text/event-stream of `race` events, one per committed poll, with the change id as the "
            "event id; `race_id`/`race_ids` (comma lists, camelCase too) choose races, none means all. "
            "Resume with the Last-Event-ID header (EventSource sends it by itself); a client that missed "
            "more than the gateway keeps gets a `reset` event and should refresh. Idle streams carry a "
            "comment every RACEDAY_STREAM_HEARTBEAT_S; a client that falls behind is dropped."
        ),
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in RACE_PARAMS
        ],
        "responses": {
            "200": {
                "description": "The event stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            "400": {
                "description": "Bad parameters",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
}

PUSH_LATENCY = Histogram(
    "raceday_push_latency_seconds",
    "Commit of a race write to its event being handed to a stream client",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CLIENTS = Gauge("raceday_stream_clients", "Server-Sent Event clients connected")
DROPPED = Counter("raceday_stream_dropped_total", "Stream clients dropped for falling behind")
UPSTREAM = Gauge("raceday_stream_upstream_connected", "1 while the gateway follows the writers' changes")


@dataclass(frozen=True, slots=True)
class Change:
    """One committed write as the clients see it."""

    id: int
    race_id: str
    data: str
    committed_at: float


def _change(message: writer_pb2.RaceChange) -> Change:
    committed = ts_to_datetime(message.committed_at)
    document = {
        "race_id": message.race_id,
        "meeting_id": message.meeting_id,
        "polled_at": format_nz(ts_to_datetime(message.polled_at)),
        "generated_at": (
            format_nz(ts_to_datetime(message.generated_at)) if message.HasField("generated_at") else None
        ),
        "committed_at": format_nz(committed),
        "status": message.status,
        "money_flow_rows": message.money_flow_rows,
        "odds_rows": message.odds_rows,
        "baseline": message.baseline,
    }
    return Change(
        message.id, message.race_id, json.dumps(document, separators=(",", ":")), committed.timestamp()
    )


class Client(DroppingQueue[Change]):
    """One connected stream: its races (empty: all) and its queue."""

    def __init__(self, races: frozenset[str], maxsize: int) -> None:
        super().__init__(maxsize)
        self.races = races

    def wants(self, change: Change) -> bool:
        """The client asked for this race (or for every race)."""
        return not self.races or change.race_id in self.races

    def offer(self, item: Change | None) -> bool:
        """Queue a change (counting the client dropped when its queue is full)."""
        dropped_now = super().offer(item)
        if dropped_now:
            DROPPED.inc()
        return dropped_now


@dataclass
class ChangeHub:
    """Follows the writers' changes and serves them to the connected clients."""

    writer_channel: grpc.aio.Channel
    client_queue: int
    heartbeat_s: float
    buffer: deque[Change] = field(default_factory=lambda: deque(maxlen=BUFFER))
    clients: set[Client] = field(default_factory=set)
    # Set while the hub follows the writers; cleared (and clients reset) after a loss.
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Follow the writers' changes in the background."""
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        """Stop following and end every client's stream."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in list(self.clients):
            client.offer(None)

    async def _follow(self) -> None:
        stub = writer_pb2_grpc.WriterServiceStub(self.writer_channel)
        delay = 0.1
        while True:
            call = stub.WatchRaceChanges(writer_pb2.WatchRaceChangesRequest(), wait_for_ready=True)
            try:
                await call.initial_metadata()  # the writer took the subscription
                self._upstream(True)
                delay = 0.1
                async for message in call:
                    self.publish(_change(message))
            except grpc.aio.AioRpcError as exc:
                log_event(
                    logger, "stream_upstream_lost", logging.WARNING, code=exc.code().name, retry_in_s=delay
                )
            finally:
                call.cancel()
                self._upstream(False)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    def _upstream(self, connected: bool) -> None:
        UPSTREAM.set(1 if connected else 0)
        if connected:
            self.connected.set()
            return
        if self.connected.is_set():
            # Changes committed while the hub is away are not replayed: tell every client to refresh.
            self.connected.clear()
            self.buffer.clear()
            for client in list(self.clients):
                client.offer(None)

    def publish(self, change: Change) -> None:
        """Remember a change and hand it to every client that wants it."""
        self.buffer.append(change)
        for client in list(self.clients):
            if client.wants(change):
                client.offer(change)
                if client.dropped:
                    self.clients.discard(client)

    def connect(self, races: frozenset[str], last_event_id: int | None) -> tuple[Client, list[Change], bool]:
        """A new client, the buffered changes it missed, and whether it missed more than those."""
        client = Client(races, self.client_queue)
        missed: list[Change] = []
        reset = False
        if last_event_id is not None:
            oldest = self.buffer[0].id if self.buffer else None
            reset = oldest is None or oldest > last_event_id + 1
            missed = [c for c in self.buffer if c.id > last_event_id and client.wants(c)]
        self.clients.add(client)
        CLIENTS.set(len(self.clients))
        return client, missed, reset

    def disconnect(self, client: Client) -> None:
        """Forget a client whose stream ended."""
        self.clients.discard(client)
        CLIENTS.set(len(self.clients))

    async def events(self, client: Client, missed: list[Change], reset: bool) -> AsyncIterator[bytes]:
        """The SSE byte stream of one client until it is dropped or the hub stops."""
        try:
            yield b"retry: 3000\n\n"
            if reset:
                yield _reset()
            for earlier in missed:
                yield _event(earlier)
            while True:
                try:
                    async with asyncio.timeout(self.heartbeat_s):
                        change = await client.queue.get()
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if change is None or client.dropped:
                    if change is None and not client.dropped:
                        yield _reset()
                    return
                PUSH_LATENCY.observe(max(0.0, time.time() - change.committed_at))
                yield _event(change)
        finally:
            self.disconnect(client)


def _event(change: Change) -> bytes:
    return f"id: {change.id}\nevent: race\ndata: {change.data}\n\n".encode()


def _reset() -> bytes:
    return f"event: reset\ndata: {json.dumps({'at': format_nz(utc_now())})}\n\n".encode()


def requested_races(request: Request) -> frozenset[str]:
    """The races a client asked for (`race_id`, `race_ids`, camelCase too; comma lists); empty: all."""
    races: set[str] = set()
    for name in RACE_PARAMS:
        for value in request.query_params.getlist(name):
            races.update(part.strip() for part in value.split(",") if part.strip())
    if len(races) > MAX_RACES:
        raise ApiError(400, f"At most {MAX_RACES} races per stream")
    if any(len(race) > MAX_ID_CHARS for race in races):
        raise ApiError(400, "race_id is too long")
    return frozenset(races)


def last_event_id(request: Request) -> int | None:
    """The id the client saw last (the Last-Event-ID header, or `last_event_id`)."""
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "Last-Event-ID must be an event id") from None


def stream_handler(hub: ChangeHub) -> Callable[[Request], Awaitable[Response]]:
    """The route handler of GET /api/stream."""

    async def stream(request: Request) -> Response:
        races = requested_races(request)
        client, missed, reset = hub.connect(races, last_event_id(request))
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            hub.events(client, missed, reset), media_type="text/event-stream", headers=headers
        )

    return stream
