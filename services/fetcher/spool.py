"""The outage spool: polls the TAB answered but the writer could not commit, kept on local disk.

A poll is spooled with what its transform needs later: the payload exactly as received, its
content encoding and its poll time. Each race's polls form a queue in poll-time order; while a
race has spooled polls its new polls join the queue, so they are written in order, after the
ones before them (services/fetcher/catchup.py drains it). Files survive a fetcher restart: the
next process picks them up. The spool is bounded in bytes and in age; past either bound the
oldest polls are dropped first and counted.

One file per poll, `<dir>/<race>/<polled_at_ms>.poll`: a JSON header line, then the payload.
A file is written to a temporary name, flushed to disk and renamed, so a crash never leaves
a half-written poll under a real name.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from prometheus_client import Counter, Gauge

from services.common.logs import log_event

logger = logging.getLogger(__name__)

SUFFIX: Final = ".poll"

SPOOLED = Counter("raceday_spool_polls_total", "Polls spooled because they could not be committed")
CAUGHT_UP = Counter("raceday_spool_caught_up_total", "Spooled polls written once storage was back")
DROPPED = Counter(
    "raceday_spool_dropped_total",
    "Spooled polls dropped: bytes or age bound reached, or a payload the transformer refuses",
    ["reason"],
)
for _reason in ("bytes", "age", "invalid"):
    DROPPED.labels(_reason)
DEPTH = Gauge("raceday_spool_depth", "Polls waiting in the spool")
SPOOL_BYTES = Gauge("raceday_spool_bytes", "Bytes of payload waiting in the spool")
OLDEST_POLL_MS = Gauge(
    "raceday_spool_oldest_poll_ms", "Poll time of the oldest spooled poll (epoch ms; 0: empty)"
)


@dataclass(frozen=True, slots=True)
class SpooledPoll:
    """One poll waiting to be committed."""

    race_id: str
    polled_at_ms: int
    encoding: str
    path: Path
    size: int
    # What the payload showed, so a restarted fetcher can keep polling the race at its cadence
    # before storage can tell it which races to poll.
    status: str = "unknown"
    start_time_ms: int | None = None

    def payload(self) -> bytes:
        """The payload as received from the TAB."""
        with self.path.open("rb") as handle:
            handle.readline()
            return handle.read()


def _race_dir_name(race_id: str) -> str:
    # Race ids are upstream text: hex keeps any of them a safe, reversible file name.
    return race_id.encode().hex()


class PollSpool:
    """The spooled polls of one fetcher, by race, in poll-time order."""

    def __init__(self, directory: Path, *, max_bytes: int, max_age_ms: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_age_ms = max_age_ms
        self._queues: dict[str, list[SpooledPoll]] = {}
        self._bytes = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._load()

    # --- reading ---------------------------------------------------------------------------------

    def holds(self, race_id: str) -> bool:
        """True while the race has polls waiting: its new polls must queue behind them."""
        return race_id in self._queues

    def races(self) -> list[str]:
        """Races with waiting polls, the one with the oldest poll first."""
        return sorted(self._queues, key=lambda race: self._queues[race][0].polled_at_ms)

    def first(self, race_id: str) -> SpooledPoll | None:
        """The race's oldest waiting poll."""
        queue = self._queues.get(race_id)
        return queue[0] if queue else None

    def latest(self, race_id: str) -> SpooledPoll | None:
        """The race's newest waiting poll (what the race looked like last)."""
        queue = self._queues.get(race_id)
        return queue[-1] if queue else None

    @property
    def depth(self) -> int:
        """Polls waiting."""
        return sum(len(queue) for queue in self._queues.values())

    @property
    def size_bytes(self) -> int:
        """Payload bytes waiting."""
        return self._bytes

    def oldest_ms(self) -> int | None:
        """Poll time of the oldest waiting poll."""
        return min((queue[0].polled_at_ms for queue in self._queues.values()), default=None)

    def _all(self) -> Iterator[SpooledPoll]:
        for queue in self._queues.values():
            yield from queue

    # --- writing (blocking file I/O: call from a worker thread) ----------------------------------

    def add(self, poll: SpooledPoll, payload: bytes, now_ms: int) -> SpooledPoll:
        """Spool one poll durably (`poll.path` and `size` are filled in here); then enforce the
        bounds (the new poll may itself be dropped)."""
        race_dir = self.directory / _race_dir_name(poll.race_id)
        race_dir.mkdir(exist_ok=True)
        path = race_dir / f"{poll.polled_at_ms:016d}{SUFFIX}"
        header = json.dumps(
            {
                "race_id": poll.race_id,
                "polled_at_ms": poll.polled_at_ms,
                "encoding": poll.encoding,
                "status": poll.status,
                "start_time_ms": poll.start_time_ms,
            }
        )
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            handle.write(header.encode() + b"\n")
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
        entry = dataclasses.replace(poll, path=path, size=len(payload))
        queue = self._queues.setdefault(entry.race_id, [])
        queue.append(entry)
        queue.sort(key=lambda poll: poll.polled_at_ms)
        self._bytes += entry.size
        SPOOLED.inc()
        self.enforce_bounds(now_ms)
        return entry

    def remove(self, entry: SpooledPoll) -> None:
        """The poll is committed (or given up): forget it."""
        queue = self._queues.get(entry.race_id)
        if not queue or entry not in queue:
            return
        queue.remove(entry)
        if not queue:
            del self._queues[entry.race_id]
        self._bytes -= entry.size
        entry.path.unlink(missing_ok=True)
        self._gauges()

    def drop(self, entry: SpooledPoll, reason: str) -> None:
        """Give a poll up for `reason` (counted and logged)."""
        self.remove(entry)
        DROPPED.labels(reason).inc()
        log_event(
            logger,
            "spool_dropped",
            logging.WARNING,
            race_id=entry.race_id,
            polled_at_ms=entry.polled_at_ms,
            reason=reason,
        )

    def enforce_bounds(self, now_ms: int) -> None:
        """Drop the oldest polls while the spool is too old or too big."""
        for entry in sorted(self._all(), key=lambda poll: poll.polled_at_ms):
            if now_ms - entry.polled_at_ms > self.max_age_ms:
                self.drop(entry, "age")
            elif self._bytes > self.max_bytes:
                self.drop(entry, "bytes")
            else:
                break
        self._gauges()

    # --- start-up --------------------------------------------------------------------------------

    def _load(self) -> None:
        for race_dir in sorted(self.directory.iterdir()):
            if not race_dir.is_dir():
                continue
            for path in sorted(race_dir.iterdir()):
                if path.suffix != SUFFIX:
                    path.unlink(missing_ok=True)  # a write a crash interrupted
                    continue
                entry = self._read(path)
                if entry is not None:
                    self._queues.setdefault(entry.race_id, []).append(entry)
                    self._bytes += entry.size
        if self._queues:
            log_event(logger, "spool_loaded", polls=self.depth, races=len(self._queues), bytes=self._bytes)
        self._gauges()

    def _read(self, path: Path) -> SpooledPoll | None:
        try:
            with path.open("rb") as handle:
                line = handle.readline()
            header = json.loads(line)
            size = path.stat().st_size - len(line)
            start = header.get("start_time_ms")
            return SpooledPoll(
                race_id=str(header["race_id"]),
                polled_at_ms=int(header["polled_at_ms"]),
                encoding=str(header["encoding"]),
                path=path,
                size=size,
                status=str(header.get("status", "unknown")),
                start_time_ms=None if start is None else int(start),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log_event(logger, "spool_file_unreadable", logging.ERROR, path=str(path), error=str(exc)[:200])
            return None

    def _gauges(self) -> None:
        DEPTH.set(self.depth)
        SPOOL_BYTES.set(self._bytes)
        OLDEST_POLL_MS.set(self.oldest_ms() or 0)
