"""The backtest page in headless Chromium, and GET /api/backtest, against a real stack: every figure
shown is recomputed here from the database, independently of services/writer/backtest.py."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from playwright.async_api import Page

from services.common.nztime import nz_date, nz_midnight
from services.gateway import sample
from tests.gateway.browser.conftest import screenshot
from tests.gateway.conftest import Stack, running_stack

pytestmark = pytest.mark.browser
WINDOWS = (5, 2, 1)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def backtest_stack(module_database_url: str) -> AsyncIterator[Stack]:
    """A stack with three final races of today (late money on different runners)."""
    async with running_stack(module_database_url) as stack:
        # The three races start 70, 50 and 30 minutes before `now`: just after NZ midnight that is
        # yesterday, so the day's first 90 minutes take their times from 01:30 instead.
        now = max(stack.now, nz_midnight(nz_date(stack.now)) + timedelta(minutes=90))
        meeting = sample.build_meeting(f"bt{uuid.uuid4().hex[:6]}", "Trentham", now)
        for number, late_step in ((1, 0), (2, 4), (3, 9)):
            race_id = f"{meeting.meeting_id}-r{number}"
            start = now - timedelta(minutes=90 - 20 * number)
            runners = sample.build_runners(race_id, 6)
            race = sample.build_race(meeting, race_id, number, start, field_size=6)
            builder = sample.RaceBuilder(meeting, race, runners, start)
            # Runner 2 firms in the last minute by `late_step`; the pools grow late.
            for minutes, step, win_pool in (
                (10, 0, 1_000_000),
                (4, 0, 1_200_000),
                (0.5, late_step, 1_700_000),
            ):
                polled_at = start - timedelta(minutes=minutes)
                await sample.write(
                    stack.writer,
                    builder.poll(
                        polled_at,
                        holds=sample.holds_for(runners, step),
                        win_pool=win_pool,
                        place_pool=win_pool // 3,
                    ),
                )
            polled_at = start + timedelta(minutes=8)
            await sample.write(
                stack.writer,
                builder.poll(
                    polled_at,
                    holds={},
                    win_pool=1_800_000,
                    place_pool=600_000,
                    status="final",
                    results=sample.results_for(runners, polled_at, "final"),
                ),
            )
        yield stack


@dataclass
class Expected:
    races: int
    wins: int
    places: int
    win_returns: list[float]


def _wilson(k: int, n: int) -> tuple[float, float]:
    """The textbook Wilson score interval at 95% (z = 1.96)."""
    if n == 0:
        return 0.0, 1.0
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = (z / (1 + z * z / n)) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _recompute(database_url: str, day: date) -> dict[int, Expected]:
    """The figures from the stored rows, by the definition on the page."""
    expected = {window: Expected(0, 0, 0, []) for window in WINDOWS}
    with psycopg.connect(database_url, options="-c TimeZone=UTC") as conn:
        races = conn.execute(
            "SELECT r.race_id, coalesce(r.actual_start, r.start_time), coalesce(r.positions_paid, 3), "
            "rr.results_data, rr.dividends_data FROM races r JOIN race_results rr USING (race_id) "
            "WHERE r.status = 'final' AND rr.results_available AND r.race_date_nz = %s",
            (day,),
        ).fetchall()
        for race_id, close, places, results, dividends in races:

            def amounts(at: datetime, race: str = race_id, end: datetime = close) -> dict[str, int]:
                rows = conn.execute(
                    "SELECT DISTINCT ON (entrant_id) entrant_id, win_pool_amount FROM money_flow_history "
                    "WHERE race_id = %s AND event_timestamp <= %s AND event_timestamp >= %s "
                    "ORDER BY entrant_id, event_timestamp DESC, id DESC",
                    (race, at, end - timedelta(days=1)),
                ).fetchall()
                return {str(entrant): int(cents) for entrant, cents in rows}

            numbers: dict[str, int] = {
                str(entrant): int(number)
                for entrant, number in conn.execute(
                    "SELECT entrant_id, runner_number FROM entrants WHERE race_id = %s", (race_id,)
                )
            }
            at_close = amounts(close)
            for window in WINDOWS:
                before = amounts(close - timedelta(minutes=window))
                gains = {e: cents - before.get(e, 0) for e, cents in at_close.items()}
                if sum(g for g in gains.values() if g > 0) <= 0:
                    continue
                pick = min(gains, key=lambda e: (-gains[e], numbers[e]))
                position = next(r["position"] for r in results if r["entrant_id"] == pick)
                row = expected[window]
                row.races += 1
                row.wins += position == 1
                row.places += position <= places
                win = next(d["dividend"] for d in dividends if d["product_name"] == "Pool Win")
                row.win_returns.append(win if position == 1 else 0.0)
    return expected


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


async def test_the_api_answers_the_recomputed_figures(
    backtest_stack: Stack, module_database_url: str
) -> None:
    day = nz_date(backtest_stack.now)
    expected = _recompute(module_database_url, day)
    assert expected[1].races == 3  # every race had late money
    response = await backtest_stack.http.get(
        "/api/backtest", params={"dateFrom": day.isoformat(), "date_to": day.isoformat()}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert [w["window_minutes"] for w in body["windows"]] == list(WINDOWS)
    for window in body["windows"]:
        want = expected[window["window_minutes"]]
        assert (window["races"], window["wins"], window["places"]) == (want.races, want.wins, want.places)
        assert window["win_strike_rate_ci"] == pytest.approx(list(_wilson(want.wins, want.races)))
        assert window["place_strike_rate_ci"] == pytest.approx(list(_wilson(want.places, want.races)))
        assert window["win_return"] == pytest.approx(sum(want.win_returns) / len(want.win_returns))
    bad = await backtest_stack.http.get("/api/backtest", params={"date_from": "2026-02-30"})
    assert bad.status_code == 400
    backwards = await backtest_stack.http.get(
        "/api/backtest",
        params={"date_from": day.isoformat(), "date_to": (day - timedelta(days=1)).isoformat()},
    )
    assert backwards.status_code == 400


async def test_the_page_shows_the_recomputed_figures(
    backtest_stack: Stack, module_database_url: str, page: Page
) -> None:
    day = nz_date(backtest_stack.now).isoformat()
    expected = _recompute(module_database_url, date.fromisoformat(day))
    await page.goto(f"{backtest_stack.base_url}/static/backtest.html?date_from={day}&date_to={day}")
    await page.wait_for_selector('body[data-loaded="true"]')
    rows = await page.eval_on_selector_all(
        '[data-testid="backtest-row"]',
        "rows => rows.map(r => Object.fromEntries("
        "[...r.children].map(c => [c.dataset.field, c.textContent])))",
    )
    assert len(rows) == 3
    for row, window in zip(rows, WINDOWS, strict=True):
        want = expected[window]
        win_rate = want.wins / want.races if want.races else None
        place_rate = want.places / want.races if want.races else None
        low, high = _wilson(want.wins, want.races)
        assert row["window"] == f"last {window} min"
        assert row["races"] == str(want.races)
        assert row["win-rate"] == _percent(win_rate)
        assert row["win-ci"] == f"[{_percent(low)}, {_percent(high)}]"
        assert row["place-rate"] == _percent(place_rate)
        mean = sum(want.win_returns) / len(want.win_returns)
        assert row["win-return"] == f"${mean:.2f} (n={len(want.win_returns)})"
        # The chart: a bar per strike rate, and the number of races under each window.
        assert await page.text_content(f'[data-testid="races-{window}"]') == f"n={want.races} races"
        bar = await page.get_attribute(f'[data-testid="bar-win-{window}"]', "data-rate")
        assert bar is not None and float(bar) == pytest.approx(win_rate)
    await screenshot(page, "backtest")
