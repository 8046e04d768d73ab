"""Both money-flow implementations behind one protocol, and payload builders for the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import pytest

import raceday_core
from services.transformer import reference
from services.transformer.records import EventSummary, PriorState, RaceUpdateRecord

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
RECORDED_EVENT = Path(__file__).resolve().parents[1] / "fixtures" / "nztab" / "race-event-final.json"


class MoneyFlow(Protocol):
    """What the extension and the reference both expose."""

    def transform(self, payload: bytes, polled_at_ms: int, prior_state: PriorState) -> RaceUpdateRecord: ...
    def event_summary(self, payload: bytes) -> EventSummary: ...
    def round_half_up(self, x: float) -> int: ...
    def hundredths(self, x: float) -> int: ...
    def time_to_start(self, advertised_start_s: int, polled_at_ms: int) -> int: ...
    def bucket(self, time_to_start: int) -> int: ...
    def interval_type(self, time_to_start: int) -> str: ...
    def pool_amounts(
        self, hold: float, win_cents: int, place_cents: int
    ) -> tuple[int, int, int, float | None, float | None]: ...


EXTENSION: MoneyFlow = raceday_core
REFERENCE: MoneyFlow = reference


@pytest.fixture(params=[pytest.param(EXTENSION, id="extension"), pytest.param(REFERENCE, id="reference")])
def impl(request: pytest.FixtureRequest) -> MoneyFlow:
    """Each implementation in turn."""
    chosen: MoneyFlow = request.param
    return chosen


def golden(name: str) -> Any:
    """A golden-vector file of tests/fixtures/golden."""
    return json.loads((GOLDEN / name).read_text())


def recorded_event() -> bytes:
    """The recorded final race (tests/fixtures/nztab/race-event-final.json)."""
    return RECORDED_EVENT.read_bytes()


def dollars(cents: int) -> str:
    """Exact dollar text of a cent amount, as upstream writes pool totals."""
    return f"{cents // 100}.{cents % 100:02d}"


def open_race(
    advertised_start: int, win_cents: int, place_cents: int, hold: float, fixed_win: float | None = None
) -> bytes:
    """A minimal open race with one runner `e1`, its tracker row and Win/Place pools."""
    text = (
        '{"header": {"generated_time": "2025-07-17T00:00:00Z"}, "data": {'
        '"race": {"event_id": "golden-race", "meeting_id": "golden-meeting", "race_number": 1,'
        f' "status": "Open", "advertised_start": {advertised_start}, "race_date_nz": "2025-07-17"}},'
        ' "runners": [{"entrant_id": "e1", "runner_number": 1, "name": "One",'
        f' "odds": {{"fixed_win": {json.dumps(fixed_win)}}}}}],'
        f' "money_tracker": {{"entrants": [{{"entrant_id": "e1", "hold_percentage": {json.dumps(hold)},'
        ' "bet_percentage": 1}]},'
        f' "tote_pools": [{{"product_type": "Win", "total": {dollars(win_cents)}}},'
        f' {{"product_type": "Place", "total": {dollars(place_cents)}}}], "error": ""}}}}'
    )
    return text.encode()
