"""`raceday backtest --from D --to D`: did the late Win money win?

For every final race of the NZ days with results, and for each window W of the last 5, 2 and 1
minutes before betting closed (the actual start, else the advertised start): each runner's Win
money in the window is its Win pool amount at the close minus its amount W minutes earlier (its
latest stored poll at or before each instant; none yet counts as 0). The runner with the most
(ties: the lower runner number) is the window's pick, if any runner gained money. The figures
per window: races behind them, win and place strike rates with 95% Wilson intervals (honest
about small samples), and the mean return of $1 on the pick at the final tote dividends
(Win; Place where the dividend names the runner), with the races each return is known for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from psycopg import AsyncConnection

WINDOWS: Final = (5, 2, 1)
Z95: Final = 1.959963984540054
DEFAULT_PLACES: Final = 3


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Pick:
    """The runner with the most Win money in one window of one race, and how it finished."""

    race_id: str
    window: int
    entrant_id: str
    runner_number: int | None
    window_cents: int
    share: float
    position: int | None
    won: bool
    placed: bool
    win_dividend: float | None
    place_dividend: float | None


@dataclass(slots=True)
class WindowFigures:
    """The backtest's figures for one window."""

    window: int
    races: int = 0
    wins: int = 0
    places: int = 0
    win_returns: list[float] = field(default_factory=list)
    place_returns: list[float] = field(default_factory=list)

    @property
    def win_rate(self) -> float | None:
        """Share of the races the pick won."""
        return self.wins / self.races if self.races else None

    @property
    def place_rate(self) -> float | None:
        """Share of the races the pick placed."""
        return self.places / self.races if self.races else None

    @property
    def win_interval(self) -> tuple[float, float]:
        """95% Wilson interval of the win strike rate."""
        return wilson_interval(self.wins, self.races)

    @property
    def place_interval(self) -> tuple[float, float]:
        """95% Wilson interval of the place strike rate."""
        return wilson_interval(self.places, self.races)

    @property
    def win_return(self) -> float | None:
        """Mean return of $1 Win on the pick (dollars), over the races with a known return."""
        return sum(self.win_returns) / len(self.win_returns) if self.win_returns else None

    @property
    def place_return(self) -> float | None:
        """Mean return of $1 Place on the pick (dollars), over the races with a known return."""
        return sum(self.place_returns) / len(self.place_returns) if self.place_returns else None


FINAL_RACES: Final = """
SELECT r.race_id, coalesce(r.actual_start, r.start_time), r.positions_paid, rr.results_data, rr.dividends_data
FROM races r JOIN race_results rr USING (race_id)
WHERE r.status = 'final' AND rr.results_available AND r.race_date_nz >= %s AND r.race_date_nz <= %s
ORDER BY r.start_time, r.race_id
"""
WIN_AMOUNTS: Final = """
SELECT m.entrant_id, e.runner_number, m.event_timestamp, m.win_pool_amount
FROM money_flow_history m JOIN entrants e USING (entrant_id)
WHERE m.race_id = %s AND m.event_timestamp >= %s AND m.event_timestamp <= %s
ORDER BY m.event_timestamp, m.id
"""


def _amount_at(rows: Sequence[tuple[datetime, int]], instant: datetime) -> int:
    amount = 0
    for at, cents in rows:
        if at > instant:
            break
        amount = cents
    return amount


