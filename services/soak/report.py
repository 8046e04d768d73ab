"""The soak's arithmetic and its report: counters across restarts, missed slots, the verdict.

Pure functions and data; `services.soak.run` gathers the inputs from the database, the services'
logs and their /metrics.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from services.soak.schedule import Fault


class CounterTotals:
    """Prometheus counters of processes that restart, summed over every life of each process.

    Each scrape comes with the process's start time (`process_start_time_seconds`): a new one is a
    new process, whose counters started from zero, so its whole value counts. Increments after the
    last scrape before a SIGKILL are not seen.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}
        self._total: dict[str, float] = {}

    def observe(self, key: str, value: float, life: float) -> None:
        """One scraped sample of the counter `key` (metric name and labels) of process `life`."""
        last = self._last.get(key)
        increase = value if last is None or last[0] != life or value < last[1] else value - last[1]
        self._total[key] = self._total.get(key, 0.0) + increase
        self._last[key] = (life, value)

    def total(self, key: str) -> float:
        """The sum over every life seen so far."""
        return self._total.get(key, 0.0)

    def sum_matching(self, prefix: str, *fragments: str) -> float:
        """The total of every key that starts with `prefix` and contains every fragment."""
        return sum(
            value
            for key, value in self._total.items()
            if key.startswith(prefix) and all(fragment in key for fragment in fragments)
        )


def missed_slots(poll_times_ms: Iterable[int], start_ms: int, end_ms: int, interval_ms: int) -> int:
    """Poll slots of `interval_ms` in [start_ms, end_ms] with no poll.

    The window's edges count as polls; a gap of n intervals (rounded) holds n - 1 missed slots, so
    ordinary jitter (a gap of 1.4 intervals) misses nothing.
    """
    times = sorted(t for t in poll_times_ms if start_ms <= t <= end_ms)
    edges = [start_ms, *times, end_ms]
    missed = 0
    for before, after in itertools.pairwise(edges):
        missed += max(0, round((after - before) / interval_ms) - 1)
    return missed


@dataclass(frozen=True, slots=True)
class FaultResult:
    """One fault as it ran: when (real seconds after the start) and how long recovery took."""

    fault: Fault
    started_s: float
    recovered_after_s: float | None  # None: not recovered before the next fault or the end

    def line(self) -> str:
        """One row of the report's fault table."""
        length = f" ({self.fault.duration_s:.0f} s)" if self.fault.duration_s else ""
        recovery = "not recovered" if self.recovered_after_s is None else f"{self.recovered_after_s:.1f} s"
        return f"  {self.started_s:7.1f} s  {self.fault.kind + length:<24} recovered in {recovery}"


@dataclass(slots=True)
class SoakReport:
    """Everything the soak reports; `problems()` decides the exit code."""

    minutes: float
    seed: int
    speed: float
    races: int = 0
    entrants: int = 0
    polls_ok: int = 0
    polls_caught_up: int = 0
    polls_spooled: int = 0
    polls_failed: Mapping[str, int] = field(default_factory=dict)
    spool_dropped: int = 0
    tab_retries: float = 0.0
    committed: int = 0
    stored: int = 0
    lost: Sequence[tuple[str, int]] = ()
    duplicate_rows: int = 0
    invariant_violations: Sequence[str] = ()
    missed_by_tier: Mapping[str, float] = field(default_factory=dict)
    final_minutes_races: int = 0
    final_minutes_missing_slots: int = 0
    final_minutes_expected_slots: int = 0
    faults: Sequence[FaultResult] = ()
    restarts: Mapping[str, int] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """What makes the run fail: a lost poll, a duplicate row, a broken invariant."""
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} committed polls are not in the database")
        if self.duplicate_rows:
            found.append(f"{self.duplicate_rows} duplicate rows")
        if self.invariant_violations:
            found.append(f"the Σ-increments invariant fails for {len(self.invariant_violations)} entrants")
        if self.committed == 0:
            found.append("no poll was committed")
        return found

    def lines(self) -> list[str]:
        """The report as text lines."""
        failed_total = sum(self.polls_failed.values())
        failed = ", ".join(f"{stage} {count}" for stage, count in sorted(self.polls_failed.items())) or "none"
        missed = (
            ", ".join(f"{tier} {count:.0f}" for tier, count in sorted(self.missed_by_tier.items())) or "none"
        )
        recoveries = [r.recovered_after_s for r in self.faults if r.recovered_after_s is not None]
        out = [
            f"soak report: {self.minutes:g} min at {self.speed:g}x, seed {self.seed}: "
            f"{self.races} races, {self.entrants} entrants",
            f"polls committed          {self.committed}  (directly {self.polls_ok}, "
            f"from the outage spool {self.polls_caught_up})",
            f"polls spooled            {self.polls_spooled}  (dropped from the spool: {self.spool_dropped})",
            f"polls failed             {failed_total}  ({failed}); TAB retries {self.tab_retries:.0f}",
            f"polls lost               {len(self.lost)}  (committed, per the fetchers' logs, "
            f"but not in race_polls; {self.stored} polls stored)",
            f"duplicate rows           {self.duplicate_rows}",
            f"Σ-increments invariant   {'holds' if not self.invariant_violations else 'BROKEN'} for "
            f"{self.entrants - len(self.invariant_violations)} of {self.entrants} entrants",
            f"missed polls (scheduler) {missed}",
            f"final 5 minutes          {self.final_minutes_missing_slots} of "
            f"{self.final_minutes_expected_slots} 15 s slots without a stored poll, "
            f"{self.final_minutes_races} races",
            "restarts                 "
            + (", ".join(f"{name} {count}" for name, count in sorted(self.restarts.items())) or "none"),
            f"faults                   {len(self.faults)}"
            + (
                f"; recovery median {_median(recoveries):.1f} s, max {max(recoveries):.1f} s"
                if recoveries
                else ""
            ),
            *(result.line() for result in self.faults),
        ]
        problems = self.problems()
        out.append("verdict: " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)))
        return out


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2 if ordered else math.nan
