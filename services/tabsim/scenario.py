"""The simulated race day: which meetings and races exist and how each race will unfold.

`build_day(seed, config, anchor_s)` lays the day out around `anchor_s` (the
simulated instant the scenario was created, floored to the minute): some races
already run, some open and starting within minutes, more through the coming
hours, all on the NZ date of the anchor. Everything is drawn from seeded random
generators, so the same seed, scenario and anchor give the same day.
"""

from __future__ import annotations

import dataclasses
import math
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from services.common.nztime import nz_date
from services.tabsim.curves import half_up
from services.tabsim.templates import EventTemplate, event_template

ScenarioKind = Literal["day", "bench"]
SCENARIO_KINDS: Final[tuple[ScenarioKind, ...]] = ("day", "bench")

# Bench scenario: every race Open, starting between these offsets from the anchor.
BENCH_FIRST_START_S: Final = 120
BENCH_LAST_START_S: Final = 600

_LOCAL: Final = frozenset({("NZ", "T"), ("NZ", "H"), ("AUS", "T"), ("AUS", "H")})
_NAME_WORDS_A: Final = (
    "Silver", "Golden", "Midnight", "Royal", "Lucky", "Quick", "Brave", "Misty", "Rapid", "Gallant",
    "Southern", "Northern", "Crimson", "Velvet", "Stormy", "Sunny", "Wild", "Noble", "Secret", "Flying",
)  # fmt: skip
_NAME_WORDS_B: Final = (
    "Comet", "Harbour", "Legend", "Whisper", "Arrow", "Thunder", "Echo", "Spirit", "Dancer", "Monarch",
    "Voyager", "Ember", "Meadow", "Falcon", "Rebel", "Tide", "Lantern", "Summit", "Breeze", "Outlaw",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScenarioConfig:
    """How the simulated day looks. `bench` ignores the variety knobs: all races Open, 8 runners."""

    kind: ScenarioKind = "day"
    meetings: int = 8
    races: int = 8
    first_start_offset_s: int = -75 * 60
    meeting_stagger_s: int = 7 * 60
    race_spacing_s: int = 30 * 60
    field_min: int = 6
    field_max: int = 12
    greyhound_share: float = 0.125
    overseas_share: float = 0.125
    abandoned_share: float = 0.04
    delayed_share: float = 0.2
    prescratch_share: float = 0.15
    tick_s: int = 5

    def __post_init__(self) -> None:
        if self.kind not in SCENARIO_KINDS:
            raise ValueError(f"kind must be one of {', '.join(SCENARIO_KINDS)}, got {self.kind!r}")
        if not 1 <= self.meetings <= 200:
            raise ValueError(f"meetings must be 1..200, got {self.meetings}")
        if not 1 <= self.races <= 30:
            raise ValueError(f"races must be 1..30, got {self.races}")
        if not 2 <= self.field_min <= self.field_max <= 24:
            raise ValueError(
                f"need 2 <= field_min <= field_max <= 24, got {self.field_min}..{self.field_max}"
            )
        for name in (
            "greyhound_share",
            "overseas_share",
            "abandoned_share",
            "delayed_share",
            "prescratch_share",
        ):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {share}")
        if self.greyhound_share + self.overseas_share > 1.0:
            raise ValueError("greyhound_share + overseas_share must not exceed 1")
        if self.race_spacing_s < 60 or self.meeting_stagger_s < 0:
            raise ValueError("race_spacing_s must be >= 60 and meeting_stagger_s >= 0")
        if not 1 <= self.tick_s <= 60:
            raise ValueError(f"tick_s must be 1..60, got {self.tick_s}")

    def to_json(self) -> dict[str, Any]:
        """The configuration as a JSON object (what the admin API shows)."""
        return dataclasses.asdict(self)

    def updated(self, changes: Mapping[str, Any]) -> ScenarioConfig:
        """A copy with `changes` applied; unknown keys or wrong types raise ValueError."""
        known = {f.name: f for f in dataclasses.fields(self)}
        values: dict[str, Any] = {}
        for key, given in changes.items():
            if key not in known:
                raise ValueError(f"unknown scenario setting {key!r}")
            current = getattr(self, key)
            if isinstance(given, bool):
                raise ValueError(f"{key} has the wrong type")
            if isinstance(current, float):
                if not isinstance(given, int | float):
                    raise ValueError(f"{key} must be a number, got {given!r}")
                values[key] = float(given)
            elif isinstance(current, int):
                if not isinstance(given, int):
                    raise ValueError(f"{key} must be an integer, got {given!r}")
                values[key] = given
            else:
                if not isinstance(given, str):
                    raise ValueError(f"{key} must be a string, got {given!r}")
                values[key] = given
        return dataclasses.replace(self, **values)


@dataclass(frozen=True, slots=True)
class StartChange:
    """The advertised start moves from the scheduled time to `new_start` at instant `at`."""

    at: int
    new_start: int


def _final_start(scheduled_start: int, start_change: StartChange | None) -> int:
    """The advertised start once any start-time change has applied (epoch seconds)."""
    return start_change.new_start if start_change else scheduled_start


@dataclass(frozen=True, slots=True)
class RunnerModel:
    """One synthetic runner: identity, which recorded runner it is built from, its money profile."""

    entrant_id: str
    template_index: int
    name: str
    runner_number: int
    barrier: int
    barrier_position: str | None
    base_hold: float
    base_bet: float
    scratched_at: int | None
    late_scratch: bool
    plunge_points: float
    row_weights: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ExtraTrackerId:
    """A money-tracker entrant id that is not among the runners (as in the recording)."""

    entrant_id: str
    hold: int
    bet: int


# Money-flow buckets before the start (money-flow.md §6.2), highest first.
PRE_START_BUCKETS: Final = (60, 55, 50, 45, 40, 35, 30, 25, 20, 15, 10, 5, 4, 3, 2, 1, 0)


def bucket_minutes(bucket: int) -> tuple[float, float]:
    """The raw minutes to start [low, high) that pre-start `bucket` covers (money-flow.md §6.2)."""
    if bucket not in PRE_START_BUCKETS:
        raise ValueError(f"not a pre-start bucket: {bucket}")
    if bucket == 60:
        return 59.5, math.inf
    return bucket - 0.5, bucket + (4.5 if bucket >= 5 else 0.5)


@dataclass(frozen=True, slots=True)
class InjectedPlunge:
    """A plunge asked for through the admin API or at start-up (plunges.py), bound to its race.

    While a poll of the race would land in money-flow bucket `bucket`, runner `index` takes
    `share` of the money the runners' pools gain; `windows` are those instants, (opens, closes]
    in epoch seconds (two when a start-time change splits the bucket; `opens` is -inf for 60).
    """

    index: int
    share: float
    bucket: int
    windows: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class RaceModel:
    """One race and its whole timeline; `state_at` (model.py) evaluates it at an instant."""

    race_id: str
    meeting_id: str
    meeting_name: str
    race_number: int
    name: str
    category: str
    country: str
    state: str
    distance: int
    weather: str
    track_condition: str
    scheduled_start: int
    start_change: StartChange | None
    delay_s: int
    closed_s: int
    interim_s: int
    abandoned_at: int | None
    runners: tuple[RunnerModel, ...]
    extras: tuple[ExtraTrackerId, ...]
    row_order: tuple[tuple[int, int], ...]
    pool_finals: tuple[tuple[str, int], ...]
    finish_order: tuple[int, ...]
    plunge_index: int | None
    fixed_step_s: int
    tick_s: int
    key: str
    # Set by SimState from the plunge knob, never by build_day: the day as laid out has none.
    injected_plunges: tuple[InjectedPlunge, ...] = ()

    @property
    def local(self) -> bool:
        """An NZ or Australian gallops or harness race (the dashboard's default filter)."""
        return (self.country, self.category) in _LOCAL

    @property
    def final_start(self) -> int:
        """The advertised start after any start-time change (epoch seconds)."""
        return _final_start(self.scheduled_start, self.start_change)

    @property
    def jump(self) -> int:
        """When the race actually starts: the final advertised start plus any delay."""
        return self.final_start + self.delay_s

    @property
    def freeze_at(self) -> int:
        """Betting stops here: pools, money tracker and odds no longer move."""
        return self.abandoned_at if self.abandoned_at is not None else self.jump

    def advertised_start(self, t: int) -> int:
        """The advertised start as published at instant `t`."""
        if self.start_change is not None and t >= self.start_change.at:
            return self.start_change.new_start
        return self.scheduled_start

    def status_at(self, t: int) -> str:
        """The capitalised upstream status at instant `t`."""
        if self.abandoned_at is not None and t >= self.abandoned_at:
            return "Abandoned"
        jump = self.jump
        if t < jump:
            return "Open"
        if t < jump + self.closed_s:
            return "Closed"
        if t < jump + self.closed_s + self.interim_s:
            return "Interim"
        return "Final"

    def bucket_windows(self, bucket: int) -> tuple[tuple[float, float], ...]:
        """When a poll of this race lands in pre-start `bucket`: (opens, closes] in epoch seconds.

        The bucket is taken from the advertised start as published at each instant, as the
        money flow takes it from each payload, so a start-time change can split it in two.
        """
        low, high = bucket_minutes(bucket)

        def window(start: int) -> tuple[float, float]:
            return start - high * 60.0, start - low * 60.0

        if self.start_change is None:
            return (window(self.scheduled_start),)
        change_at = float(self.start_change.at)
        before_opens, before_closes = window(self.scheduled_start)
        after_opens, after_closes = window(self.start_change.new_start)
        parts = ((before_opens, min(before_closes, change_at)), (max(after_opens, change_at), after_closes))
        return tuple((opens, closes) for opens, closes in parts if opens < closes)

    def quantise(self, t: float) -> int:
        """The model instant for a clock reading: data refreshes every `tick_s` seconds."""
        return math.floor(t / self.tick_s) * self.tick_s

    def describe(self) -> dict[str, Any]:
        """The race's plan as JSON (admin API; lets tests pick races and predict values)."""
        return {
            "race_id": self.race_id,
            "meeting_id": self.meeting_id,
            "meeting_name": self.meeting_name,
            "race_number": self.race_number,
            "category": self.category,
            "country": self.country,
            "scheduled_start": self.scheduled_start,
            "final_start": self.final_start,
            "start_change": dataclasses.asdict(self.start_change) if self.start_change else None,
            "delay_s": self.delay_s,
            "jump": self.jump,
            "closed_s": self.closed_s,
            "interim_s": self.interim_s,
            "abandoned_at": self.abandoned_at,
            "runner_count": len(self.runners),
            "plunge_entrant_id": (
                self.runners[self.plunge_index].entrant_id if self.plunge_index is not None else None
            ),
            "scratchings": [
                {"entrant_id": r.entrant_id, "at": r.scratched_at, "late": r.late_scratch}
                for r in self.runners
                if r.scratched_at is not None
            ],
            "extra_tracker_ids": [extra.entrant_id for extra in self.extras],
            "injected_plunges": [
                {
                    "entrant_id": self.runners[plunge.index].entrant_id,
                    "runner_number": self.runners[plunge.index].runner_number,
                    "share": plunge.share,
                    "bucket": plunge.bucket,
                    "windows": windows_json(plunge.windows),
                }
                for plunge in self.injected_plunges
            ],
        }


def windows_json(windows: tuple[tuple[float, float], ...]) -> list[dict[str, int | None]]:
    """Plunge windows as JSON: epoch seconds, `opens_after` null when the bucket has no start (60)."""
    return [
        {"opens_after": None if math.isinf(opens) else int(opens), "closes_at": int(closes)}
        for opens, closes in windows
    ]


@dataclass(frozen=True, slots=True)
class MeetingModel:
    """One synthetic meeting and its races."""

    meeting_id: str
    name: str
    date: str
    category: str
    category_name: str
    country: str
    state: str
    track_condition: str
    tote_meeting_number: int | None
    video_channels: tuple[str, ...]
    races: tuple[RaceModel, ...]


@dataclass(frozen=True, slots=True)
class Day:
    """A whole simulated race day."""

    seed: int
    config: ScenarioConfig
    anchor_s: int
    date: str
    meetings: tuple[MeetingModel, ...]
    races: Mapping[str, RaceModel] = field(repr=False)
    meetings_by_id: Mapping[str, MeetingModel] = field(repr=False)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(slots=True)
class _RacePlan:
    """Per-race choices made at day level before the race is built."""

    meeting_index: int
    race_index: int
    local: bool
    scheduled_start: int
    start_change: StartChange | None = None
    delay_s: int = 0
    abandoned_at: int | None = None
    late_scratch: bool = False


def build_day(seed: int, config: ScenarioConfig, anchor_s: int) -> Day:
    """Lay out the simulated day around `anchor_s` (epoch seconds, floored to the minute)."""
    anchor_s -= anchor_s % 60
    template = event_template()
    rng = random.Random(f"day|{seed}|{anchor_s}|{config.kind}")
    day_date = nz_date(datetime.fromtimestamp(anchor_s, UTC)).isoformat()
    kinds = _meeting_kinds(config, rng)
    venues = _pick_venues(template, kinds, rng)

    plans: list[list[_RacePlan]] = []
    total = config.meetings * config.races
    for m, kind in enumerate(kinds):
        row: list[_RacePlan] = []
        for j in range(config.races):
            if config.kind == "bench":
                index = m * config.races + j
                span = BENCH_LAST_START_S - BENCH_FIRST_START_S
                offset = BENCH_FIRST_START_S + (index * span // (total - 1) if total > 1 else 0)
                start = anchor_s + offset
            else:
                start = anchor_s + config.first_start_offset_s + m * config.meeting_stagger_s
                start += j * config.race_spacing_s
                start -= start % 60
            row.append(_RacePlan(m, j, kind == "local", start))
        plans.append(row)
    if config.kind == "day":
        _plan_incidents(config, [p for row in plans for p in row], anchor_s, rng)

    meetings: list[MeetingModel] = []
    for m, (kind, venue) in enumerate(zip(kinds, venues, strict=True)):
        meeting_id = _uuid(rng)
        races = tuple(
            _build_race(
                seed=seed,
                anchor_s=anchor_s,
                config=config,
                template=template,
                plan=plan,
                meeting_id=meeting_id,
                venue=venue,
            )
            for plan in plans[m]
        )
        meetings.append(
            MeetingModel(
                meeting_id=meeting_id,
                name=venue["name"],
                date=day_date,
                category=venue["category"],
                category_name=venue["category_name"],
                country=venue["country"],
                state=venue["state"],
                track_condition=venue["track_condition"],
                tote_meeting_number=m + 1 if kind == "local" else None,
                video_channels=("Trackside1",) if kind != "overseas" else ("Trackside2",),
                races=races,
            )
        )
    races_by_id = {race.race_id: race for meeting in meetings for race in meeting.races}
    return Day(
        seed=seed,
        config=config,
        anchor_s=anchor_s,
        date=day_date,
        meetings=tuple(meetings),
        races=races_by_id,
        meetings_by_id={meeting.meeting_id: meeting for meeting in meetings},
    )


def _meeting_kinds(config: ScenarioConfig, rng: random.Random) -> list[str]:
    if config.kind == "bench":
        return ["local"] * config.meetings
    greyhound = half_up(config.meetings * config.greyhound_share)
    overseas = half_up(config.meetings * config.overseas_share)
    while greyhound + overseas >= config.meetings and greyhound + overseas > 0:
        if overseas >= greyhound:
            overseas -= 1
        else:
            greyhound -= 1
    kinds = ["local"] * (config.meetings - greyhound - overseas) + ["greyhound"] * greyhound
    kinds += ["overseas"] * overseas
    # The first meeting stays local so the earliest races are always in the default filter.
    rest = kinds[1:]
    rng.shuffle(rest)
    return [kinds[0], *rest]


def _pick_venues(template: EventTemplate, kinds: list[str], rng: random.Random) -> list[dict[str, str]]:
    pools: dict[str, list[dict[str, Any]]] = {"local": [], "greyhound": [], "overseas": []}
    for meeting in template.meetings:
        pair = (meeting["country"], meeting["category"])
        kind = "greyhound" if meeting["category"] == "G" else "local" if pair in _LOCAL else "overseas"
        pools[kind].append(meeting)
    remaining = {kind: list(pool) for kind, pool in pools.items()}
    used: dict[str, int] = {}
    venues: list[dict[str, str]] = []
    for kind in kinds:
        if not remaining[kind]:
            remaining[kind] = list(pools[kind])
        meeting = remaining[kind].pop(rng.randrange(len(remaining[kind])))
        used[meeting["name"]] = used.get(meeting["name"], 0) + 1
        suffix = "" if used[meeting["name"]] == 1 else f" {used[meeting['name']]}"
        venues.append(
            {
                "name": meeting["name"] + suffix,
                "category": meeting["category"],
                "category_name": meeting["category_name"],
                "country": meeting["country"],
                "state": meeting["state"],
                "track_condition": meeting["track_condition"] or "Good4",
                "weather": meeting["races"][0]["weather"] or "FINE",
            }
        )
    return venues


def _plan_incidents(
    config: ScenarioConfig, plans: list[_RacePlan], anchor_s: int, rng: random.Random
) -> None:
    """Delays, one start-time change, one late scratching and abandoned races, as the spec asks."""
    ordered = sorted(plans, key=lambda p: (p.scheduled_start, p.meeting_index, p.race_index))
    local_future = [p for p in ordered if p.local]

    def first_local(after_s: int, taken: list[_RacePlan]) -> _RacePlan | None:
        for plan in local_future:
            if plan.scheduled_start >= anchor_s + after_s and plan not in taken:
                return plan
        return None

    special: list[_RacePlan] = []
    change = first_local(25 * 60, special)
    if change is not None:
        change.start_change = StartChange(
            at=change.scheduled_start - 20 * 60,
            new_start=change.scheduled_start + rng.randint(4, 10) * 60,
        )
        special.append(change)
    scratch = first_local(10 * 60, special)
    if scratch is not None:
        scratch.late_scratch = True
        special.append(scratch)

    abandon_count = max(1, half_up(len(plans) * config.abandoned_share)) if config.abandoned_share > 0 else 0
    first_abandon = first_local(40 * 60, special)
    abandon: list[_RacePlan] = [first_abandon] if first_abandon is not None and abandon_count else []
    others = [p for p in plans if p not in special and p not in abandon]
    rng.shuffle(others)
    abandon += others[: max(0, abandon_count - len(abandon))]
    for plan in abandon:
        plan.abandoned_at = plan.scheduled_start - rng.randint(5, 20) * 60
    special += abandon

    delayed_future = False
    for plan in ordered:
        if plan in abandon:
            continue
        if rng.random() < config.delayed_share:
            plan.delay_s = rng.randint(60, 240)
            delayed_future = delayed_future or plan.scheduled_start >= anchor_s + 5 * 60
    if not delayed_future and config.delayed_share > 0:
        candidate = first_local(5 * 60, special)
        if candidate is not None:
            candidate.delay_s = rng.randint(60, 240)


def _clone_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = f"{rng.choice(_NAME_WORDS_A)} {rng.choice(_NAME_WORDS_B)}"
        if name not in taken:
            taken.add(name)
            return name


def _build_race(
    *,
    seed: int,
    anchor_s: int,
    config: ScenarioConfig,
    template: EventTemplate,
    plan: _RacePlan,
    meeting_id: str,
    venue: dict[str, str],
) -> RaceModel:
    rng = random.Random(f"race|{seed}|{anchor_s}|{plan.meeting_index}|{plan.race_index}")
    race_id = _uuid(rng)
    count = len(template.runners)
    size = count if config.kind == "bench" else rng.randint(config.field_min, config.field_max)
    if size <= count:
        sources = sorted(rng.sample(range(count), size))
    else:
        sources = list(range(count)) + [rng.randrange(count) for _ in range(size - count)]
    barriers = list(range(1, size + 1))
    rng.shuffle(barriers)
    taken_names = {runner.name for runner in template.runners}
    seen_sources: set[int] = set()

    # The same rule as RaceModel.final_start/jump: scratchings and the finish must agree with the model.
    final_start = _final_start(plan.scheduled_start, plan.start_change)
    jump = final_start + plan.delay_s
    base: list[dict[str, Any]] = []
    for number, (source, barrier) in enumerate(zip(sources, barriers, strict=True), start=1):
        recorded = template.runners[source]
        clone = source in seen_sources
        seen_sources.add(source)
        weights = [rng.random() for _ in range(rng.randint(3, 10) - 1)]
        weights.append(0.0 if rng.random() < 0.7 else rng.random())
        base.append(
            {
                "entrant_id": _uuid(rng),
                "template_index": source,
                "name": _clone_name(rng, taken_names) if clone else recorded.name,
                "runner_number": number,
                "barrier": barrier,
                "barrier_position": (
                    (f"Fr{barrier}" if barrier <= 8 else f"Sr{barrier - 8}")
                    if venue["category"] == "H"
                    else None
                ),
                "base_hold": max(recorded.hold_sum, 1.0) * math.exp(rng.gauss(0.0, 0.45)),
                "base_bet": max(recorded.bet_sum, 1.0) * math.exp(rng.gauss(0.0, 0.3)),
                "scratched_at": None,
                "late_scratch": False,
                "plunge_points": 0.0,
                "row_weights": tuple(weights),
            }
        )

    # Every race has one plunge: a runner from the weaker half whose share jumps late.
    median = sorted(r["base_hold"] for r in base)[len(base) // 2]
    plunge_index = rng.choice([i for i, r in enumerate(base) if r["base_hold"] <= median])
    # 9.5+ points so the visible rise stays >= 6 after drift, rounding and the +-1 nudge.
    base[plunge_index]["plunge_points"] = rng.uniform(9.5, 12.0)
    if config.kind == "day":
        spare = [i for i in range(len(base)) if i != plunge_index]
        if plan.late_scratch and len(spare) > 3:
            late = rng.choice(spare)
            spare.remove(late)
            base[late]["scratched_at"] = final_start - 4 * 60
            base[late]["late_scratch"] = True
        if rng.random() < config.prescratch_share and len(spare) > 4:
            early = rng.choice(spare)
            base[early]["scratched_at"] = plan.scheduled_start - 3 * 3600
    runners = tuple(RunnerModel(**fields) for fields in base)

    extras = tuple(
        ExtraTrackerId(_uuid(rng), hold=rng.choice((0, 0, 1, 2)), bet=rng.choice((0, 0, 1)))
        for _ in range(rng.randint(1, 3))
    )
    slots = [(i, row) for i, runner in enumerate(runners) for row in range(len(runner.row_weights))]
    slots += [(len(runners) + e, 0) for e in range(len(extras))]
    rng.shuffle(slots)

    scale = rng.uniform(0.4, 2.5)
    pool_finals = tuple(
        (str(pool["product_type"]), half_up(float(pool["total"]) * 100.0 * scale)) for pool in template.pools
    )
    runs_at_jump = [
        i
        for i, r in enumerate(runners)
        if r.scratched_at is None or r.scratched_at > min(jump, plan.abandoned_at or jump)
    ]
    finish: list[int] = []
    while runs_at_jump:
        weights = [runners[i].base_hold for i in runs_at_jump]
        pick = rng.choices(runs_at_jump, weights=weights)[0]
        runs_at_jump.remove(pick)
        finish.append(pick)

    name, distance = rng.choice(template.race_names)
    return RaceModel(
        race_id=race_id,
        meeting_id=meeting_id,
        meeting_name=venue["name"],
        race_number=plan.race_index + 1,
        name=name,
        category=venue["category"],
        country=venue["country"],
        state=venue["state"],
        distance=distance,
        weather=venue["weather"],
        track_condition=venue["track_condition"],
        scheduled_start=plan.scheduled_start,
        start_change=plan.start_change,
        delay_s=plan.delay_s,
        closed_s=rng.randint(60, 120),
        interim_s=rng.randint(120, 300),
        abandoned_at=plan.abandoned_at,
        runners=runners,
        extras=extras,
        row_order=tuple(slots),
        pool_finals=pool_finals,
        finish_order=tuple(finish),
        plunge_index=plunge_index,
        fixed_step_s=rng.choice((30, 45, 60, 90)),
        tick_s=config.tick_s,
        key=f"{seed}|{race_id}",
    )
