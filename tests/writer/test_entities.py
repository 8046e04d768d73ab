"""The meetings-list path (Python) and the race write path (Rust core) refuse the same meetings and
races with the same messages."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import raceday_core
from services.common.proto.raceday.v1 import race_pb2, writer_pb2
from services.writer.entities import meeting_params, race_params
from services.writer.errors import InvalidArgumentError
from tests.writer.builder import START, new_race, poll

Change = Callable[[race_pb2.RaceUpdate], None]

RACE_CHANGES: dict[str, Change] = {
    "no meeting id": lambda u: setattr(u.race, "meeting_id", ""),
    "no name": lambda u: setattr(u.race, "name", ""),
    "unknown status": lambda u: setattr(u.race, "status", "Open"),
    "negative number": lambda u: setattr(u.race, "race_number", -1),
    "no start": lambda u: u.race.ClearField("start_time"),
    "unknown type": lambda u: setattr(u.race, "type", "X"),
    "bad date": lambda u: setattr(u.race, "race_date_nz", "2025-02-30"),
    "compact date": lambda u: setattr(u.race, "race_date_nz", "20250717"),
}
MEETING_CHANGES: dict[str, Change] = {
    "no meeting id": lambda u: setattr(u.meeting, "meeting_id", ""),
    "no meeting name": lambda u: setattr(u.meeting, "meeting_name", ""),
    "unknown category": lambda u: setattr(u.meeting, "category", "Q"),
    "bad meeting date": lambda u: setattr(u.meeting, "date", "17 July"),
}


def _valid() -> race_pb2.RaceUpdate:
    return poll(new_race(), START)


def _rust_refusal(update: race_pb2.RaceUpdate) -> str:
    request = writer_pb2.WriteRaceUpdateRequest(update=update).SerializeToString()
    with pytest.raises(ValueError) as refused:
        raceday_core.write_document(request)
    return str(refused.value)


@pytest.mark.parametrize("change", RACE_CHANGES.values(), ids=RACE_CHANGES.keys())
def test_a_bad_race_is_refused_alike(change: Change) -> None:
    update = _valid()
    change(update)
    with pytest.raises(InvalidArgumentError) as refused:
        race_params(update.race, update.race_id)
    assert _rust_refusal(update) == str(refused.value)


@pytest.mark.parametrize("change", MEETING_CHANGES.values(), ids=MEETING_CHANGES.keys())
def test_a_bad_meeting_is_refused_alike(change: Change) -> None:
    update = _valid()
    change(update)
    with pytest.raises(InvalidArgumentError) as refused:
        meeting_params(update.meeting)
    assert _rust_refusal(update) == str(refused.value)


def test_a_valid_update_passes_both() -> None:
    update = _valid()
    race_params(update.race, update.race_id)
    meeting_params(update.meeting)
    request = writer_pb2.WriteRaceUpdateRequest(update=update).SerializeToString()
    assert raceday_core.write_document(request).race_id == update.race_id
