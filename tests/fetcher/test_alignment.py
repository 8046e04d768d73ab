"""Cache-aligned polling: the scheduler moves a race's polls to just after the TAB's refreshes.

The real Scheduler runs against a modelled TAB cache (each race refreshed every 15 s at a phase
of its own) on a clock the test moves, so every due time and data age is exact.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, cast

import pytest

from services.common.clock import Clock
from services.common.config import Env
from services.fetcher.alignment import REFRESH_INTERVAL_MS, TOLERANCE_MS, RefreshPhase
from services.fetcher.pipeline import PollResult, RacePipeline
from services.fetcher.scheduler import Scheduler, TrackedRace
from services.fetcher.settings import FetcherSettings

START_MS = 1_800_000_000_000
STEP_MS = 50
MARGIN_MS = 1000


class ManualClock(Clock):
    """A clock that moves only when the test moves it."""

    def __init__(self, now_ms: int) -> None:
        object.__setattr__(self, "speed", 1.0)
        object.__setattr__(self, "anchor_ms", 0)
        object.__setattr__(self, "_now", [now_ms])

    def now_ms(self) -> int:
        return cast(list[int], object.__getattribute__(self, "_now"))[0]

    def advance(self, ms: int) -> None:
        cast(list[int], object.__getattribute__(self, "_now"))[0] += ms


@dataclass
class CachedTab:
    """The TAB's answers: polls at the clock's time; data as of a refresh chosen per race."""

    clock: ManualClock
    generated: Callable[[str, int], int | None]
    polls: dict[str, list[tuple[int, int | None]]] = field(default_factory=dict)
    spool = None
    last_success_ms: int | None = None
    breaker_state = "closed"

    async def poll(self, race_id: str, *, fetch_budget_s: float, baseline: bool = False) -> PollResult:
        now = self.clock.now_ms()
        generated = self.generated(race_id, now)
        self.polls.setdefault(race_id, []).append((now, generated))
        return PollResult(
            race_id=race_id, outcome="ok", status="open", polled_at_ms=now, generated_at_ms=generated
        )

    def forget(self, race_id: str) -> None:
        pass


def refreshed_at(phase_ms: dict[str, int]) -> Callable[[str, int], int]:
    """A cache refreshed every interval at each race's phase."""

    def generated(race_id: str, now_ms: int) -> int:
        return now_ms - (now_ms - phase_ms[race_id]) % REFRESH_INTERVAL_MS

    return generated


async def run_day(
    generated: Callable[[str, int], int | None], races: list[str], *, align: bool, minutes: int = 4
) -> tuple[CachedTab, Scheduler]:
    """Four minutes of the 15 s tier for races starting five minutes from now."""
    clock = ManualClock(START_MS)
    tab = CachedTab(clock, generated)
    env = {"RACEDAY_CACHE_ALIGN": "true" if align else "false", "RACEDAY_CACHE_ALIGN_MARGIN_S": "1"}
    settings = FetcherSettings.from_env(Env(env))
    scheduler = Scheduler(settings, cast(RacePipeline, tab), cast(Any, None), clock)
    for index, race_id in enumerate(races):
        scheduler.races[race_id] = TrackedRace(
            race_id=race_id,
            meeting_name="M",
            race_number=index + 1,
            status="open",
            start_time_ms=START_MS + 5 * 60_000,
            next_due_ms=START_MS + index * 700,
        )
    for _ in range(minutes * 60_000 // STEP_MS):
        scheduler.dispatch_due()
        for _ in range(3):  # let the started polls finish
            await asyncio.sleep(0)
        clock.advance(STEP_MS)
    return tab, scheduler


def ages(polls: list[tuple[int, int | None]]) -> list[int]:
    return [polled - generated for polled, generated in polls if generated is not None]


def gaps(polls: list[tuple[int, int | None]]) -> list[int]:
    return [later[0] - earlier[0] for earlier, later in pairwise(polls)]


# First polls (0.7 s apart) read data 12.7, 5.75 and 11.4 s old, and r4's 0.2 s old.
PHASES = {"r1": 2_300, "r2": 9_950, "r3": 5_000, "r4": 1_900}


async def test_polls_move_to_just_after_each_races_refresh() -> None:
    tab, scheduler = await run_day(refreshed_at(PHASES), list(PHASES), align=True)
    for race_id, polls in tab.polls.items():
        assert len(polls) >= 15
        # Two polls learn the phase, the third is moved; from then on every poll reads data
        # `margin` old (to the dispatcher's step), where a fixed phase read it up to 15 s old.
        # A race already polled just after its refreshes (r4) is left where it is.
        expected = (0, MARGIN_MS + TOLERANCE_MS) if race_id == "r4" else (MARGIN_MS, MARGIN_MS + STEP_MS)
        assert all(expected[0] <= age <= expected[1] for age in ages(polls)[2:]), (race_id, ages(polls))
        # Only ever later, never more often than the cadence, and by less than one interval once.
        assert all(REFRESH_INTERVAL_MS <= gap < 2 * REFRESH_INTERVAL_MS for gap in gaps(polls))
        assert sum(gap > REFRESH_INTERVAL_MS + STEP_MS for gap in gaps(polls)) <= 1
    assert scheduler.missed_by_tier["15s"] == 0


async def test_without_alignment_the_phase_stays_fixed() -> None:
    tab, scheduler = await run_day(refreshed_at(PHASES), list(PHASES), align=False)
    for polls in tab.polls.values():
        assert all(REFRESH_INTERVAL_MS <= gap <= REFRESH_INTERVAL_MS + STEP_MS for gap in gaps(polls))
    # The fixed phase reads whatever age the race's refresh phase gives it.
    assert min(ages(tab.polls["r1"])) > 10_000
    assert scheduler.missed_by_tier["15s"] == 0


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(lambda race_id, now: None, id="no generated_time"),
        pytest.param(lambda race_id, now: now, id="rendered on every request"),
        pytest.param(lambda race_id, now: now - random.Random(now).randrange(15_000), id="erratic"),
        pytest.param(lambda race_id, now: now + 60_000, id="in the future"),
        pytest.param(lambda race_id, now: START_MS - 3_600_000, id="never refreshed"),
    ],
)
async def test_a_source_without_a_steady_phase_keeps_the_fixed_cadence(
    source: Callable[[str, int], int | None],
) -> None:
    tab, _ = await run_day(source, ["r1", "r2"], align=True, minutes=3)
    for polls in tab.polls.values():
        assert len(polls) >= 11
        assert all(REFRESH_INTERVAL_MS <= gap <= REFRESH_INTERVAL_MS + STEP_MS for gap in gaps(polls))


def test_a_phase_is_trusted_again_after_two_polls_agree() -> None:
    phase = RefreshPhase(margin_ms=MARGIN_MS)
    assert phase.observe(10_000, 2_000) == 0  # one refresh seen: nothing to go by yet
    assert phase.observe(25_000, 17_000) == REFRESH_INTERVAL_MS + MARGIN_MS - 8_000
    assert phase.observe(40_000, None) == 0  # lost: back to a fixed phase
    assert phase.observe(55_000, 47_000) == 0
    assert phase.observe(70_000, 62_000 + 3 * TOLERANCE_MS) == 0  # off the phase: start again
    assert phase.observe(85_000, 77_000 + 3 * TOLERANCE_MS) == REFRESH_INTERVAL_MS + MARGIN_MS - (
        8_000 - 3 * TOLERANCE_MS
    )
    assert phase.observe(95_250, 94_250) == 0  # already just after a refresh
