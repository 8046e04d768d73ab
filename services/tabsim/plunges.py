"""The plunge knob: a runner takes a set share of the money bet in one bucket (issue 14).

Tests and demos use it to make a move happen on demand. A plunge is asked for as a JSON
object, the same at start-up (`--plunge`, TABSIM_PLUNGES) and on `POST /__sim/plunges`:

    {"race_id": "...", "runner_number": 3, "share": 0.5, "bucket": 5}

`entrant_id` may name the runner instead of `runner_number`; `share` (0 < share <= 1) is
the fraction of the Win and Place money bet while the race is in `bucket` (a pre-start
money-flow bucket, money-flow.md §6.2: 60, 55, ..., 5, 4, 3, 2, 1, 0) that goes to the
runner; `pools` may say `["win", "place"]` and nothing else: the money tracker's one hold
percentage splits both pools alike (money-flow.md §5), so a plunge cannot take one alone.
`race_id` may also be `next` (or `next+N`, skipping N): the first NZ or Australian gallops
or harness race, in start order, that is still Open, the runner not scratched, whose bucket
opens at least NEXT_LEAD_S of simulated time ahead, so that a poller sees the move whole.
How the model spends the share is in model.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from services.tabsim.scenario import (
    PRE_START_BUCKETS,
    Day,
    InjectedPlunge,
    MeetingModel,
    RaceModel,
    windows_json,
)

POOLS: Final = ("win", "place")
# "next" picks a race whose bucket opens at least this far ahead (simulated seconds): time for
# `raceday up` to start and for the fetcher to poll the column before the bucket.
NEXT_LEAD_S: Final = 300
_NEXT: Final = re.compile(r"next(?:\+(\d+))?")
_FIELDS: Final = frozenset({"race_id", "runner_number", "entrant_id", "share", "bucket", "pools"})
# Shares of one race and bucket may add up to 1; this much over is float noise (0.1 + 0.2 + 0.7).
_SUM_SLACK: Final = 1e-9


@dataclass(frozen=True, slots=True)
class PlungeRequest:
    """A plunge as asked for, checked for shape but not yet bound to a race of the day."""

    race_id: str
    runner_number: int | None
    entrant_id: str | None
    share: float
    bucket: int

    @classmethod
    def from_json(cls, document: object) -> PlungeRequest:
        """Check one JSON object; a ValueError names the offending field."""
        if not isinstance(document, Mapping):
            raise ValueError("a plunge must be a JSON object")
        unknown = set(document) - _FIELDS
        if unknown:
            raise ValueError(f"unknown plunge settings: {', '.join(sorted(map(str, unknown)))}")
        race_id = document.get("race_id")
        if not isinstance(race_id, str) or not race_id.strip():
            raise ValueError("race_id is required: a race id of the day, or next / next+N")
        runner_number = document.get("runner_number")
        entrant_id = document.get("entrant_id")
        if (runner_number is None) == (entrant_id is None):
            raise ValueError("give exactly one of runner_number and entrant_id")
        if runner_number is not None and (
            isinstance(runner_number, bool) or not isinstance(runner_number, int) or runner_number < 1
        ):
            raise ValueError(f"runner_number must be a positive integer, got {runner_number!r}")
        if entrant_id is not None and (not isinstance(entrant_id, str) or not entrant_id):
            raise ValueError(f"entrant_id must be a non-empty string, got {entrant_id!r}")
        share = document.get("share")
        if (
            isinstance(share, bool)
            or not isinstance(share, int | float)
            or not math.isfinite(share)
            or not 0 < share <= 1
        ):
            raise ValueError(f"share must be a number with 0 < share <= 1, got {share!r}")
        bucket = document.get("bucket")
        if isinstance(bucket, bool) or not isinstance(bucket, int) or bucket not in PRE_START_BUCKETS:
            choices = ", ".join(map(str, PRE_START_BUCKETS))
            raise ValueError(f"bucket must be one of {choices} (minutes to start), got {bucket!r}")
        pools = document.get("pools", list(POOLS))
        if (
            not isinstance(pools, list)
            or not all(isinstance(pool, str) for pool in pools)
            or sorted(pool.lower() for pool in pools) != sorted(POOLS)
        ):
            raise ValueError(
                f'pools must be ["win", "place"] (or left out), got {json.dumps(pools)}: the money '
                "tracker's one hold percentage splits both pools alike, so a plunge takes both"
            )
        return cls(race_id.strip(), runner_number, entrant_id, float(share), bucket)


@dataclass(frozen=True, slots=True)
class Plunge:
    """A plunge bound to one race and runner of the day."""

    race_id: str
    entrant_id: str
    runner_number: int
    share: float
    bucket: int

    @property
    def key(self) -> tuple[str, str, int]:
        """What a later plunge replaces: the same race, runner and bucket."""
        return self.race_id, self.entrant_id, self.bucket

    def to_json(self, race: RaceModel) -> dict[str, Any]:
        """The plunge as the admin API shows it, with the instants its bucket covers."""
        return {
            "race_id": self.race_id,
            "entrant_id": self.entrant_id,
            "runner_number": self.runner_number,
            "share": self.share,
            "bucket": self.bucket,
            "pools": list(POOLS),
            "windows": windows_json(race.bucket_windows(self.bucket)),
        }


def resolve(request: PlungeRequest, day: Day, now_s: float) -> Plunge:
    """Bind `request` to a race and runner of `day`; ValueError (naming the field) when none fits."""
    match = _NEXT.fullmatch(request.race_id)
    if match is not None:
        skip = int(match.group(1) or 0)
        candidates = [
            race
            for race in sorted(
                day.races.values(), key=lambda race: (race.advertised_start(int(now_s)), race.key)
            )
            if _next_candidate(race, request, now_s)
        ]
        if len(candidates) <= skip:
            raise ValueError(
                f"race_id {request.race_id}: only {len(candidates)} Open NZ/AUS gallops or harness "
                f"races have runner {_runner_text(request)} unscratched and bucket {request.bucket} "
                f"opening {NEXT_LEAD_S} s or more from now"
            )
        return _bind(request, candidates[skip])
    race = day.races.get(request.race_id)
    if race is None:
        raise ValueError(f"race_id {request.race_id!r} is not a race of the simulated day")
    plunge = _bind(request, race)
    index = _runner_index(race, request)
    windows = race.bucket_windows(request.bucket)
    if not windows:
        # A start brought forward past the whole bucket: no poll can land in it.
        raise ValueError(f"bucket: race {race.race_id} is never in bucket {request.bucket}")
    closes = max(closes for _, closes in windows)
    scratched_at = race.runners[index].scratched_at
    if scratched_at is not None and scratched_at < closes:
        raise ValueError(
            f"{_runner_field(request)}: runner {plunge.runner_number} is scratched at {scratched_at}, "
            f"before bucket {request.bucket} of race {race.race_id} closes at {int(closes)}"
        )
    opens = min(opens for opens, _ in windows)
    if race.abandoned_at is not None and race.abandoned_at <= opens:
        raise ValueError(
            f"race_id {race.race_id}: the race is abandoned at {race.abandoned_at}, "
            f"before bucket {request.bucket} opens at {int(opens)}"
        )
    return plunge


def _next_candidate(race: RaceModel, request: PlungeRequest, now_s: float) -> bool:
    if not race.local or race.abandoned_at is not None or race.status_at(int(now_s)) != "Open":
        return False
    try:
        index = _runner_index(race, request)
    except ValueError:
        return False
    windows = race.bucket_windows(request.bucket)
    if not windows:
        return False
    opens = min(opens for opens, _ in windows)
    closes = max(closes for _, closes in windows)
    scratched_at = race.runners[index].scratched_at
    lead = now_s + NEXT_LEAD_S
    # Bucket 60 has no start: its end must still be that far ahead.
    return (opens >= lead or (math.isinf(opens) and closes >= lead)) and (
        scratched_at is None or scratched_at >= closes
    )


def _bind(request: PlungeRequest, race: RaceModel) -> Plunge:
    runner = race.runners[_runner_index(race, request)]
    return Plunge(race.race_id, runner.entrant_id, runner.runner_number, request.share, request.bucket)


def _runner_index(race: RaceModel, request: PlungeRequest) -> int:
    for index, runner in enumerate(race.runners):
        if runner.runner_number == request.runner_number or runner.entrant_id == request.entrant_id:
            return index
    raise ValueError(
        f"{_runner_field(request)}: race {race.race_id} has no runner {_runner_text(request)} "
        f"(runner numbers 1..{len(race.runners)})"
    )


def _runner_field(request: PlungeRequest) -> str:
    return "runner_number" if request.runner_number is not None else "entrant_id"


def _runner_text(request: PlungeRequest) -> str:
    return str(request.runner_number) if request.runner_number is not None else repr(request.entrant_id)


def merged(current: Sequence[Plunge], added: Iterable[Plunge]) -> tuple[Plunge, ...]:
    """`current` with `added` (one of the same race, runner and bucket replaced), shares checked."""
    by_key = {plunge.key: plunge for plunge in current}
    for plunge in added:
        by_key[plunge.key] = plunge
    totals: dict[tuple[str, int], float] = {}
    for plunge in by_key.values():
        slot = (plunge.race_id, plunge.bucket)
        totals[slot] = totals.get(slot, 0.0) + plunge.share
        if totals[slot] > 1 + _SUM_SLACK:
            raise ValueError(
                f"share: the plunges of race {plunge.race_id} in bucket {plunge.bucket} would take "
                f"{totals[slot]:g} of its money, more than all of it"
            )
    return tuple(by_key.values())


def with_plunges(day: Day, plunges: Sequence[Plunge]) -> Day:
    """`day` with each race's plunges bound into its model (races without keep none)."""
    by_race: dict[str, list[Plunge]] = {}
    for plunge in plunges:
        by_race.setdefault(plunge.race_id, []).append(plunge)

    def bound(race: RaceModel) -> RaceModel:
        mine = by_race.get(race.race_id, [])
        if not mine and not race.injected_plunges:
            return race
        index = {runner.entrant_id: i for i, runner in enumerate(race.runners)}
        injected = tuple(
            InjectedPlunge(index[p.entrant_id], p.share, p.bucket, race.bucket_windows(p.bucket))
            for p in mine
        )
        return dataclasses.replace(race, injected_plunges=injected)

    meetings = tuple(
        dataclasses.replace(meeting, races=tuple(bound(race) for race in meeting.races))
        for meeting in day.meetings
    )
    return _day_of(day, meetings)


