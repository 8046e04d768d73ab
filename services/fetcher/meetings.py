"""Meetings-list items (nztab-api §5.1-5.2) as Meeting and Race protobuf messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.nztime import nz_date
from services.common.proto.raceday.v1 import race_pb2, writer_pb2
from services.common.status import normalise_status


def _text(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _integer(item: Mapping[str, Any], key: str) -> int | None:
    value = item.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _copy_texts(target: Message, item: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Set each optional text field of `target` that `item` carries (absent or blank stays unset)."""
    for key in keys:
        value = _text(item, key)
        if value is not None:
            setattr(target, key, value)


def race_from_summary(meeting_id: str, summary: Mapping[str, Any]) -> race_pb2.Race | None:
    """A Race from a race summary; None when its id, number or start time is unusable."""
    race_id, number, start_text = (
        summary.get("id"),
        _integer(summary, "race_number"),
        _text(summary, "start_time"),
    )
    if not isinstance(race_id, str) or not race_id or number is None or start_text is None:
        return None
    try:
        start = datetime.fromisoformat(start_text)
    except ValueError:
        return None
    if start.tzinfo is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(start)
    raw_status = _text(summary, "status")
    race = race_pb2.Race(
        race_id=race_id,
        meeting_id=meeting_id,
        race_number=number,
        name=_text(summary, "name") or f"Race {number}",
        status=normalise_status(raw_status),
        start_time=stamp,
        race_date_nz=nz_date(start).isoformat(),
    )
    if raw_status is not None:
        race.status_raw = raw_status
    _copy_texts(race, summary, ("tote_start_time", "track_condition", "weather", "country", "state"))
    distance = _integer(summary, "distance")
    if distance is not None:
        race.distance = distance
    protest = summary.get("protest")
    if isinstance(protest, bool):
        race.protest = protest
    reason = _text(summary, "protest_reason")
    if reason is not None:
        race.protest_reason = reason
    return race


def meeting_with_races(item: Mapping[str, Any]) -> writer_pb2.MeetingWithRaces | None:
    """A meeting and its race summaries; None when required meeting fields are missing."""
    meeting_id, name, date_text = _text(item, "meeting"), _text(item, "name"), _text(item, "date")
    country, category = _text(item, "country"), _text(item, "category")
    if None in (meeting_id, name, date_text, country, category) or category not in ("T", "H", "G"):
        return None
    assert meeting_id is not None and name is not None and date_text is not None and country is not None
    meeting = race_pb2.Meeting(
        meeting_id=meeting_id,
        meeting_name=name,
        # The meeting date is the local date shown as midnight UTC: take the prefix, never convert.
        date=date_text[:10],
        country=country,
        category=category or "",
    )
    _copy_texts(meeting, item, ("state", "category_name", "track_condition", "tote_status"))
    number = _integer(item, "tote_meeting_number")
    if number is not None:
        meeting.tote_meeting_number = number
    races = item.get("races")
    result = writer_pb2.MeetingWithRaces(meeting=meeting)
    if isinstance(races, list):
        for summary in races:
            if isinstance(summary, Mapping):
                race = race_from_summary(meeting_id, summary)
                if race is not None:
                    result.races.append(race)
    return result
