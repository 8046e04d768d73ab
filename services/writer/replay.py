"""Replay: the transform re-run over the raw-payload archive, in poll order, rebuilding the series.

Each archived poll goes through exactly what a live poll went through: the payload (as the
TAB meant it, uncompressed) and the poll time become a TransformRequest with the race's prior
state, the Rust core transforms it (`transform_encoded`, the transformer service's function),
and the response bytes are written by the writer's own write path (`write_race_update`), as a
baseline write when the poll was a baseline. The prior state is chained as the fetcher chains
it: the first poll of a race reads the committed state of the target database (as a fetcher
does after a restart), each written poll hands its update's state to the next poll of the
race, a poll found already written makes the next one read the state again, and a baseline
or a rejected payload leaves it as it was.

Races are independent: each race's polls are replayed strictly in poll order, several races at
a time (--concurrency).

Resumable: a poll whose identity (race_id, polled_at) is already in the target's race_polls is
skipped (the write path would refuse it anyway), so an interrupted replay run again continues
where it stopped.

Against the live database (`raceday replay` without --into) nothing is written there: the
archive is replayed into a scratch database on the same server, every series row of the
replayed races is compared with the live rows, the differences are reported and the scratch
database is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from psycopg import AsyncConnection, sql

from services.common.nztime import nz_day_bounds
from services.common.payload_archive import unpack
from services.common.proto.raceday.v1 import race_pb2, transformer_pb2
from services.common.timestamps import datetime_to_ts
from services.fetcher.pipeline import BASELINE_FIELD
from services.transformer.service import transform_encoded
from services.writer.archive import ArchivedPollRow, archived_payload, archived_polls
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from services.writer.state import get_race_state
from services.writer.write_path import EnsureDays, write_race_update

logger = logging.getLogger(__name__)

PAYLOAD_CACHE: Final = 256

# The series a replay rebuilds, each with the columns that order one entrant's rows.
SERIES: Final = {
    "money_flow_history": ("entrant_id",),
    "odds_history": ("entrant_id", "type"),
}
# Written-when columns and the surrogate row id (its order within an entrant is compared instead).
NOT_COMPARED: Final = frozenset({"id", "created_at"})


@dataclass(slots=True)
class ReplayReport:
    """What one replay did."""

    polls: int = 0
    written: int = 0
    baselines: int = 0
    skipped: int = 0
    rejected: int = 0
    seconds: float = 0.0
    race_ids: set[str] = field(default_factory=set)
    rejections: list[str] = field(default_factory=list)

    @property
    def polls_per_s(self) -> float:
        """Archived polls processed per second (skipped ones included)."""
        return self.polls / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int, int, float], None]


class _Payloads:
    """Archived payloads by address, uncompressed, with a small LRU (a race's unchanged snapshot)."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self._conn = conn
        self._cache: OrderedDict[tuple[date, bytes], bytes] = OrderedDict()

    async def get(self, poll: ArchivedPollRow) -> bytes:
        key = (poll.racing_day, poll.payload_hash)
        raw = self._cache.get(key)
        if raw is not None:
            self._cache.move_to_end(key)
            return raw
        frame, size = await archived_payload(self._conn, poll.racing_day, poll.payload_hash)
        raw = await asyncio.to_thread(unpack, frame, size, poll.payload_hash)
        self._cache[key] = raw
        if len(self._cache) > PAYLOAD_CACHE:
            self._cache.popitem(last=False)
        return raw


async def _written_polls(
    target: Database, race_ids: Sequence[str], lower: datetime, upper: datetime
) -> set[tuple[str, datetime]]:
    async with target.read_connection() as conn:
        cur = await conn.execute(
            "SELECT race_id, polled_at FROM race_polls "
            "WHERE race_id = ANY(%s) AND polled_at >= %s AND polled_at < %s",
            (list(race_ids), lower, upper),
        )
        return {(race_id, polled_at) for race_id, polled_at in await cur.fetchall()}


async def replay(
    source: AsyncConnection[Any],
    target: Database,
    first: date,
    last: date,
    *,
    progress: Progress | None = None,
    concurrency: int = 4,
) -> ReplayReport:
    """Replay the archived polls of NZ days first..last from `source` into `target` (see module doc).

    Each race's polls are replayed in poll order; up to `concurrency` races at a time (their
    series are independent; the transform releases the GIL and runs on worker threads).
    """
    started = time.perf_counter()
    report = ReplayReport()
    polls = await archived_polls(source, first, last)
    if not polls:
        return report
    maintainer = PartitionMaintainer(target)
    lower, upper = nz_day_bounds(first)[0], nz_day_bounds(last)[1]
    # Every row of a poll goes to the partitions of the poll's NZ day.
    days = sorted({poll.racing_day for poll in polls})
    await maintainer.ensure_days(days, reason="replay")
    report.race_ids = {poll.race_id for poll in polls}
    # Polls are routed by their own time; a race's polls may run past the last day's midnight.
    done = await _written_polls(target, sorted(report.race_ids), lower, upper + timedelta(days=1))
    payloads = _Payloads(source)
    states: dict[str, race_pb2.RaceState] = {}

    async def ensure(days: Iterable[date]) -> object:
        return await maintainer.ensure_days(days, reason="missing_partition")

    context = _Context(payloads, target, states, report, ensure)
    by_race: dict[str, list[ArchivedPollRow]] = {}
    for poll in polls:
        by_race.setdefault(poll.race_id, []).append(poll)
    gate = asyncio.Semaphore(concurrency)

    async def replay_race(race_polls: list[ArchivedPollRow]) -> None:
        # One race's polls strictly in order, each on the state the one before left.
        async with gate:
            for poll in race_polls:
                report.polls += 1
                if (poll.race_id, poll.polled_at) in done:
                    report.skipped += 1
                    states.pop(poll.race_id, None)
                else:
                    await _replay_one(poll, context)
                if progress is not None:
                    progress(report.polls, len(polls), time.perf_counter() - started)

    # Races in the order of their first poll; up to `concurrency` of them at a time.
    await asyncio.gather(*(replay_race(race_polls) for race_polls in by_race.values()))
    report.seconds = time.perf_counter() - started
    return report


@dataclass(frozen=True, slots=True)
class _Context:
    payloads: _Payloads
    target: Database
    # The prior state of each race for its next poll, as the fetcher caches it.
    states: dict[str, race_pb2.RaceState]
    report: ReplayReport
    ensure: EnsureDays


async def _replay_one(poll: ArchivedPollRow, ctx: _Context) -> None:
    payloads, target, states, report, ensure = ctx.payloads, ctx.target, ctx.states, ctx.report, ctx.ensure
    prior = states.get(poll.race_id)
    if prior is None:
        found, prior = await get_race_state(target, poll.race_id)
        if not found:
            prior = race_pb2.RaceState(race_id=poll.race_id)
    request = transformer_pb2.TransformRequest(
        payload=await payloads.get(poll),
        payload_encoding="identity",
        polled_at=datetime_to_ts(poll.polled_at),
        prior_state=prior,
    )
    try:
        transformed = await asyncio.to_thread(transform_encoded, request.SerializeToString())
    except ValueError as exc:
        # The live transform refused it too (INVALID_ARGUMENT): nothing was written, state unchanged.
        report.rejected += 1
        if len(report.rejections) < 20:
            report.rejections.append(f"{poll.race_id} {poll.polled_at.isoformat()}: {str(exc)[:200]}")
        return
    if poll.baseline:
        await write_race_update(target, transformed + BASELINE_FIELD, ensure_days=ensure)
        report.baselines += 1
        return
    result = await write_race_update(target, transformed, ensure_days=ensure)
    if result.written:
        states[poll.race_id] = transformer_pb2.TransformResponse.FromString(transformed).update.state
        report.written += 1
    else:
        states.pop(poll.race_id, None)
        report.skipped += 1


# --- comparison ----------------------------------------------------------------------------------


async def series_rows(
    conn: AsyncConnection[Any], table: str, race_ids: Sequence[str], lower: datetime, upper: datetime
) -> list[tuple[Any, ...]]:
    """Every row of a series table for the races in [lower, upper), as comparable tuples.

    Every column but the row id and created_at, plus the row's rank among its entrant's rows
    (by event_timestamp, then id): the order the "latest row" rules of storage §5 depend on.
    Sorted, so two databases' rows compare as lists.
    """
    partition = sql.SQL(", ").join(sql.Identifier(c) for c in SERIES[table])
    cur = await conn.execute(
        sql.SQL(
            "SELECT *, row_number() OVER (PARTITION BY {partition} ORDER BY event_timestamp, id) "
            "AS entrant_rank FROM {table} "
            "WHERE race_id = ANY(%s) AND event_timestamp >= %s AND event_timestamp < %s"
        ).format(partition=partition, table=sql.Identifier(table)),
        (list(race_ids), lower, upper),
    )
    names = [column.name for column in cur.description or ()]
    keep = [i for i, name in enumerate(names) if name not in NOT_COMPARED]
    rows = [tuple(row[i] for i in keep) for row in await cur.fetchall()]
    return sorted(rows, key=repr)


def series_columns(names: Sequence[str]) -> list[str]:
    """The compared column names of a series row, in series_rows' order."""
    return [name for name in names if name not in NOT_COMPARED] + ["entrant_rank"]


async def series_differences(
    live: AsyncConnection[Any],
    replayed: AsyncConnection[Any],
    race_ids: Sequence[str],
    first: date,
    last: date,
    *,
    examples: int = 5,
) -> list[str]:
    """Differences between two databases' series rows of the races (empty when identical)."""
    lower = nz_day_bounds(first)[0]
    upper = nz_day_bounds(last)[1] + timedelta(days=1)
    lines: list[str] = []
    for table in SERIES:
        want = await series_rows(live, table, race_ids, lower, upper)
        got = await series_rows(replayed, table, race_ids, lower, upper)
        if want == got:
            continue
        only_live = sorted(set(want) - set(got), key=repr)
        only_replay = sorted(set(got) - set(want), key=repr)
        lines.append(
            f"{table}: {len(want)} live rows, {len(got)} replayed; {len(only_live)} only live, "
            f"{len(only_replay)} only replayed"
        )
        lines += [f"  live only:     {row!r}"[:400] for row in only_live[:examples]]
        lines += [f"  replayed only: {row!r}"[:400] for row in only_replay[:examples]]
    return lines


def print_progress(done: int, total: int, seconds: float) -> None:
    """A one-line progress bar on stderr (redrawn on a terminal, every 5% otherwise)."""
    step = max(1, total // 20)
    terminal = sys.stderr.isatty()
    if not terminal and done % step and done != total:
        return
    if terminal and done % 25 and done != total:
        return
    width = 30
    filled = width * done // total
    rate = done / seconds if seconds > 0 else 0.0
    line = f"replay [{'#' * filled}{'.' * (width - filled)}] {done}/{total} polls, {rate:,.0f} polls/s"
    end = "\r" if terminal and done != total else "\n"
    print(line, end=end, file=sys.stderr, flush=True)
