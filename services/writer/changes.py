"""The live change feed: every committed race write, as PostgreSQL announces it.

raceday_write_poll announces each write on the channel `raceday_changes` (pg_notify, delivered
at commit to every listening session). Each writer process listens on one dedicated connection
and fans the announcements out to its WatchRaceChanges streams, so every gateway connected to
any writer replica sees every write of every replica, once, in commit order. A subscriber
that does not keep up is dropped (its stream ends) rather than buffered without bound; it
reconnects and resumes from the gateway's own buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

import psycopg
from prometheus_client import Gauge

from services.common.fanout import DroppingQueue
from services.common.logs import log_event
from services.common.proto.raceday.v1 import writer_pb2
from services.common.timestamps import datetime_to_ts
from services.writer.db import Database, connect

logger = logging.getLogger(__name__)

CHANNEL: Final = "raceday_changes"
SUBSCRIBER_QUEUE: Final = 1024
RECONNECT_MAX_S: Final = 5.0

SUBSCRIBERS = Gauge("raceday_change_subscribers", "WatchRaceChanges streams open on this writer")


def change_from_notification(payload: str) -> writer_pb2.RaceChange:
    """A RaceChange from the JSON raceday_write_poll announces."""
    data: dict[str, Any] = json.loads(payload)
    change = writer_pb2.RaceChange(
        id=int(data["id"]),
        race_id=str(data["race_id"]),
        meeting_id=str(data["meeting_id"]),
        status=str(data["status"]),
        money_flow_rows=int(data["money_flow_rows"]),
        odds_rows=int(data["odds_rows"]),
        baseline=bool(data["baseline"]),
        # Announcements made by the function of 0002 (before migration 0004) have no count.
        alerts=int(data.get("alerts", 0)),
    )
    datetime_to_ts(datetime.fromisoformat(data["polled_at"]), change.polled_at)
    datetime_to_ts(datetime.fromisoformat(data["committed_at"]), change.committed_at)
    if data.get("generated_at"):
        datetime_to_ts(datetime.fromisoformat(data["generated_at"]), change.generated_at)
    return change


class Subscription(DroppingQueue[writer_pb2.RaceChange]):
    """One stream's queue of changes; `dropped` once it fell too far behind."""

    def __init__(self) -> None:
        super().__init__(SUBSCRIBER_QUEUE)

    async def __aiter__(self) -> AsyncIterator[writer_pb2.RaceChange]:
        while True:
            change = await self.queue.get()
            if change is None or self.dropped:
                return
            yield change


class ChangeFeed:
    """LISTENs on its own connection (reconnecting after a loss) and feeds the subscribers."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        # Set while LISTEN is in effect (announcements from then on are received).
        self.listening = asyncio.Event()
        # Set once a stream has subscribed.
        self.subscribed = asyncio.Event()

    @property
    def subscribers(self) -> int:
        """Streams open now."""
        return len(self._subscribers)

    def start(self) -> None:
        """Start listening (after the database is open)."""
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        """Stop listening and end every stream."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for subscription in list(self._subscribers):
            subscription.offer(None)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """A subscription for the duration of one stream."""
        subscription = Subscription()
        self._subscribers.add(subscription)
        SUBSCRIBERS.set(len(self._subscribers))
        self.subscribed.set()
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
            SUBSCRIBERS.set(len(self._subscribers))

    def publish(self, change: writer_pb2.RaceChange) -> None:
        """Hand one change to every subscriber; a subscriber that is full is dropped."""
        for subscription in list(self._subscribers):
            subscription.offer(change)
            if subscription.dropped:
                self._subscribers.discard(subscription)
                log_event(logger, "change_subscriber_dropped", logging.WARNING, change_id=change.id)
        SUBSCRIBERS.set(len(self._subscribers))

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await connect(self._db.url, self._db.settings)
                try:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    log_event(logger, "change_feed_listening")
                    delay = 0.1
                    async for notification in conn.notifies():
                        self._deliver(notification.payload)
                finally:
                    self.listening.clear()
                    await conn.close()
            except psycopg.Error as exc:
                log_event(
                    logger, "change_feed_lost", logging.WARNING, error=type(exc).__name__, retry_in_s=delay
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    def _deliver(self, payload: str) -> None:
        try:
            change = change_from_notification(payload)
        except (ValueError, KeyError, TypeError) as exc:
            log_event(logger, "change_unreadable", logging.ERROR, error=str(exc)[:200])
            return
        self.publish(change)