def _day_of(day: Day, meetings: tuple[MeetingModel, ...]) -> Day:
    return dataclasses.replace(
        day,
        meetings=meetings,
        races={race.race_id: race for meeting in meetings for race in meeting.races},
        meetings_by_id={meeting.meeting_id: meeting for meeting in meetings},
    )


def parse_plunge_spec(text: str) -> dict[str, Any]:
    """`RACE:RUNNER:SHARE:BUCKET` (the `--plunge` flag) as the admin API's JSON object.

    RACE is a race id or next / next+N; RUNNER a runner number or an entrant id.
    """
    parts = text.strip().split(":")
    if len(parts) != 4:
        raise ValueError(f"a plunge is RACE:RUNNER:SHARE:BUCKET, got {text!r}")
    race, runner, share, bucket = (part.strip() for part in parts)
    document: dict[str, Any] = {"race_id": race}
    if runner.isdigit():
        document["runner_number"] = int(runner)
    else:
        document["entrant_id"] = runner
    try:
        document["share"] = float(share)
    except ValueError:
        raise ValueError(f"share must be a number with 0 < share <= 1, got {share!r}") from None
    try:
        document["bucket"] = int(bucket)
    except ValueError:
        raise ValueError(f"bucket must be a whole number of minutes, got {bucket!r}") from None
    PlungeRequest.from_json(document)
    return document


def parse_plunges(text: str) -> tuple[dict[str, Any], ...]:
    """TABSIM_PLUNGES: a JSON array of plunge objects (or one object), or `RACE:RUNNER:SHARE:BUCKET`
    specs separated by commas or spaces."""
    text = text.strip()
    if text.startswith(("[", "{")):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        items = document if isinstance(document, list) else [document]
        for position, item in enumerate(items):
            try:
                PlungeRequest.from_json(item)
            except ValueError as exc:
                raise ValueError(f"plunge {position + 1}: {exc}") from None
        return tuple(dict(item) for item in items)
    return tuple(parse_plunge_spec(spec) for spec in re.split(r"[,\s]+", text) if spec)
