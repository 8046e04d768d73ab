"""A race's observable state at one simulated instant (spec nztab-api §10.4, steps 3 to 6).

Pure functions of the race model and the instant: pools follow a monotone curve to
the jump, money-tracker shares drift with a seeded random walk plus a late plunge,
odds follow the shares. Everything freezes at the jump (or at abandonment).

Injected plunges (the admin API's knob, plunges.py) redirect money rather than shares:
while one is in its bucket, its runner takes a set share of the money the runners' pools
gain and the other runners split the rest by their shares; before the bucket nothing
changes, after it the money bet stays and new money is shared as without the plunge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from services.tabsim.curves import (
    apportion,
    half_up,
    ladder_price,
    pool_fraction,
    round_tenth,
    unit_hash,
    value_noise,
)
from services.tabsim.scenario import RaceModel

DRIFT: Final = 0.35  # log-share amplitude of the random walk
DRIFT_PERIOD_S: Final = 600.0
PLUNGE_WINDOW_S: Final = 120
FIXED_LAG_S: Final = 60
MOVER_WINDOW_S: Final = 300
MIN_SHARE: Final = 0.5  # percent; caps odds for outsiders
POOL_MARGIN: Final = 0.85
FIXED_MARGIN: Final = 0.9


@dataclass(frozen=True, slots=True)
class RunnerState:
    """One runner at one instant."""

    scratched: bool
    late_scratched: bool
    scratch_time: int
    share: float
    hold: int
    bet: int
    pool_win: float | None
    pool_place: float | None
    fixed_win: float | None
    fixed_place: float | None
    favourite: bool
    mover: bool


@dataclass(frozen=True, slots=True)
class RaceState:
    """Everything that varies with time in one race's payload."""

    at: int
    status: str
    advertised_start: int
    actual_start: int
    pools: tuple[tuple[str, int], ...]
    runners: tuple[RunnerState, ...]
    tracker_rows: tuple[tuple[str, int, int], ...]
    favourite: int | None
    mover: int | None

    @property
    def hold_total(self) -> int:
        """Sum of every tracker row's hold percentage (the spec wants 100 ± 3)."""
        return sum(row[1] for row in self.tracker_rows)


def _scratched(race: RaceModel, index: int, t: float) -> bool:
    at = race.runners[index].scratched_at
    return at is not None and t >= at


def hold_shares(race: RaceModel, t: float) -> list[float]:
    """Each runner's hold share in percent at `t` (0 once scratched); the extra ids keep the rest."""
    t = min(t, race.freeze_at)
    shares = _drifting_shares(race, t)
    if race.injected_plunges and sum(shares) > 0:
        return _plunged_shares(race, t, shares)
    return shares


def _drifting_shares(race: RaceModel, t: float) -> list[float]:
    """The shares without injected plunges: the seeded drift and the race's own late plunge."""
    t = min(t, race.freeze_at)
    budget = 100.0 - sum(extra.hold for extra in race.extras)
    weights = [
        0.0
        if _scratched(race, i, t)
        else runner.base_hold * math.exp(DRIFT * value_noise(f"{race.key}|h|{i}", t, DRIFT_PERIOD_S))
        for i, runner in enumerate(race.runners)
    ]
    total = sum(weights)
    if total <= 0:
        return weights
    shares = [budget * w / total for w in weights]
    p = race.plunge_index
    if p is not None and shares[p] > 0:
        ramp = min(1.0, max(0.0, (t - (race.jump - PLUNGE_WINDOW_S)) / PLUNGE_WINDOW_S))
        rise = race.runners[p].plunge_points * ramp
        others = budget - shares[p]
        if rise > 0 and others > rise:
            scale = (others - rise) / others
            shares = [s * scale for s in shares]
            shares[p] = budget - (others - rise)
    return shares


def _pool_fraction_at(race: RaceModel, t: float) -> float:
    """The share of the final pools bet by instant `t` (every pool follows the same curve)."""
    if math.isinf(t):
        return 0.0
    return pool_fraction(race.jump - min(t, race.freeze_at))


