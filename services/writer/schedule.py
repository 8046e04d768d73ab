"""The meetings list side of storage: UpsertMeetings (baseline, refresh) and ListSchedulableRaces.

UpsertMeetings writes meetings and race summaries, one transaction per meeting, never
entrants or time series, and never moves a race's status backwards (scheduling §6).
ListSchedulableRaces is the storage half of the scheduler's race selection (scheduling §2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from services.common.logs import log_event
from services.common.proto.raceday.v1 import writer_pb2
from services.writer import metrics, statements
from services.writer.db import Database
from services.writer.entities import meeting_params, race_params
from services.writer.errors import InvalidArgumentError
from services.writer.upsert import chunks, dedupe

logger = logging.getLogger(__name__)

SCHEDULABLE_SQL: Final = """
SELECT r.race_id, r.meeting_id, m.meeting_name, r.race_number, r.status, r.start_time
FROM races r
JOIN meetings m ON m.meeting_id = r.meeting_id
WHERE r.start_time >= %(lower)s AND r.start_time <= %(upper)s
  AND r.status NOT IN ('final', 'abandoned')
ORDER BY r.start_time, r.race_id
"""


@dataclass(frozen=True, slots=True)
class SchedulableRace:
    """A race the scheduler may poll."""

    race_id: str
    meeting_id: str
    meeting_name: str
    race_number: int
    status: str
    start_time: datetime


@dataclass(slots=True)
class _MeetingBatch:
    meeting: dict[str, Any]
    races_with_protest: list[dict[str, Any]]
    races_without_protest: list[dict[str, Any]]


def _prepare(request: writer_pb2.UpsertMeetingsRequest) -> list[_MeetingBatch]:
    batches: list[_MeetingBatch] = []
    for index, item in enumerate(request.meetings):
        try:
            meeting = meeting_params(item.meeting)
            with_protest: list[dict[str, Any]] = []
            without_protest: list[dict[str, Any]] = []
            for race in item.races:
                if not race.race_id:
                    raise InvalidArgumentError("race.race_id is required")
                if race.meeting_id not in ("", meeting["meeting_id"]):
                    raise InvalidArgumentError("race.meeting_id differs from its meeting")
                summary = type(race)()
                summary.CopyFrom(race)
                summary.meeting_id = meeting["meeting_id"]
                params, has_protest = race_params(summary, race.race_id)
                (with_protest if has_protest else without_protest).append(params)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"meetings[{index}]: {exc}") from None
        batches.append(
            _MeetingBatch(
                meeting=meeting,
                races_with_protest=dedupe(with_protest, lambda r: r["race_id"], what="races"),
                races_without_protest=dedupe(without_protest, lambda r: r["race_id"], what="races"),
            )
        )
    return batches


async def upsert_meetings(db: Database, request: writer_pb2.UpsertMeetingsRequest) -> tuple[int, int]:
    """(meetings written, races written): rows inserted or changed; unchanged rows are skipped."""
    batches = _prepare(request)
    meetings_written = races_written = 0
    failures: list[str] = []
    async with db.write_connection() as conn:
        for batch in batches:
            meeting_id = batch.meeting["meeting_id"]
            race_cursors = []
            try:
                async with conn.transaction(), conn.pipeline():
                    await conn.execute(statements.SET_TIMEOUTS, statements.timeouts(db.settings))
                    stmt = statements.MEETINGS_FROM_LIST
                    meeting_cur = await conn.execute(stmt.query, stmt.params([batch.meeting]))
                    for rows, with_protest in (
                        (batch.races_with_protest, True),
                        (batch.races_without_protest, False),
                    ):
                        race_stmt = statements.race_upsert(with_protest)
                        for chunk in chunks(rows):
                            race_cursors.append(await conn.execute(race_stmt.query, race_stmt.params(chunk)))
                    ids = {"meeting_ids": [meeting_id]}
                    await conn.execute(statements.MEETING_STATUS_RECOMPUTE, ids)
            except Exception as exc:
                if conn.broken:
                    raise
                failures.append(meeting_id)
                log_event(
                    logger,
                    "meeting_upsert_failed",
                    logging.ERROR,
                    meeting_id=meeting_id,
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                )
                continue
            written_races = sum(max(c.rowcount, 0) for c in race_cursors)
            meetings_written += max(meeting_cur.rowcount, 0)
            races_written += written_races
    metrics.ROWS_WRITTEN.labels("meetings").inc(meetings_written)
    metrics.ROWS_WRITTEN.labels("races").inc(races_written)
    if failures:
        raise RuntimeError(
            f"{len(failures)} of {len(batches)} meetings failed to upsert: {', '.join(failures[:5])}"
        )
    return meetings_written, races_written


def schedulable_window(
    now: datetime, lookahead_minutes: int, post_start_max_minutes: int
) -> tuple[datetime, datetime]:
    """[now - POST_START_MAX, now + LOOKAHEAD], values taken as given (0 is a real bound: the evening
    backfill asks for started races only); negatives are refused."""
    if lookahead_minutes < 0 or post_start_max_minutes < 0:
        raise InvalidArgumentError("lookahead_minutes and post_start_max_minutes must not be negative")
    return now - timedelta(minutes=post_start_max_minutes), now + timedelta(minutes=lookahead_minutes)


async def list_schedulable_races(
    db: Database, now: datetime, lookahead_minutes: int, post_start_max_minutes: int
) -> list[SchedulableRace]:
    """Races not final/abandoned starting within [now - post_start_max, now + lookahead], by start."""
    lower, upper = schedulable_window(now, lookahead_minutes, post_start_max_minutes)
    async with db.read_connection() as conn:
        cur = await conn.execute(SCHEDULABLE_SQL, {"lower": lower, "upper": upper})
        rows = await cur.fetchall()
    return [SchedulableRace(*row) for row in rows]
