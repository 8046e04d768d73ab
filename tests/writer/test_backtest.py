"""`raceday backtest`: the runner with the most Win money in each late window, how it finished, and
Wilson intervals that stay honest about a sample of one race."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.writer.backtest import backtest, format_figures, wilson_interval
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from tests.writer.builder import START, fetch, minutes_before, new_race, poll, raceday, write


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [(5, 10, 0.2366, 0.7634), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (1, 1, 0.2065, 1.0)],
)
def test_wilson_intervals(successes: int, trials: int, low: float, high: float) -> None:
    got = wilson_interval(successes, trials)
    assert got == pytest.approx((low, high), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


async def _add_win_money(db: Database, race_id: str, entrant_id: str, at: datetime, cents: int) -> None:
    """One money-flow row of an entrant at `at` with a Win pool amount of `cents`."""
    async with db.write_connection() as conn:
        await conn.execute(
            """INSERT INTO money_flow_history (race_id, entrant_id, event_timestamp, advertised_start,
                   time_to_start, time_interval, interval_type, win_pool_total, place_pool_total,
                   win_pool_amount, place_pool_amount, total_pool_amount, incremental_win_amount,
                   incremental_place_amount, is_baseline)
               VALUES (%s, %s, %s, %s, 1, 1, '30s', 1000000, 500000, %s, 0, %s, 0, 0, false)""",
            (race_id, entrant_id, at, START, cents, cents),
        )


async def test_the_late_money_picks_and_how_they_finished(
    db: Database, maintainer: PartitionMaintainer, migrated_database_url: str
) -> None:
    race = new_race(runners=4)
    first = poll(race, minutes_before(START, 30))
    await write(db, maintainer, first)
    await write(
        db, maintainer, poll(race, START + timedelta(minutes=8), index=1, status="final", with_results=True)
    )
    [(close,)] = await fetch(
        db, "SELECT coalesce(actual_start, start_time) FROM races WHERE race_id = %s", race.race_id
    )
    amounts = dict(
        await fetch(
            db,
            "SELECT entrant_id, win_pool_amount FROM money_flow_history WHERE race_id = %s",
            race.race_id,
        )
    )
    one, two = race.entrant_id(1), race.entrant_id(2)
    # Runner 1 gains $50 three minutes out (in the 5-minute window only); runner 2 gains $30 thirty
    # seconds out (in every window).
    await _add_win_money(db, race.race_id, one, close - timedelta(minutes=3), amounts[one] + 5000)
    await _add_win_money(db, race.race_id, two, close - timedelta(seconds=30), amounts[two] + 3000)

    async with db.read_connection() as conn:
        figures, picks = await backtest(
            conn, START.date() - timedelta(days=1), START.date() + timedelta(days=1)
        )
    chosen = {(p.window, p.runner_number, p.window_cents, p.position) for p in picks}
    assert chosen == {(5, 1, 5000, 1), (2, 2, 3000, 2), (1, 2, 3000, 2)}
    assert [p.share for p in picks if p.window == 5] == [pytest.approx(5000 / 8000)]
    by_window = {row.window: row for row in figures}
    five, two_min = by_window[5], by_window[2]
    assert (five.races, five.wins, five.places, five.win_returns) == (1, 1, 1, [3.4])
    assert (two_min.races, two_min.wins, two_min.places, two_min.win_returns) == (1, 0, 1, [0.0])
    # Runner 2 placed, but the synthetic race pays no Place dividend: that return is unknown.
    assert two_min.place_returns == [] and two_min.place_return is None
    assert five.win_interval == pytest.approx(wilson_interval(1, 1))
    lines = format_figures(figures)
    assert lines[1].startswith("last 5 min") and "100.0% [20.7%, 100.0%]" in lines[1]
    assert "$3.40 (n=1)" in lines[1]
    # The command prints the same table.
    code, output = await raceday(
        ["backtest", "--from", "2025-07-16", "--to", "2025-07-18"], migrated_database_url
    )
    assert code == 0, output
    assert lines[1] in output.splitlines()
