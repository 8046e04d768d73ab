"""Races: of a meeting (§2.4), one race (§2.5), navigation (§2.6), upcoming (§2.7), next scheduled (§2.8).

Races are ordered by the key (start_time, meeting_name, race_number, race_id) wherever
races of several meetings are listed, so races sharing a start time stay reachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from psycopg.rows import dict_row

from services.common.nztime import nz_day_bounds
from services.common.proto.raceday.v1 import race_pb2
from services.writer.db import Database
from services.writer.errors import NotFoundError
from services.writer.queries.rows import RACE_SELECT, fetch_found, fetch_one, race_from_row, require_id

UPCOMING_WINDOW_DEFAULT = 120
UPCOMING_WINDOW_MAX = 480
UPCOMING_LOOKBACK_MAX = 120
UPCOMING_LIMIT_DEFAULT = 50
UPCOMING_LIMIT_MAX = 100

MEETING_EXISTS_SQL: Final = "SELECT 1 FROM meetings WHERE meeting_id = %(meeting_id)s"
LIST_RACES_SQL: Final = RACE_SELECT + "WHERE r.meeting_id = %(meeting_id)s ORDER BY r.race_number, r.race_id"
GET_RACE_SQL: Final = RACE_SELECT + "WHERE r.race_id = %(race_id)s"
# One race with its latest stored poll: how fresh its data is.
# Built from constant fragments only (the id is a parameter).
GET_RACE_WITH_POLL_SQL: Final = (
    "SELECT one.*, p.polled_at AS last_polled_at, p.generated_at AS last_generated_at,"  # noqa: S608
    " p.committed_at AS last_committed_at FROM ("
    + GET_RACE_SQL
    + """) AS one
LEFT JOIN LATERAL (
    SELECT polled_at, generated_at, committed_at FROM race_polls
    WHERE race_polls.race_id = one.race_id ORDER BY polled_at DESC LIMIT 1
) AS p ON true
"""
)

# Neighbours within the race's NZ racing day; the start_time range lets races_start_time_idx
# drive the scan, the row comparison applies the full ordering key.
PREVIOUS_RACE_SQL: Final = (
    RACE_SELECT
    + """
WHERE r.race_date_nz = %(race_date_nz)s
  AND r.start_time >= %(day_start)s AND r.start_time <= %(start_time)s
  AND (r.start_time, m.meeting_name, r.race_number, r.race_id)
      < (%(start_time)s, %(meeting_name)s, %(race_number)s, %(race_id)s)
ORDER BY r.start_time DESC, m.meeting_name DESC, r.race_number DESC, r.race_id DESC
LIMIT 1
"""
)
NEXT_RACE_SQL: Final = (
    RACE_SELECT
    + """
WHERE r.race_date_nz = %(race_date_nz)s
  AND r.start_time >= %(start_time)s AND r.start_time < %(day_end)s
  AND (r.start_time, m.meeting_name, r.race_number, r.race_id)
      > (%(start_time)s, %(meeting_name)s, %(race_number)s, %(race_id)s)
ORDER BY r.start_time, m.meeting_name, r.race_number, r.race_id
LIMIT 1
"""
)
NEXT_SCHEDULED_SQL: Final = (
    RACE_SELECT
    + """
WHERE r.start_time > %(now)s AND r.status IN ('open', 'unknown')
ORDER BY r.start_time, m.meeting_name, r.race_number, r.race_id
LIMIT 1
"""
)
UPCOMING_SQL: Final = (
    RACE_SELECT
    + """
WHERE r.start_time > %(lower)s AND r.start_time <= %(upper)s
  AND r.status NOT IN ('final', 'abandoned')
