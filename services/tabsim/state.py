"""The simulator's mutable state: clock, scenario, fault knobs, plunges and the request log."""

from __future__ import annotations

import random
import zlib
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from services.common.config import ConfigError
from services.tabsim.archive_day import ArchivedDay
from services.tabsim.clock import NS_PER_S, SimClock
from services.tabsim.config import TabSimConfig
from services.tabsim.event import EventRenderer
from services.tabsim.faults import Faults
from services.tabsim.plunges import Plunge, PlungeRequest, merged, resolve, with_plunges
from services.tabsim.scenario import Day, ScenarioConfig, build_day

# Request headers the log keeps (so tests can prove identification is sent verbatim).
LOGGED_HEADERS = ("from", "x-partner", "x-partner-id", "user-agent", "accept", "accept-encoding")


@dataclass(slots=True)
class LoggedRequest:
    """One request as received, and what the simulator answered."""

    seq: int
    method: str
    path: str
    query: str
    route: str
    race_id: str | None
    headers: dict[str, str | None]
    received_at_ns: int
    sim_time_ns: int
    status: int = 0
    fault: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON for the admin API."""
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "route": self.route,
            "race_id": self.race_id,
            "headers": self.headers,
            "received_at_ms": self.received_at_ns // 1_000_000,
            "sim_time_ms": self.sim_time_ns // 1_000_000,
            "status": self.status,
            "fault": self.fault,
        }


class RequestLog:
    """The last N requests plus counters per route and per (route, status)."""

    def __init__(self, size: int) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=size)
        self._seq = 0
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()

    def add(self, entry: LoggedRequest) -> None:
        """Append an entry (its status is filled in when the response is known)."""
        self._entries.append(entry)

    def next_seq(self) -> int:
        """A sequence number for the next entry."""
        self._seq += 1
        return self._seq

    def finish(self, entry: LoggedRequest, status: int, fault: str | None) -> None:
        """Record the response of an entry and count it."""
        entry.status = status
        entry.fault = fault
        self.by_route[entry.route] += 1
        self.by_status[f"{entry.route}:{status}"] += 1

    def clear(self) -> None:
        """Forget every entry and counter."""
        self._entries.clear()
        self.by_route.clear()
        self.by_status.clear()

    def to_json(self, limit: int | None = None, route: str | None = None) -> dict[str, Any]:
        """The log as JSON: counters and the latest entries (oldest first)."""
        entries = [e for e in self._entries if route is None or e.route == route]
        if limit is not None:
            entries = entries[-limit:] if limit > 0 else []
        return {
            "total": sum(self.by_route.values()),
            "counters": dict(self.by_route),
            "by_status": dict(self.by_status),
            "requests": [entry.to_json() for entry in entries],
        }


class SnapshotCache:
    """Event bodies as the TAB's cache holds them: each race's data is refreshed every
    `max_age_ns` of simulated time, at boundaries of its own (a fixed phase per race), and
    every request between two boundaries gets the body rendered at the last one, stamped
    with that boundary as its `generated_time`.
    """

    MAX_ENTRIES = 2000

    def __init__(self, max_age_ns: int) -> None:
        self.max_age_ns = max_age_ns
        self._bodies: dict[Hashable, tuple[int, bytes]] = {}
        self._gzipped: dict[int, tuple[bytes, bytes]] = {}

    def boundary(self, race_id: str, now_ns: int) -> int:
        """The latest refresh of this race's data at or before `now_ns`."""
        phase_ns = zlib.crc32(race_id.encode()) % self.max_age_ns
        return now_ns - (now_ns - phase_ns) % self.max_age_ns

    def get(self, key: Hashable, boundary_ns: int) -> bytes | None:
        """The body rendered for `key` at this refresh, if there is one."""
        entry = self._bodies.get(key)
        if entry is None or entry[0] != boundary_ns:
            return None
        return entry[1]

    def put(self, key: Hashable, boundary_ns: int, body: bytes) -> None:
        """Remember the body rendered at a refresh."""
        if len(self._bodies) >= self.MAX_ENTRIES:
            self.clear()
        self._bodies[key] = (boundary_ns, body)

    def gzipped(self, body: bytes, compress: Callable[[bytes], bytes]) -> bytes:
        """The gzip form of a snapshot body, compressed once."""
        entry = self._gzipped.get(id(body))
        if entry is None or entry[0] is not body:
            if len(self._gzipped) >= self.MAX_ENTRIES:
                self._gzipped.clear()
            entry = (body, compress(body))
            self._gzipped[id(body)] = entry
        return entry[1]

    def clear(self) -> None:
        """Forget every snapshot."""
        self._bodies.clear()
        self._gzipped.clear()


