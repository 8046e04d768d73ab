"""Meetings as /racing/meetings shows them, agreeing with the event payloads at every instant."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from services.common.nztime import NZ
from services.tabsim.scenario import MeetingModel, RaceModel

_TERMINAL = ("Final", "Abandoned")


def race_summary(race: RaceModel, clock_s: float, overrides: Mapping[str, str]) -> dict[str, Any]:
    """One element of `meetings[].races` (same status and start as the event at this instant)."""
    t = race.quantise(clock_s)
    start = race.advertised_start(t)
    summary: dict[str, Any] = {
        "id": race.race_id,
        "race_number": race.race_number,
        "name": race.name,
        "start_time": datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if race.country in ("NZ", "AUS"):
        # The tote clock is NZ local time; overseas races mostly lack it upstream.
        summary["tote_start_time"] = datetime.fromtimestamp(start, NZ).strftime("%H:%M:%S")
    summary.update(
        {
            "track_condition": race.track_condition,
            "distance": race.distance,
            "weather": race.weather,
            "country": race.country,
            "state": race.state,
            "status": overrides.get(race.race_id) or race.status_at(t),
        }
    )
    return summary


def meeting_document(
    meeting: MeetingModel, clock_s: float, overrides: Mapping[str, str], *, detail: bool = False
) -> dict[str, Any]:
    """One element of `data.meetings`; `detail` adds the club fields of /meetings/{id}."""
    races = [race_summary(race, clock_s, overrides) for race in meeting.races]
    count = len(meeting.races)
    document: dict[str, Any] = {
        "meeting": meeting.meeting_id,
        "name": meeting.name,
        "date": f"{meeting.date}T00:00:00Z",
        "track_condition": meeting.track_condition,
        "category": meeting.category,
        "category_name": meeting.category_name,
        "country": meeting.country,
        "state": meeting.state,
        "video_channels": list(meeting.video_channels),
    }
    if count >= 4:
        document["quaddie"] = list(range(count - 3, count + 1))
        document["early_quaddie"] = [1, 2, 3, 4]
    if meeting.tote_meeting_number is not None:
        open_races = any(race["status"] not in _TERMINAL for race in races)
        document["tote_meeting_number"] = meeting.tote_meeting_number
        document["tote_raceday_date"] = meeting.date
        document["tote_status"] = "Open" if open_races else "Closed"
    if detail:
        document.update(
            {
                "jetbet_club_name": "",
                "club_day": 100 + (meeting.tote_meeting_number or 0),
                "club_mnemonic": meeting.name[:4].upper(),
                "jetbet_track_name": meeting.name,
                "sell_date": meeting.date,
                "meeting_date": meeting.date,
                "is_fob_meeting": False,
                "meeting_type": "",
            }
        )
    document["races"] = races
    return document
