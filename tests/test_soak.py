"""The pure parts of `raceday soak`: the fault schedule from a seed, and the report's arithmetic."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from services.soak.report import CounterTotals, FaultResult, SoakReport, missed_slots
from services.soak.schedule import (
    COOLDOWN_S,
    FAULT_KINDS,
    RECOVERY_ROOM_S,
    WARMUP_S,
    Fault,
    build_schedule,
    repeats_for,
)


def test_the_schedule_is_a_function_of_the_seed() -> None:
    assert build_schedule(7, 10) == build_schedule(7, 10)
    assert build_schedule(7, 10) != build_schedule(8, 10)


@pytest.mark.parametrize("seed", range(20))
def test_ten_minutes_hold_every_fault_kind_twice_without_overlap(seed: int) -> None:
    faults = build_schedule(seed, 10)
    assert Counter(f.kind for f in faults) == {kind: 2 for kind in FAULT_KINDS}
    assert [f.at_s for f in faults] == sorted(f.at_s for f in faults)
    assert faults[0].at_s >= WARMUP_S
    assert faults[-1].ends_s <= 10 * 60 - COOLDOWN_S
    for fault, following in itertools.pairwise(faults):
        # Time for most of a recovery between one fault's end and the next one's start.
        assert following.at_s - fault.ends_s >= RECOVERY_ROOM_S - 0.1, (fault, following)
    outage = [f for f in faults if f.kind == "postgres_outage"]
    assert all(f.duration_s == 20 for f in outage)


def test_short_runs_hold_each_kind_once_and_too_short_ones_are_refused() -> None:
    assert repeats_for(5) == 1
    assert repeats_for(10) == 2
    assert repeats_for(30) >= 6
    assert Counter(f.kind for f in build_schedule(1, 5)) == dict.fromkeys(FAULT_KINDS, 1)
    with pytest.raises(ValueError, match="at least 5 minutes"):
        build_schedule(1, 4)


def test_counter_totals_survive_restarts() -> None:
    totals = CounterTotals()
    key = 'raceday_polls_total{outcome="ok",tier="15s"}'
    for value in (3, 10, 12):  # one process
        totals.observe(key, value, life=100.0)
    for value in (20, 25):  # restarted, and already past the old value at its first scrape
        totals.observe(key, value, life=200.0)
    totals.observe(key, 4, life=300.0)  # restarted again
    totals.observe('raceday_polls_total{outcome="failed",tier="15s"}', 4, life=300.0)
    assert totals.total(key) == 12 + 25 + 4
    assert totals.sum_matching("raceday_polls_total", 'outcome="ok"') == 41
    assert totals.sum_matching("raceday_polls_total") == 45
    assert totals.total("absent") == 0


def test_missed_slots_count_gaps_not_jitter() -> None:
    start, interval = 1_000_000, 15_000
    end = start + 5 * 60_000
    every_slot = [start + i * interval for i in range(21)]
    assert missed_slots(every_slot, start, end, interval) == 0
    jittered = [t + (4_000 if i % 2 else -3_000) for i, t in enumerate(every_slot)]
    assert missed_slots(jittered, start, end, interval) == 0
    # Three polls in a row gone: a 60 s gap holds three missed slots.
    assert missed_slots(every_slot[:5] + every_slot[8:], start, end, interval) == 3
    # Polls outside the window do not count; nothing at all misses every slot but the edges.
    assert missed_slots([start - 10_000, end + 10_000], start, end, interval) == 19


def report(**changes: object) -> SoakReport:
    base = SoakReport(minutes=10, seed=1, speed=60, races=80, entrants=700, committed=5000, stored=5000)
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def test_a_clean_run_passes_and_says_so() -> None:
    clean = report(
        faults=[FaultResult(Fault(61.0, "kill_writer", 0.0), 61.2, 3.5)], missed_by_tier={"15s": 2.0}
    )
    assert clean.problems() == []
    text = "\n".join(clean.lines())
    assert "verdict: PASS" in text
    assert "holds for 700 of 700 entrants" in text
    assert "kill_writer" in text and "recovered in 3.5 s" in text


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"lost": [("R1", 1)]}, "1 committed polls are not in the database"),
        ({"duplicate_rows": 2}, "2 duplicate rows"),
        ({"invariant_violations": ["E1"]}, "invariant fails for 1 entrants"),
        ({"committed": 0}, "no poll was committed"),
    ],
)
def test_loss_duplicates_and_a_broken_invariant_fail_the_run(
    changes: dict[str, object], problem: str
) -> None:
    failed = report(**changes)
    assert any(problem in found for found in failed.problems()), failed.problems()
    assert failed.lines()[-1].startswith("verdict: FAIL")
