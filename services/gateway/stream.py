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

Alerts (opt-in with `alerts=1`, so the stream of a client that does not ask is unchanged): when a
change created alerts, the hub reads the alerts stored since the last one it saw (one ListAlerts
per change) and sends each to the clients that want its race as an `alert` event, the document of
GET /api/alerts, without an event id (Last-Event-ID keeps resuming race changes; a client that
missed alerts reloads them from GET /api/alerts). A client that names a user (`user_id`) gets only
the alerts that user's enabled indicators classify, with that classification; the indicators are
read once per user and kept briefly (alert_feed.ConfigCache). Without a user every alert is sent,
with `indicator` null.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import grpc
from prometheus_client import Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from services.common.fanout import DroppingQueue
from services.common.logs import log_event
from services.common.nztime import format_nz, utc_now
from services.common.proto.raceday.v1 import query_pb2, writer_pb2, writer_pb2_grpc
from services.common.timestamps import ts_to_datetime
from services.gateway import alert_feed
from services.gateway.backend import Backend
from services.gateway.errors import ApiError
from services.gateway.params import USER_ID, Query

logger = logging.getLogger(__name__)

BUFFER: Final = 5000
RECONNECT_MAX_S: Final = 5.0
MAX_RACES: Final = 200
MAX_ID_CHARS: Final = 100
RACE_PARAMS: Final = ("race_id", "raceId", "race_ids", "raceIds")
ALERTS_PARAM: Final = "alerts"
_FLAGS: Final = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}
# The live push reads new alerts in pages of this size; after a long gap it sends at most
# ALERTS_MAX_BATCH of them (the newest): a client that reconnects reloads the rest anyway.
ALERTS_PAGE: Final = 500
ALERTS_MAX_BATCH: Final = 5000

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
            "comment every RACEDAY_STREAM_HEARTBEAT_S; a client that falls behind is dropped. With "
            "`alerts=1` the stream also carries `alert` events (see the parameter)."
        ),
        "parameters": [
            *(
                {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                for name in RACE_PARAMS
            ),
            {
                "name": ALERTS_PARAM,
                "in": "query",
                "required": False,
                "description": (
                    "1 adds `alert` events (the documents of GET /api/alerts, without an event id) for "
                    "the alerts each committed poll creates in the chosen races; with `user_id`, only "
                    "those the user's enabled indicators classify, with that classification (else every "
                    "alert, `indicator` null). Without it the stream carries no alerts."
                ),
                "schema": {"type": "string", "enum": ["1", "0", "true", "false"]},
            },
            *USER_ID.openapi(),
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
ALERTS_PUSHED = Counter("raceday_stream_alerts_pushed_total", "Alert events written to stream clients")
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


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert as one client sees it (classified for its user, if it named one)."""

    race_id: str
    data: str


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


class Client(DroppingQueue[Change | AlertEvent]):
    """One connected stream: its races (empty: all), whether it wants alerts (and whose), its queue."""

    def __init__(
        self, races: frozenset[str], maxsize: int, *, alerts: bool = False, user_id: str | None = None
    ) -> None:
        super().__init__(maxsize)
        self.races = races
        self.alerts = alerts
        self.user_id = user_id

    def wants(self, change: Change) -> bool:
        """The client asked for this race (or for every race)."""
        return not self.races or change.race_id in self.races

    def wants_alert(self, alert: query_pb2.RaceAlert) -> bool:
        """The client asked for alerts, and for this alert's race (or every race)."""
        return self.alerts and (not self.races or alert.race_id in self.races)

    def offer(self, item: Change | AlertEvent | None) -> bool:
        """Queue a change (counting the client dropped when its queue is full)."""
        dropped_now = super().offer(item)
        if dropped_now:
            DROPPED.inc()
        return dropped_now


class AlertSource:
    """The writer reads behind the live push of alerts: new alerts, and users' indicators."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.configs = alert_feed.ConfigCache(self._indicators)

    async def _indicators(self, user_id: str) -> alert_feed.Indicators:
        request = query_pb2.GetAlertConfigRequest(user_id=user_id)
        return list((await self._backend.call(self._backend.query.GetAlertConfig, request)).config.indicators)

    async def _page(self, request: query_pb2.ListAlertsRequest) -> list[query_pb2.RaceAlert]:
        return list((await self._backend.call(self._backend.query.ListAlerts, request)).alerts)

    async def newest_id(self) -> int:
        """The id of the newest stored alert (0 when there is none)."""
        newest = await self._page(query_pb2.ListAlertsRequest(limit=1))
        return newest[0].alert_id if newest else 0

    async def after(self, alert_id: int) -> list[query_pb2.RaceAlert]:
        """The alerts stored after `alert_id`, oldest first (the newest ALERTS_MAX_BATCH at most)."""
        found: list[query_pb2.RaceAlert] = []
        request = query_pb2.ListAlertsRequest(limit=ALERTS_PAGE, after_id=alert_id)
        while len(found) < ALERTS_MAX_BATCH:
            page = await self._page(request)
            found.extend(page)
            if len(page) < ALERTS_PAGE:
                break
            request.cursor = page[-1].alert_id
        found.reverse()
        return found


@dataclass
class ChangeHub:
    """Follows the writers' changes and serves them to the connected clients."""

    writer_channel: grpc.aio.Channel
    client_queue: int
    heartbeat_s: float
    # The reads behind `alert` events; None: the hub pushes no alerts.
    alerts: AlertSource | None = None
    buffer: deque[Change] = field(default_factory=lambda: deque(maxlen=BUFFER))
    clients: set[Client] = field(default_factory=set)
    # Set while the hub follows the writers; cleared (and clients reset) after a loss.
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    # Set by a change that created alerts; the alert task reads them once (changes that arrive
    # while it reads are covered by its next read).
    _alerts_due: asyncio.Event = field(default_factory=asyncio.Event)
    # The newest alert already pushed (or present when the hub subscribed); None: unknown.
    _last_alert_id: int | None = None
    _alert_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Follow the writers' changes (and push their alerts) in the background."""
        self._task = asyncio.create_task(self._follow())
        if self.alerts is not None:
            self._alert_task = asyncio.create_task(self._push_alerts())

    async def stop(self) -> None:
        """Stop following and end every client's stream."""
        for task in (self._task, self._alert_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for client in list(self.clients):
            client.offer(None)

    async def _follow(self) -> None:
        stub = writer_pb2_grpc.WriterServiceStub(self.writer_channel)
        delay = 0.1
        while True:
            # Before subscribing: alerts stored until now are not pushed (like the changes of a
            # loss, clients reload them), and any stored between this read and the subscription
            # are pushed with the next change that creates alerts rather than lost.
            await self.baseline_alerts()
            call = stub.WatchRaceChanges(writer_pb2.WatchRaceChangesRequest(), wait_for_ready=True)
            try:
                await call.initial_metadata()  # the writer took the subscription
                if self.alerts is not None and self._last_alert_id is None:
                    # The read before subscribing failed (the writer was away): only alerts stored
                    # in the moment since the subscription are taken as seen, not a whole change's.
                    await self.baseline_alerts()
                self._upstream(True)
                delay = 0.1
                async for message in call:
                    self.receive(message)
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

    def receive(self, message: writer_pb2.RaceChange) -> None:
        """Serve one change from the writers; one that created alerts wakes the alert task."""
        self.publish(_change(message))
        if message.alerts > 0 and self.alerts is not None:
            self._alerts_due.set()

    async def baseline_alerts(self) -> None:
        """Take the newest stored alert as seen (unknown when the writer cannot say)."""
        if self.alerts is None:
            return
        try:
            self._last_alert_id = await self.alerts.newest_id()
        except ApiError as exc:
            self._last_alert_id = None
            log_event(logger, "stream_alerts_baseline_failed", logging.WARNING, status=exc.status)

    async def _push_alerts(self) -> None:
        while True:
            await self._alerts_due.wait()
            self._alerts_due.clear()
            try:
                await self.push_new_alerts()
            except ApiError as exc:
                # The next change with alerts reads from the same point, so none is skipped.
                log_event(logger, "stream_alerts_failed", logging.WARNING, status=exc.status)

    async def push_new_alerts(self) -> int:
        """Read the alerts stored since the last one seen and queue each for the clients that want
        it, classified for each client's user; returns how many alerts were read."""
        source = self.alerts
        if source is None:
            return 0
        if self._last_alert_id is None:
            # The baseline failed: these alerts cannot be told from older ones; start from here.
            await self.baseline_alerts()
            return 0
        fresh = await source.after(self._last_alert_id)
        if not fresh:
            return 0
        self._last_alert_id = max(self._last_alert_id, fresh[-1].alert_id)
        users = {c.user_id for c in self.clients if c.alerts and c.user_id is not None}
        indicators: dict[str, alert_feed.Indicators] = {}
        for user in users:
            try:
                indicators[user] = await source.configs.get(user)
            except ApiError as exc:
                # Never send a user's clients alerts their own ranges might not hold.
                log_event(logger, "stream_alert_config_failed", logging.WARNING, status=exc.status)
        # Each alert is shaped once per user (and once for clients without one), then shared.
        documents: dict[tuple[int, str | None], str | None] = {}
        for alert in fresh:
            for client in list(self.clients):
                if not client.wants_alert(alert):
                    continue
                key = (alert.alert_id, client.user_id)
                if key not in documents:
                    documents[key] = _alert_data(alert, client.user_id, indicators)
                data = documents[key]
                if data is None:
                    continue
                client.offer(AlertEvent(alert.race_id, data))
                if client.dropped:
                    self.clients.discard(client)
        return len(fresh)

    def publish(self, change: Change) -> None:
        """Remember a change and hand it to every client that wants it."""
        self.buffer.append(change)
        for client in list(self.clients):
            if client.wants(change):
                client.offer(change)
                if client.dropped:
                    self.clients.discard(client)

    def connect(
        self,
        races: frozenset[str],
        last_event_id: int | None,
        *,
        alerts: bool = False,
        user_id: str | None = None,
    ) -> tuple[Client, list[Change], bool]:
        """A new client, the buffered changes it missed, and whether it missed more than those."""
        client = Client(races, self.client_queue, alerts=alerts, user_id=user_id)
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

    async def events(self, client: Client, missed: list[Change], reset: bool) -> AsyncGenerator[bytes, None]:
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
                if isinstance(change, AlertEvent):
                    ALERTS_PUSHED.inc()
                    yield f"event: alert\ndata: {change.data}\n\n".encode()
                    continue
                PUSH_LATENCY.observe(max(0.0, time.time() - change.committed_at))
                yield _event(change)
        finally:
            self.disconnect(client)


def _event(change: Change) -> bytes:
    return f"id: {change.id}\nevent: race\ndata: {change.data}\n\n".encode()


def _alert_data(
    alert: query_pb2.RaceAlert, user_id: str | None, indicators: dict[str, alert_feed.Indicators]
) -> str | None:
    """The alert's JSON for a client of `user_id`; None when that user does not see it."""
    indicator = None
    if user_id is not None:
        ranges = indicators.get(user_id)
        indicator = None if ranges is None else alert_feed.classify(ranges, alert.value)
        if indicator is None:
            return None
    return json.dumps(alert_feed.alert_document(alert, indicator), separators=(",", ":"), ensure_ascii=False)


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


def wants_alerts(request: Request) -> bool:
    """The `alerts` flag: 1/true/yes/on or 0/false/no/off (any case); absent or empty: no alerts."""
    value = Query(request.query_params).single(ALERTS_PARAM)
    if value is None:
        return False
    flag = _FLAGS.get(value.strip().lower())
    if flag is None:
        raise ApiError(400, "alerts must be 1 or 0", {"param": ALERTS_PARAM})
    return flag


def stream_handler(hub: ChangeHub) -> Callable[[Request], Awaitable[Response]]:
    """The route handler of GET /api/stream."""

    async def stream(request: Request) -> Response:
        races = requested_races(request)
        alerts = wants_alerts(request)
        # Read only with alerts: a stream without them stays as it was, whatever else it is sent.
        user_id = USER_ID.read(Query(request.query_params)) if alerts else None
        client, missed, reset = hub.connect(races, last_event_id(request), alerts=alerts, user_id=user_id)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            hub.events(client, missed, reset), media_type="text/event-stream", headers=headers
        )

    return stream
