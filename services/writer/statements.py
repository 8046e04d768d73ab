"""The SQL of the meetings-list path (UpsertMeetings): meeting and race upserts, meeting status.

A race poll is written by one call of `raceday_write_poll` (services/writer/write_path.py and
migrations/0002_write_poll.sql).
"""

from __future__ import annotations

from functools import cache
from typing import Final

from services.writer.settings import WriterSettings
from services.writer.upsert import Col, Upsert, build_upsert

# Step 1 of every write transaction (storage §6.1): SET LOCAL of both timeouts.
SET_TIMEOUTS: Final = (
    "SELECT set_config('statement_timeout', %(statement)s, true), set_config('lock_timeout', %(lock)s, true)"
)


def timeouts(settings: WriterSettings) -> dict[str, str]:
    """Parameters of SET_TIMEOUTS."""
    return {"statement": str(settings.statement_timeout_ms), "lock": str(settings.lock_timeout_ms)}


# --- meetings ---------------------------------------------------------------------------------

MEETINGS_FROM_LIST: Final[Upsert] = build_upsert(
    "meetings",
    ("meeting_id",),
    (
        Col("meeting_id", "text"),
        Col("meeting_name", "text"),
        Col("date", "date"),
        Col("country", "text"),
        Col("state", "text", mode="keep"),
        Col("category", "text"),
        Col("category_name", "text", mode="keep"),
        Col("track_condition", "text", mode="keep"),
        Col("weather", "text", mode="keep"),
        Col("tote_status", "text", mode="keep"),
        Col("tote_meeting_number", "integer", mode="keep"),
    ),
)

# Meeting status from its races (storage §1.1); the function is shared with the race write
# (migrations/0002_write_poll.sql).
MEETING_STATUS_RECOMPUTE: Final = "SELECT raceday_recompute_meeting_status(%(meeting_ids)s)"

# --- races ----------------------------------------------------------------------------------

# From the meetings list a race's status only moves forward along open -> closed -> interim ->
# final; abandoned may replace any non-terminal status; terminal statuses stay (scheduling §6).
_STATUS_RANK = (
    "CASE {s} WHEN 'unknown' THEN 0 WHEN 'open' THEN 1 WHEN 'closed' THEN 2 "
    "WHEN 'interim' THEN 3 WHEN 'final' THEN 4 ELSE -1 END"
)
_FORWARD_STATUS = (
    "CASE WHEN t.status IN ('final', 'abandoned') THEN t.status "
    "WHEN EXCLUDED.status = 'abandoned' THEN 'abandoned' "
    f"WHEN {_STATUS_RANK.format(s='EXCLUDED.status')} > {_STATUS_RANK.format(s='t.status')} "
    "THEN EXCLUDED.status ELSE t.status END"
)
_FORWARD_STATUS_RAW = (
    f"CASE WHEN ({_FORWARD_STATUS}) IS DISTINCT FROM t.status "
    "THEN COALESCE(EXCLUDED.status_raw, t.status_raw) ELSE t.status_raw END"
)


@cache
def race_upsert(with_protest: bool) -> Upsert:
    """The race upsert from the meetings list; `protest` is only written when the list carried it."""
    columns = [
        Col("race_id", "text"),
        Col("meeting_id", "text"),
        Col("race_number", "integer"),
        Col("name", "text"),
        Col("status", "text", mode="custom", expr=_FORWARD_STATUS),
        Col("status_raw", "text", mode="custom", expr=_FORWARD_STATUS_RAW),
        Col("start_time", "timestamptz"),
        Col("actual_start", "timestamptz", mode="keep"),
        Col("race_date_nz", "date"),
        Col("start_time_nz", "text", mode="keep"),
        Col("tote_start_time", "text", mode="keep"),
        Col("type", "text", mode="keep"),
        Col("country", "text", mode="keep"),
        Col("state", "text", mode="keep"),
        Col("distance", "integer", mode="keep"),
        Col("track_condition", "text", mode="keep"),
        Col("track_surface", "text", mode="keep"),
        Col("track_direction", "text", mode="keep"),
        Col("weather", "text", mode="keep"),
        Col("rail_position", "text", mode="keep"),
        Col("race_class", "text", mode="keep"),
        Col("entrant_count", "integer", mode="keep"),
        Col("field_size", "integer", mode="keep"),
        Col("positions_paid", "integer", mode="keep"),
        Col("total_prize_money", "bigint", mode="keep"),
        Col("silk_url", "text", mode="keep"),
        Col("silk_base_url", "text", mode="keep"),
        Col("video_channels", "text", "jsonb", mode="keep"),
        Col("protest_reason", "text", mode="keep"),
    ]
    if with_protest:
        columns.append(Col("protest", "boolean"))
    return build_upsert("races", ("race_id",), columns)
