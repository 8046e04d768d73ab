"""Meeting and race columns of the meetings-list path (UpsertMeetings), checked.

A race poll's update is checked and rendered by the Rust core (raceday_core.write_document)
with the same rules and messages; tests/writer/test_entities.py holds the two to each other.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from raceday_core import CATEGORIES, RACE_STATUSES
from services.common.proto.raceday.v1 import race_pb2
from services.common.protofields import opt, opt_ts
from services.common.timestamps import ts_to_datetime
from services.writer.errors import InvalidArgumentError


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidArgumentError(message)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def _valid_date(text: str, what: str) -> str:
    """`text` when it is a valid date written exactly YYYY-MM-DD."""
    try:
        if _ISO_DATE.fullmatch(text) is None:
            raise ValueError(text)
        date.fromisoformat(text)
    except ValueError:
        raise InvalidArgumentError(f"{what} must be YYYY-MM-DD, got '{text[:20]}'") from None
    return text


def _json_text(text: str | None) -> str | None:
    return text if text else None


def race_params(race: race_pb2.Race, race_id: str) -> tuple[dict[str, Any], bool]:
    """Column values of a Race message (absent optionals are None) and whether it carries `protest`."""
    _require(race.meeting_id != "", "race.meeting_id is required")
    _require(race.name != "", "race.name is required")
    _require(race.status in RACE_STATUSES, f"race.status must be one of {', '.join(RACE_STATUSES)}")
    _require(race.race_number >= 0, "race.race_number must be >= 0")
    _require(race.HasField("start_time"), "race.start_time is required")
    type_ = opt(race, "type")
    _require(type_ is None or type_ in CATEGORIES, "race.type must be T, H or G")
    params: dict[str, Any] = {
        "race_id": race_id,
        "meeting_id": race.meeting_id,
        "race_number": race.race_number,
        "name": race.name,
        "status": race.status,
        "status_raw": opt(race, "status_raw"),
        "start_time": ts_to_datetime(race.start_time),
        "actual_start": opt_ts(race, "actual_start"),
        "race_date_nz": _valid_date(race.race_date_nz, "race.race_date_nz"),
        "start_time_nz": opt(race, "start_time_nz"),
        "tote_start_time": opt(race, "tote_start_time"),
        "type": type_,
        "country": opt(race, "country"),
        "state": opt(race, "state"),
        "distance": opt(race, "distance"),
        "track_condition": opt(race, "track_condition"),
        "track_surface": opt(race, "track_surface"),
        "track_direction": opt(race, "track_direction"),
        "weather": opt(race, "weather"),
        "rail_position": opt(race, "rail_position"),
        "race_class": opt(race, "race_class"),
        "entrant_count": opt(race, "entrant_count"),
        "field_size": opt(race, "field_size"),
        "positions_paid": opt(race, "positions_paid"),
        "total_prize_money": opt(race, "total_prize_money"),
        "silk_url": opt(race, "silk_url"),
        "silk_base_url": opt(race, "silk_base_url"),
        "video_channels": json.dumps(list(race.video_channels)) if race.video_channels else None,
        "protest_reason": opt(race, "protest_reason"),
        "protest": opt(race, "protest"),
    }
    return params, race.HasField("protest")


def meeting_params(meeting: race_pb2.Meeting) -> dict[str, Any]:
    """Column values of a Meeting message (absent optionals are None)."""
    _require(meeting.meeting_id != "", "meeting.meeting_id is required")
    _require(meeting.meeting_name != "", "meeting.meeting_name is required")
    _require(meeting.category in CATEGORIES, "meeting.category must be T, H or G")
    return {
        "meeting_id": meeting.meeting_id,
        "meeting_name": meeting.meeting_name,
        "date": _valid_date(meeting.date, "meeting.date"),
        "country": meeting.country,
        "state": opt(meeting, "state"),
        "category": meeting.category,
        "category_name": opt(meeting, "category_name"),
        "track_condition": opt(meeting, "track_condition"),
        "weather": opt(meeting, "weather"),
        "tote_status": opt(meeting, "tote_status"),
        "tote_meeting_number": opt(meeting, "tote_meeting_number"),
    }