def _finish(results: Any, entrant_id: str, runner_number: int | None) -> int | None:
    for item in results if isinstance(results, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("entrant_id") == entrant_id or (
            runner_number is not None and item.get("runner_number") == runner_number
        ):
            position = item.get("position")
            return position if isinstance(position, int) else None
    return None


def _dividend(dividends: Any, product: str, runner_number: int | None, *, winner: bool) -> float | None:
    """The Final dividend of `product` for the runner (Win: the product's one Final dividend)."""
    for item in dividends if isinstance(dividends, list) else []:
        if not isinstance(item, dict) or item.get("product_name") != product:
            continue
        if str(item.get("status", "")).lower() != "final" or not isinstance(
            item.get("dividend"), int | float
        ):
            continue
        positions = item.get("positions") or []
        numbers = {p.get("runner_number") for p in positions if isinstance(p, dict)}
        if (winner and not numbers) or runner_number in numbers:
            return float(item["dividend"])
    return None


def pick_for_window(
    race_id: str, window: int, close: datetime, rows: Sequence[tuple[str, int | None, datetime, int]]
) -> tuple[str, int | None, int, float] | None:
    """(entrant, runner number, window cents, share) of the window's pick; None without new money."""
    by_entrant: dict[str, list[tuple[datetime, int]]] = {}
    numbers: dict[str, int | None] = {}
    for entrant_id, number, at, cents in rows:
        by_entrant.setdefault(entrant_id, []).append((at, cents))
        numbers[entrant_id] = number
    start = close - timedelta(minutes=window)
    gains = {e: _amount_at(r, close) - _amount_at(r, start) for e, r in by_entrant.items()}
    total = sum(g for g in gains.values() if g > 0)
    if total <= 0:
        return None
    best = min(gains, key=lambda e: (-gains[e], numbers[e] if numbers[e] is not None else 1 << 30, e))
    return best, numbers[best], gains[best], gains[best] / total


async def backtest(
    conn: AsyncConnection[Any], first: date, last: date
) -> tuple[list[WindowFigures], list[Pick]]:
    """The figures per window (5, 2, 1 minutes) and every pick behind them."""
    figures = {window: WindowFigures(window) for window in WINDOWS}
    picks: list[Pick] = []
    cur = await conn.execute(FINAL_RACES, (first, last))
    for race_id, close, positions_paid, results, dividends in await cur.fetchall():
        amounts = await conn.execute(WIN_AMOUNTS, (race_id, close - timedelta(days=1), close))
        rows = [(str(e), n, at, int(c)) for e, n, at, c in await amounts.fetchall()]
        places = positions_paid or DEFAULT_PLACES
        for window in WINDOWS:
            chosen = pick_for_window(race_id, window, close, rows)
            if chosen is None:
                continue
            entrant_id, number, cents, share = chosen
            position = _finish(results, entrant_id, number)
            won = position == 1
            placed = position is not None and position <= places
            win_dividend = _dividend(dividends, "Pool Win", number, winner=True) if won else None
            place_dividend = _dividend(dividends, "Pool Place", number, winner=False) if placed else None
            picks.append(
                Pick(
                    race_id,
                    window,
                    entrant_id,
                    number,
                    cents,
                    share,
                    position,
                    won,
                    placed,
                    win_dividend,
                    place_dividend,
                )
            )
            row = figures[window]
            row.races += 1
            row.wins += won
            row.places += placed
            if not won:
                row.win_returns.append(0.0)
            elif win_dividend is not None:
                row.win_returns.append(win_dividend)
            if not placed:
                row.place_returns.append(0.0)
            elif place_dividend is not None:
                row.place_returns.append(place_dividend)
    return list(figures.values()), picks


def format_figures(figures: Sequence[WindowFigures]) -> list[str]:
    """The backtest as a table of text lines."""

    def rate(value: float | None, interval: tuple[float, float]) -> str:
        if value is None:
            return "-"
        return f"{value:6.1%} [{interval[0]:.1%}, {interval[1]:.1%}]"

    def money(value: float | None, count: int) -> str:
        return "-" if value is None else f"${value:.2f} (n={count})"

    lines = [
        f"{'window':<10} {'races':>5}  {'win strike (95% CI)':<26} {'place strike (95% CI)':<26} "
        f"{'$1 Win returns':<18} {'$1 Place returns'}"
    ]
    for row in figures:
        lines.append(
            f"last {row.window} min{'':<1} {row.races:>5}  {rate(row.win_rate, row.win_interval):<26} "
            f"{rate(row.place_rate, row.place_interval):<26} "
            f"{money(row.win_return, len(row.win_returns)):<18} "
            f"{money(row.place_return, len(row.place_returns))}"
        )
    return lines