class SimState:
    """What the routes read and the admin API changes."""

    def __init__(self, config: TabSimConfig) -> None:
        self.config = config
        self.clock = SimClock(
            speed=config.speed,
            now_ns=config.now_ns,
            offset_s=config.offset_s,
            anchor_ns=config.clock_anchor_ns,
        )
        self.initial_faults = Faults.from_json(config.faults)
        self.faults = Faults.from_json(config.faults)
        self.fault_rng = random.Random(f"faults|{config.seed}")
        self.renderer = EventRenderer()
        self.snapshots = SnapshotCache(int(config.snapshot_s * NS_PER_S))
        self.log = RequestLog(config.request_log_size)
        self.seed = config.seed
        self.scenario = config.scenario
        self.day: Day | None = None
        # The day as build_day laid it out; `day` is this with the plunges bound into its races.
        self._laid_out: Day | None = None
        self.plunges: tuple[Plunge, ...] = ()
        self.archive: ArchivedDay | None = None
        if config.archive_url is not None and config.archive_date is not None:
            self.archive = ArchivedDay.load(config.archive_url, config.archive_date)
            if config.now_ns is None and not config.offset_s:
                # The archive's instants are the day's time: start at its first poll.
                self.clock.set_now_ns(self.archive.first_poll_ns)
        elif not config.replay:
            self.rebuild()
        if config.plunges:
            try:
                self.add_plunges(config.plunges)
            except ValueError as exc:
                # Bound only now that the day is laid out: still a bad start-up setting.
                raise ConfigError("--plunge/TABSIM_PLUNGES", str(exc)) from None
        self.initial_plunges = self.plunges

    @property
    def replay(self) -> bool:
        """True when serving the recorded responses verbatim."""
        return self.config.replay

    def rebuild(
        self, *, seed: int | None = None, scenario: ScenarioConfig | None = None, anchor_ns: int | None = None
    ) -> Day:
        """Lay out a new day around the current (or given) simulated instant."""
        if seed is not None:
            self.seed = seed
        if scenario is not None:
            self.scenario = scenario
        anchor = (anchor_ns if anchor_ns is not None else self.clock.now_ns()) // NS_PER_S
        self._laid_out = build_day(self.seed, self.scenario, anchor)
        self.renderer = EventRenderer()
        # Plunges survive a re-laid day only where their race and runner still exist (the same
        # seed and anchor give the same ids).
        self._set_plunges(self._still_bound(self.plunges))
        assert self.day is not None
        return self.day

    def add_plunges(self, documents: Iterable[object]) -> tuple[Plunge, ...]:
        """Check, bind and add plunges (admin API JSON objects); all or none. Returns the added."""
        if self._laid_out is None:
            raise ValueError("plunges need a synthetic day: not in replay or archive mode")
        now_s = self.clock.now_ns() / NS_PER_S
        added: list[Plunge] = []
        items = list(documents)
        for position, document in enumerate(items):
            try:
                added.append(resolve(PlungeRequest.from_json(document), self._laid_out, now_s))
            except ValueError as exc:
                raise ValueError(f"plunge {position + 1}: {exc}" if len(items) > 1 else str(exc)) from None
        self._set_plunges(merged(self.plunges, added))
        return tuple(added)

    def clear_plunges(self) -> None:
        """Remove every plunge: the day runs as laid out."""
        self._set_plunges(())

    def _still_bound(self, plunges: Iterable[Plunge]) -> tuple[Plunge, ...]:
        day = self._laid_out
        if day is None:
            return ()
        return tuple(
            plunge
            for plunge in plunges
            if plunge.race_id in day.races
            and any(r.entrant_id == plunge.entrant_id for r in day.races[plunge.race_id].runners)
        )

    def _set_plunges(self, plunges: tuple[Plunge, ...]) -> None:
        self.plunges = plunges
        self.day = with_plunges(self._laid_out, plunges) if self._laid_out is not None else None
        # Snapshots rendered before the change would serve the old money until their next refresh.
        self.snapshots.clear()

    def reset(self) -> None:
        """Faults and plunges back to their start-up settings and an empty request log."""
        self.faults = Faults.from_json(self.initial_faults.to_json())
        if self.plunges != self.initial_plunges:
            self._set_plunges(self._still_bound(self.initial_plunges))
        self.log.clear()
