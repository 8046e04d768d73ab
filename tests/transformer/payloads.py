"""Deterministic event payloads for transformer tests, built from the recorded Final race.

`open_race_polls()` turns the recording into a sequence of polls of an OPEN race: pools
grow poll by poll, money-tracker rows drift, fixed odds tick, one runner is scratched
and one late-scratched, the start is delayed by ten minutes part-way (some buckets are
then reused), a few polls land in a bucket already used, the race stays open past its
new start (post-start buckets), and the last poll is Closed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RECORDED_EVENT = FIXTURES / "nztab" / "race-event-final.json"

# A start well in the future (2030-03-17T17:46:40Z) so nothing depends on the wall clock.
BASE_START_S = 1_900_000_000
DELAY_S = 600


def recorded_payload() -> bytes:
    """The recorded event, byte for byte."""
    return RECORDED_EVENT.read_bytes()


def recorded_document() -> dict[str, Any]:
    """The recorded event, parsed (a fresh copy each call)."""
    document: dict[str, Any] = json.loads(recorded_payload())
    return document


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll of the simulated open race."""

    index: int
    polled_at_ms: int
    advertised_start_s: int
    status: str
    payload: bytes

    @property
    def minutes_to_start(self) -> float:
        """Raw minutes from the poll to the advertised start (negative after it)."""
        return (self.advertised_start_s * 1000 - self.polled_at_ms) / 60_000


# (seconds before the advertised start of the poll, start delayed?, status)
_SCHEDULE: tuple[tuple[int, bool, str], ...] = (
    (75 * 60, False, "Open"),  # bucket 60
    (62 * 60, False, "Open"),  # bucket 60 again: supersedes
    (57 * 60 + 10, False, "Open"),  # 55
    (56 * 60, False, "Open"),  # 55 again
    (50 * 60, False, "Open"),  # 50
    (41 * 60, False, "Open"),  # 40
    (33 * 60, False, "Open"),  # 30
    (20 * 60, False, "Open"),  # 20, runner 3 scratched from here on
    (12 * 60, False, "Open"),  # 10
    (8 * 60, False, "Open"),  # 5
    (17 * 60, True, "Open"),  # start moved 10 min later: 15, buckets 10 and 5 left behind
    (11 * 60, True, "Open"),  # 10 again
    (6 * 60, True, "Open"),  # 5, runner 6 late-scratched from here on
    (4 * 60 + 20, True, "Open"),  # 4 (4.33 minutes)
    (3 * 60 + 40, True, "Open"),  # 4 again (3.67 minutes)
    (60, True, "Open"),  # 1
    (12, True, "Open"),  # 0
    (-90, True, "Open"),  # -1: delayed jump, betting still open
    (-156, True, "Open"),  # -3
    (-240, True, "Closed"),  # betting closed: no money flow, odds still tracked
)
SCRATCHED_FROM = (7, 3)  # (poll index, runner number)
LATE_SCRATCHED_FROM = (12, 6)


def open_race_polls(template: bytes | None = None) -> list[Poll]:
    """The whole deterministic poll sequence."""
    raw = recorded_payload() if template is None else template
    polls = []
    for index, (seconds_before, delayed, status) in enumerate(_SCHEDULE):
        start_s = BASE_START_S + (DELAY_S if delayed else 0)
        polled_at_ms = start_s * 1000 - seconds_before * 1000
        polls.append(
            Poll(
                index=index,
                polled_at_ms=polled_at_ms,
                advertised_start_s=start_s,
                status=status,
                payload=open_race_payload(raw, index, advertised_start_s=start_s, status=status),
            )
        )
    return polls


def open_race_payload(template: bytes, index: int, *, advertised_start_s: int, status: str = "Open") -> bytes:
    """Poll `index` of the open race: the recording with status, start, pools, tracker and odds set."""
    document: dict[str, Any] = json.loads(template)
    data = document["data"]
    race = data["race"]
    race["status"] = status
    race["advertised_start"] = advertised_start_s
    race["actual_start"] = 0
    data["results"] = []
    data["dividends"] = []

    scale = 0.05 + 0.05 * index
    for pool in data["tote_pools"]:
        pool["total"] = round(pool["total"] * scale, 2)
        pool["status"] = "OPEN" if status == "Open" else "CLOSED"
        pool["is_final"] = False

    # Drift the positive tracker rows by -1..+1 points in half-point steps (fractions on purpose).
    for position, row in enumerate(data["money_tracker"]["entrants"]):
        if row["hold_percentage"] > 0:
            row["hold_percentage"] = max(0, row["hold_percentage"] + ((index * 3 + position) % 5 - 2) * 0.5)
        if row["bet_percentage"] > 0:
            row["bet_percentage"] = max(0, row["bet_percentage"] + ((index + position) % 3 - 1))

    for runner in data["runners"]:
        number = runner["runner_number"]
        odds = runner["odds"]
        tick = ((index + number) % 3 - 1) * 0.1
        odds["fixed_win"] = round(odds["fixed_win"] + tick, 2)
        # Place odds change only every third poll: change detection must skip equal values.
        odds["fixed_place"] = round(odds["fixed_place"] + (index // 3) * 0.01, 2)
        scratched_at, scratched_number = SCRATCHED_FROM
        late_at, late_number = LATE_SCRATCHED_FROM
        if number == scratched_number and index >= scratched_at:
            _scratch(runner, advertised_start_s - 3600, late=False)
        if number == late_number and index >= late_at:
            _scratch(runner, advertised_start_s - 300, late=True)
    return json.dumps(document).encode()


def _scratch(runner: dict[str, Any], at_s: int, *, late: bool) -> None:
    runner["is_scratched" if not late else "is_late_scratched"] = True
    runner["scratch_time"] = at_s
    runner["odds"] = {"fixed_win": None, "fixed_place": None, "pool_win": None, "pool_place": None}


def with_changes(document: dict[str, Any], **changes: Any) -> bytes:
    """The document with top-level `data` members replaced (None removes the member)."""
    data = dict(document["data"])
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps({**document, "data": data}).encode()