def _plunged_shares(race: RaceModel, t: float, shares: list[float]) -> list[float]:
    """`shares` (the drifting shares at `t`) with the race's injected plunges applied.

    Worked in money, in units of (share of the final pool) x percent, so that a runner's
    money is what the money flow sees (pool total x hold percentage): each window that has
    opened moves money from what the drifting model gave each runner in it to what the
    plunge gives. The moves sum to zero, so the shares still sum to the runners' budget.
    """
    budget = sum(shares)
    fraction = _pool_fraction_at(race, t)
    money = [fraction * share for share in shares]
    by_bucket: dict[int, list[tuple[int, float]]] = {}
    windows: dict[int, tuple[tuple[float, float], ...]] = {}
    for plunge in race.injected_plunges:
        by_bucket.setdefault(plunge.bucket, []).append((plunge.index, plunge.share))
        windows[plunge.bucket] = plunge.windows
    opened = [
        (opens, closes, takers)
        for bucket, takers in by_bucket.items()
        for opens, closes in windows[bucket]
        if t > opens
    ]
    if not opened:
        # Before every bucket the race is exactly as laid out, to the last bit of each share.
        return shares
    for opens, closes, takers in opened:
        _redirect(race, money, budget, opens=opens, until=min(t, closes), takers=takers)
    for i in range(len(money)):
        # A runner scratched since is refunded; a drift that would leave a runner below its
        # redirected money never makes it negative (both rare: the shares renormalise).
        if _scratched(race, i, t) or money[i] < 0:
            money[i] = 0.0
    total = sum(money)
    if total <= 0:
        return shares
    return [budget * m / total for m in money]


def _redirect(
    race: RaceModel,
    money: list[float],
    budget: float,
    *,
    opens: float,
    until: float,
    takers: list[tuple[int, float]],
) -> None:
    """Move the money the runners gained in (opens, until] to where the plunges send it."""
    start_fraction = _pool_fraction_at(race, opens)
    end_fraction = _pool_fraction_at(race, until)
    added = (end_fraction - start_fraction) * budget
    if added <= 0:
        return
    at_end = _drifting_shares(race, until)
    at_start = _drifting_shares(race, opens) if start_fraction > 0 else [0.0] * len(money)
    taken = sum(share for _, share in takers)
    taker_indices = {index for index, _ in takers}
    # The rest goes to the other runners by their shares at the end: never a negative increment.
    weights = [0.0 if i in taker_indices else at_end[i] for i in range(len(money))]
    weight_sum = sum(weights)
    target = [(1.0 - taken) * added * w / weight_sum if weight_sum > 0 else 0.0 for w in weights]
    for index, share in takers:
        # With every other runner scratched the takers share the rest as well.
        target[index] += share * added + (0.0 if weight_sum > 0 else (1.0 - taken) * added * share / taken)
    for i in range(len(money)):
        gained = end_fraction * at_end[i] - start_fraction * at_start[i]
        money[i] += target[i] - gained


def _bet_shares(race: RaceModel, t: int, holds: list[float]) -> list[float]:
    """Bet shares: flatter than hold (many small bets on outsiders), with their own drift."""
    t = min(t, race.freeze_at)
    budget = 100.0 - sum(extra.bet for extra in race.extras)
    flat = [
        0.0
        if holds[i] <= 0
        else math.sqrt(runner.base_bet) * math.exp(0.25 * value_noise(f"{race.key}|b|{i}", t, DRIFT_PERIOD_S))
        for i, runner in enumerate(race.runners)
    ]
    flat_total = sum(flat) or 1.0
    hold_total = sum(holds) or 1.0
    return [budget * (0.5 * flat[i] / flat_total + 0.5 * holds[i] / hold_total) for i in range(len(holds))]