ORDER BY r.start_time, m.meeting_name, r.race_number, r.race_id
LIMIT %(limit)s
"""
)


@dataclass(frozen=True, slots=True)
class Navigation:
    """Neighbours of a race and the next scheduled race."""

    previous_race: race_pb2.Race | None
    next_race: race_pb2.Race | None
    next_scheduled_race: race_pb2.Race | None


@dataclass(frozen=True, slots=True)
class Upcoming:
    """Upcoming races and the window they were selected from."""

    races: list[race_pb2.Race]
    lower_bound: datetime
    upper_bound: datetime
    now: datetime


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


async def list_races(db: Database, meeting_id: str) -> list[race_pb2.Race]:
    """Races of a meeting by race number; NotFoundError when the meeting is unknown."""
    require_id(meeting_id, "meeting_id")
    params = {"meeting_id": meeting_id}
    async with db.read_connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        async with conn.pipeline():
            exists = await conn.execute(MEETING_EXISTS_SQL, params)
            await cur.execute(LIST_RACES_SQL, params)
        if await exists.fetchone() is None:
            raise NotFoundError("Meeting not found")
        rows = await cur.fetchall()
    return [race_from_row(row) for row in rows]


async def get_race(db: Database, race_id: str) -> race_pb2.Race:
    """One race with its summary fields and its latest poll; NotFoundError when unknown."""
    require_id(race_id, "race_id")
    row = await fetch_found(db, GET_RACE_WITH_POLL_SQL, {"race_id": race_id}, "Race not found")
    return race_from_row(row)


async def get_navigation(db: Database, race_id: str, now: datetime) -> Navigation:
    """Previous and next race of the same NZ racing day, and the next scheduled race."""
    require_id(race_id, "race_id")
    race = await fetch_found(db, GET_RACE_SQL, {"race_id": race_id}, "Race not found")
    day_start, day_end = nz_day_bounds(race["race_date_nz"])
    params = {
        "race_id": race["race_id"],
        "race_date_nz": race["race_date_nz"],
        "start_time": race["start_time"],
        "meeting_name": race["meeting_name"],
        "race_number": race["race_number"],
        # A race's NZ date is its start's NZ date; a day of slack covers any upstream skew.
        "day_start": day_start - timedelta(days=1),
        "day_end": day_end + timedelta(days=1),
        "now": now,
    }
    async with db.read_connection() as conn:
        cursors = [conn.cursor(row_factory=dict_row) for _ in range(3)]
        async with conn.pipeline():
            await cursors[0].execute(PREVIOUS_RACE_SQL, params)
            await cursors[1].execute(NEXT_RACE_SQL, params)
            await cursors[2].execute(NEXT_SCHEDULED_SQL, params)
        found = [await cur.fetchone() for cur in cursors]
    previous, following, scheduled = (race_from_row(row) if row else None for row in found)
    return Navigation(previous_race=previous, next_race=following, next_scheduled_race=scheduled)


async def list_upcoming(
    db: Database, now: datetime, window_minutes: int, lookback_minutes: int, limit: int
) -> Upcoming:
    """Races with now - lookback < start <= now + window, not final/abandoned (ranges clamped)."""
    window = _clamp(window_minutes, 0, UPCOMING_WINDOW_MAX)
    lookback = _clamp(lookback_minutes, 0, UPCOMING_LOOKBACK_MAX)
    # limit 0 is proto3's "unset": the documented default applies.
    limit = UPCOMING_LIMIT_DEFAULT if limit == 0 else _clamp(limit, 1, UPCOMING_LIMIT_MAX)
    lower = now - timedelta(minutes=lookback)
    upper = now + timedelta(minutes=window)
    async with db.read_connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(UPCOMING_SQL, {"lower": lower, "upper": upper, "limit": limit})
        rows = await cur.fetchall()
    return Upcoming(races=[race_from_row(r) for r in rows], lower_bound=lower, upper_bound=upper, now=now)


async def get_next_scheduled(db: Database, now: datetime) -> race_pb2.Race | None:
    """The first race with start_time > now and status open or unknown, in navigation order."""
    row = await fetch_one(db, NEXT_SCHEDULED_SQL, {"now": now})
    return race_from_row(row) if row else None
