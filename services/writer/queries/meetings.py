"""Meetings of a day (rest-api §2.2) and one meeting (§2.3)."""

from __future__ import annotations

from datetime import date
from typing import Final

from psycopg.rows import dict_row

from services.common.nztime import nz_today
from services.common.proto.raceday.v1 import race_pb2
from services.writer.db import Database
from services.writer.errors import InvalidArgumentError
from services.writer.queries.rows import MEETING_SELECT, fetch_found, meeting_from_row, require_id

_CATEGORY_ALIASES: Final = {
    "t": "T",
    "h": "H",
    "g": "G",
    "thoroughbred": "T",
    "harness": "H",
    "greyhound": "G",
}

LIST_MEETINGS_SQL: Final = (
    MEETING_SELECT
    + """
WHERE m.date = %(date)s
  AND (%(category)s::text IS NULL OR m.category = %(category)s)
  AND (%(country)s::text IS NULL OR upper(m.country) = upper(%(country)s))
ORDER BY s.first_race_time NULLS LAST, m.meeting_name, m.meeting_id
"""
)

GET_MEETING_SQL: Final = MEETING_SELECT + "WHERE m.meeting_id = %(meeting_id)s"


def parse_category(value: str | None) -> str | None:
    """T/H/G from a category or race type name (case-insensitive); None for no filter."""
    if value is None or not value.strip():
        return None
    category = _CATEGORY_ALIASES.get(value.strip().lower())
    if category is None:
        raise InvalidArgumentError("category must be T, H, G, thoroughbred, harness or greyhound")
    return category


def parse_day(value: str) -> date:
    """A YYYY-MM-DD date; empty means today's NZ date."""
    if not value.strip():
        return nz_today()
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidArgumentError("Invalid date") from None


async def list_meetings(
    db: Database, day: str, category: str | None, country: str | None
) -> list[race_pb2.Meeting]:
    """Meetings of the date, by first race time (nulls last) then name."""
    params = {
        "date": parse_day(day),
        "category": parse_category(category),
        "country": country.strip() if country and country.strip() else None,
    }
    async with db.read_connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(LIST_MEETINGS_SQL, params)
        rows = await cur.fetchall()
    return [meeting_from_row(row) for row in rows]


async def get_meeting(db: Database, meeting_id: str) -> race_pb2.Meeting:
    """One meeting with its race count and first race time; NotFoundError when unknown."""
    require_id(meeting_id, "meeting_id")
    return meeting_from_row(
        await fetch_found(db, GET_MEETING_SQL, {"meeting_id": meeting_id}, "Meeting not found")
    )
