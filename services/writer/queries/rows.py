"""Shared pieces of the read queries: id checks, one-row reads, SELECT lists and row conversion."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

from psycopg.rows import dict_row

from services.common.proto.raceday.v1 import race_pb2
from services.writer.convert import set_fields
from services.writer.db import Database
from services.writer.errors import InvalidArgumentError, NotFoundError


def require_id(value: str, name: str) -> None:
    """INVALID_ARGUMENT when a required id is empty."""
    if not value:
        raise InvalidArgumentError(f"{name} is required")


async def fetch_one(db: Database, query: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """One row as a dict from the read pool, or None."""
    async with db.read_connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query, params)
        return await cur.fetchone()


async def fetch_found(db: Database, query: str, params: dict[str, Any], not_found: str) -> dict[str, Any]:
    """One row as a dict from the read pool; NotFoundError(`not_found`) when there is none."""
    row = await fetch_one(db, query, params)
    if row is None:
        raise NotFoundError(not_found)
    return row


MEETING_SELECT: Final = """
SELECT m.meeting_id, m.meeting_name, m.date, m.country, m.state, m.category, m.category_name,
       m.track_condition, m.weather, m.tote_status, m.tote_meeting_number, m.status, m.race_type,
       m.created_at, m.updated_at, s.race_count, s.first_race_time
FROM meetings m
CROSS JOIN LATERAL (
    SELECT count(*)::int AS race_count, min(r.start_time) AS first_race_time
    FROM races r WHERE r.meeting_id = m.meeting_id
) AS s
"""

# runner_count: non-scratched entrants stored, or field_size while none are stored (rest-api §2).
RACE_SELECT: Final = """
SELECT r.race_id, r.meeting_id, r.race_number, r.name, r.status, r.status_raw, r.start_time,
       r.actual_start, r.race_date_nz, r.start_time_nz, r.tote_start_time, r.type,
       COALESCE(r.country, m.country) AS country, r.state, r.distance, r.track_condition,
       r.track_surface, r.track_direction, r.weather, r.rail_position, r.race_class, r.entrant_count,
       r.field_size, r.positions_paid, r.total_prize_money, r.silk_url, r.silk_base_url,
       r.video_channels, r.protest, r.protest_reason, r.created_at, r.updated_at,
       m.meeting_name, m.race_type,
       CASE WHEN c.stored > 0 THEN c.running ELSE COALESCE(r.field_size, 0) END AS runner_count,
       COALESCE(rr.results_available, false) AS results_available
FROM races r
JOIN meetings m ON m.meeting_id = r.meeting_id
LEFT JOIN race_results rr ON rr.race_id = r.race_id
CROSS JOIN LATERAL (
    SELECT count(*)::int AS stored, (count(*) FILTER (WHERE NOT e.is_scratched))::int AS running
    FROM entrants e WHERE e.race_id = r.race_id
) AS c
"""


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, date) and not isinstance(v, datetime) else v)
        for k, v in values.items()
    }


def meeting_from_row(row: dict[str, Any]) -> race_pb2.Meeting:
    """A Meeting message from a MEETING_SELECT row."""
    meeting = race_pb2.Meeting()
    set_fields(meeting, _plain(row))
    return meeting


def race_from_row(row: dict[str, Any]) -> race_pb2.Race:
    """A Race message from a RACE_SELECT row."""
    values = _plain(row)
    channels = values.pop("video_channels")
    race = race_pb2.Race()
    set_fields(race, values)
    if isinstance(channels, list):
        race.video_channels.extend(str(c) for c in channels)
    return race