def _integer_percentages(race: RaceModel, shares: list[float], budget: int, tag: str, t: int) -> list[int]:
    """Whole percentages summing to `budget`, then nudged by at most one point (sum 100 ± 1)."""
    values = apportion(budget, shares)
    nudge = int(unit_hash(race.key, tag, t) * 3) - 1
    live = [i for i, v in enumerate(values) if v >= 1]
    if nudge and live:
        values[live[int(unit_hash(race.key, tag, "who", t) * len(live))]] += nudge
    return values


def _pool_odds(share: float) -> tuple[float, float]:
    win = max(1.1, round_tenth(POOL_MARGIN / (max(share, MIN_SHARE) / 100.0)))
    return win, max(1.0, round_tenth(1.0 + (win - 1.0) / 3.5))


def _fixed_odds(share: float) -> tuple[float, float]:
    win = ladder_price(FIXED_MARGIN / (max(share, MIN_SHARE) / 100.0))
    return win, ladder_price(1.0 + (win - 1.0) / 4.0)


def state_at(race: RaceModel, clock_s: float) -> RaceState:
    """The race as the API shows it at simulated instant `clock_s` (epoch seconds)."""
    t = race.quantise(clock_s)
    status = race.status_at(t)
    frozen = min(t, race.freeze_at)
    fraction = pool_fraction(race.jump - frozen)
    pools = tuple((product, half_up(final * fraction)) for product, final in race.pool_finals)

    shares = hold_shares(race, t)
    hold_budget = 100 - sum(extra.hold for extra in race.extras)
    bet_budget = 100 - sum(extra.bet for extra in race.extras)
    holds = _integer_percentages(race, shares, hold_budget, "hold", frozen)
    bets = _integer_percentages(race, _bet_shares(race, t, shares), bet_budget, "bet", frozen)

    fixed_at = (frozen - FIXED_LAG_S) // race.fixed_step_s * race.fixed_step_s
    fixed_shares = hold_shares(race, fixed_at)
    earlier = hold_shares(race, frozen - MOVER_WINDOW_S)

    scratched = [_scratched(race, i, t) for i in range(len(race.runners))]
    fixed = [None if scratched[i] else _fixed_odds(fixed_shares[i] or shares[i]) for i in range(len(shares))]
    live = [i for i in range(len(shares)) if not scratched[i]]
    favourite = min(live, key=lambda i: (fixed[i] or (math.inf, 0.0))[0], default=None)
    mover = max(live, key=lambda i: shares[i] - earlier[i], default=None)

    runners: list[RunnerState] = []
    for i, runner in enumerate(race.runners):
        pool = None if scratched[i] else _pool_odds(shares[i])
        odds = fixed[i]
        runners.append(
            RunnerState(
                scratched=scratched[i],
                late_scratched=scratched[i] and runner.late_scratch,
                scratch_time=runner.scratched_at if scratched[i] and runner.scratched_at else 0,
                share=shares[i],
                hold=0 if scratched[i] else holds[i],
                bet=0 if scratched[i] else bets[i],
                pool_win=pool[0] if pool else None,
                pool_place=pool[1] if pool else None,
                fixed_win=odds[0] if odds else None,
                fixed_place=odds[1] if odds else None,
                favourite=i == favourite,
                mover=i == mover,
            )
        )

    rows: list[tuple[str, int, int]] = []
    splits = [
        (apportion(state.hold, runner.row_weights), apportion(state.bet, runner.row_weights))
        for runner, state in zip(race.runners, runners, strict=True)
    ]
    for owner, row in race.row_order:
        if owner < len(race.runners):
            hold_rows, bet_rows = splits[owner]
            rows.append((race.runners[owner].entrant_id, hold_rows[row], bet_rows[row]))
        else:
            extra = race.extras[owner - len(race.runners)]
            rows.append((extra.entrant_id, extra.hold, extra.bet))

    return RaceState(
        at=t,
        status=status,
        advertised_start=race.advertised_start(t),
        actual_start=race.jump if status in ("Closed", "Interim", "Final") else 0,
        pools=pools,
        runners=tuple(runners),
        tracker_rows=tuple(rows),
        favourite=favourite,
        mover=mover,
    )
