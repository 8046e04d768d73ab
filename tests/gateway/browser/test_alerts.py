"""Issue 14 in headless Chromium: the dashboard's classification and move values against the golden
files the server is held to, the race chart, and the alerts feed (loaded, pushed, clicked through)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Locator, Page, expect

from services.common.proto.raceday.v1 import writer_pb2
from services.common.timestamps import datetime_to_ts
from tests.gateway import golden
from tests.gateway.browser.conftest import screenshot
from tests.gateway.browser.test_dashboard import api, open_race, rgb
from tests.gateway.conftest import AlertRow, Stack, earlier_today, insert_alerts, running_stack, seed_day

pytestmark = pytest.mark.browser

# The dashboard's modules, loaded as the dashboard loads them (from the gateway).
INDICATORS_JS = "/static/js/indicators.js"


@dataclass(slots=True)
class AlertsDay:
    """A seeded day with alerts: the stack and the ids stored, oldest first."""

    stack: Stack
    database_url: str
    ids: list[int]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def alerts_day(module_database_url: str) -> AsyncIterator[AlertsDay]:
    """`seed_day` plus three alerts of the live race and one of the final race."""
    async with running_stack(module_database_url) as stack:
        day = await seed_day(stack, "alerts")
        stack.day = day
        live = day.races[day.live_race].runners
        final = day.races[day.final_race].runners
        now = stack.now
        ids = await insert_alerts(
            module_database_url,
            [
                AlertRow(day.final_race, final[0].entrant_id, "win_money", 2, 55.5, earlier_today(now, 22)),
                AlertRow(day.live_race, live[1].entrant_id, "win_money", 10, 12.5, earlier_today(now, 9)),
                AlertRow(day.live_race, live[1].entrant_id, "win_price", 10, 18.04, earlier_today(now, 9)),
                AlertRow(day.live_race, live[2].entrant_id, "place_money", 5, 5.0, earlier_today(now, 4)),
            ],
        )
        yield AlertsDay(stack, module_database_url, ids)


async def dashboard_module(page: Page, stack: Stack) -> None:
    """A gateway page with the dashboard's indicator module loaded as `window.indicators`."""
    await page.goto(f"{stack.base_url}/static/favicon.svg")
    await page.evaluate(f"async () => {{ window.indicators = await import('{INDICATORS_JS}'); }}")


async def polled_until(page: Page, items: Locator, count: int) -> None:
    """Move the page's clock a polling interval at a time until `items` has `count` elements (a refresh
    in flight when the clock moves schedules the next one only when it ends)."""
    for _ in range(4):
        await page.clock.fast_forward(25_000)
        for _ in range(20):
            if await items.count() == count:
                return
            await asyncio.sleep(0.1)
    await expect(items).to_have_count(count)


async def test_pick_indicator_matches_the_classification_golden_file(
    alerts_day: AlertsDay, page: Page
) -> None:
    document = golden.load(golden.CLASSIFICATION)
    await dashboard_module(page, alerts_day.stack)
    shown: list[dict[str, Any]] = await page.evaluate(
        """(document) => document.cases.map((item) => {
            const ranges = document.configs[item.config].indicators;
            const picked = window.indicators.pickIndicator(ranges, item.value);
            return picked === null ? null : {display_order: picked.display_order, color: picked.color,
                                             label: window.indicators.rangeLabel(picked)};
        })""",
        document,
    )
    for case, picked in zip(document["cases"], shown, strict=True):
        expected = (
            None
            if case["display_order"] is None
            else {"display_order": case["display_order"], "color": case["color"], "label": case["label"]}
        )
        assert picked == expected, (case["name"], case["why"])


async def test_dashboard_move_values_match_the_moves_golden_file(alerts_day: AlertsDay, page: Page) -> None:
    # The server's move detection is held to the same file: the dashboard's colours and the alerts agree.
    document = golden.load(golden.MOVES)
    assert document["cases"], "the moves golden file has no cases"
    await dashboard_module(page, alerts_day.stack)
    computed: list[list[dict[str, Any]]] = await page.evaluate(
        """(cases) => cases.map((item) => {
            const m = window.indicators;
            const columns = [item.previous_interval, item.time_interval];
            const runners = item.runners.filter((runner) => !runner.scratched)
                .map((runner) => runner.entrant_id);
            const doc = (id, column) => {
                const side = column === item.time_interval ? item.current : item.previous;
                return side[id] ?? null;
            };
            const amount = (key) => (id, column) => {
                const d = doc(id, column);
                return d ? d[key] ?? null : null;
            };
            const kinds = {
                win_money: m.moneyIndicatorValues(columns, runners, amount("incremental_win_amount")),
                place_money: m.moneyIndicatorValues(columns, runners, amount("incremental_place_amount")),
                win_price: m.oddsIndicatorValues(columns, runners, (id, col) => m.winPrice(doc(id, col))),
            };
            const moves = [];
            for (const [kind, values] of Object.entries(kinds)) {
                for (const id of runners) {
                    const value = values.get(`${id}|${item.time_interval}`);
                    if (value !== undefined && value !== null) moves.push({entrant_id: id, kind, value});
                }
            }
            return moves;
        })""",
        document["cases"],
    )
    for case, moves in zip(document["cases"], computed, strict=True):
        expected = {(move["entrant_id"], move["kind"]): move["value"] for move in case["moves"]}
        shown = {(move["entrant_id"], move["kind"]): move["value"] for move in moves}
        assert set(shown) == set(expected), (case["name"], case.get("why"), sorted(shown), sorted(expected))
        for key, value in expected.items():
            assert shown[key] == pytest.approx(value, abs=1e-9), (case["name"], key)


async def test_race_chart_draws_one_series_per_runner_and_one_point_per_column(
    alerts_day: AlertsDay, page: Page
) -> None:
    stack = alerts_day.stack
    assert stack.day is not None
    race_id = stack.day.live_race
    await open_race(page, stack, race_id)
    entrants = await api(stack, "/api/entrants", race_id=race_id)
    documents = (await api(stack, "/api/money-flow-timeline", race_id=race_id))["documents"]
    running = [entrant for entrant in entrants if not entrant["is_scratched"]]
    expected: dict[str, dict[str, int]] = {"share": {}, "price": {}}
    for entrant in running:
        mine = [doc for doc in documents if doc["entrant_id"] == entrant["entrant_id"]]
        expected["share"][str(entrant["runner_number"])] = sum(
            d["win_pool_percentage"] is not None for d in mine
        )
        prices = [
            d["fixed_win_odds"] if d["fixed_win_odds"] is not None else d["pool_win_odds"] for d in mine
        ]
        expected["price"][str(entrant["runner_number"])] = sum(price is not None for price in prices)
    # The seeded race: seven running runners (one scratched), a poll in each of 13 buckets (60 to 4).
    assert len(running) == 7 and set(expected["share"].values()) == {13}
    chart = page.get_by_test_id("race-chart")
    for panel in ("share", "price"):
        paths: list[dict[str, Any]] = await chart.locator(
            f'svg[data-panel="{panel}"] path[data-series]'
        ).evaluate_all(
            """els => els.map(e => ({series: e.dataset.series, points: Number(e.dataset.points),
                vertices: (e.getAttribute('d') || '').split(/[ML]/).filter(s => s.trim()).length}))"""
        )
        assert {item["series"]: item["points"] for item in paths} == expected[panel], panel
        assert all(item["points"] == item["vertices"] for item in paths), panel
        circles = chart.locator(f'svg[data-panel="{panel}"] circle[data-series]')
        await expect(circles).to_have_count(sum(expected[panel].values()))
    legend = chart.get_by_test_id("legend-item")
    await expect(legend).to_have_count(7)
    assert await legend.evaluate_all("els => els.map(e => e.textContent)") == [
        str(entrant["runner_number"]) for entrant in running
    ]
    # Hovering a runner in the legend dims the others.
    await legend.nth(1).hover()
    dimmed = chart.locator('svg[data-panel="share"] path.dim')
    await expect(dimmed).to_have_count(6)
    await chart.scroll_into_view_if_needed()
    await screenshot(page, "dashboard-race-chart")


async def test_alerts_feed_lists_pushes_sounds_and_opens_the_race(alerts_day: AlertsDay, page: Page) -> None:
    stack = alerts_day.stack
    day = stack.day
    assert day is not None
    ids = alerts_day.ids
    hub = stack.gateway.hub
    assert hub is not None
    # The user enabled audible alerts: new alerts in the feed play the sound.
    saved = await stack.http.post(
        "/api/user-alert-configs",
        json={
            "user_id": "Default User",
            "audible_alerts_enabled": True,
            "indicators": [
                {
                    "display_order": 1,
                    "percentage_range_min": 5,
                    "percentage_range_max": 10,
                    "color": "#E5E7EB",
                }
            ],
        },
    )
    assert saved.status_code == 200
    await page.goto(f"{stack.base_url}/alerts")
    view = page.get_by_test_id("alerts-view")
    await expect(view).to_have_attribute("data-loaded", "true")
    items = view.get_by_test_id("alert-item")
    await expect(items).to_have_count(4)
    assert await items.evaluate_all("els => els.map(e => Number(e.dataset.alertId))") == ids[::-1]
    newest = items.first
    live = day.races[day.live_race]
    await expect(newest.get_by_test_id("alert-race")).to_have_text("Awapuni R2")
    await expect(newest.get_by_test_id("alert-runner")).to_have_text(f"3. {live.runners[2].name}")
    await expect(newest.get_by_test_id("alert-kind")).to_have_text("Place money")
    await expect(newest.get_by_test_id("alert-value")).to_have_text("+5.0 pts")
    await expect(newest.get_by_test_id("alert-time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    price = items.nth(1)
    await expect(price.get_by_test_id("alert-value")).to_have_text("18.0% shorter")
    colours = {1: "#E5E7EB", 3: "#FEF3C7", 2: "#BFDBFE", 6: "#F3E8FF"}
    shown = await items.evaluate_all(
        """els => els.map(e => [Number(e.dataset.indicator),
            getComputedStyle(e.querySelector('.alert-swatch')).backgroundColor])"""
    )
    assert shown == [[order, rgb(colours[order])] for order in (1, 3, 2, 6)]
    await expect(view.get_by_test_id("alerts-state")).to_have_attribute("data-state", "live")
    await expect(page.get_by_test_id("alerts-link")).to_have_attribute("href", "/alerts")
    await screenshot(page, "dashboard-alerts-page")

    # A click on the page: browsers start audio only after one.
    await view.locator("h1").click()
    # A poll of the live race stored a new alert and the writer announces it: pushed, not polled.
    [pushed] = await insert_alerts(
        alerts_day.database_url,
        [AlertRow(day.live_race, live.runners[4].entrant_id, "win_money", 4, 31.25, stack.now)],
    )
    change = writer_pb2.RaceChange(
        id=50_000, race_id=day.live_race, meeting_id=live.meeting.meeting_id, status="open", alerts=1
    )
    change.polled_at.CopyFrom(datetime_to_ts(stack.now))
    change.committed_at.CopyFrom(datetime_to_ts(stack.now))
    hub.receive(change)
    await expect(items).to_have_count(5)
    await expect(items.first).to_have_attribute("data-alert-id", str(pushed))
    await expect(items.first).to_have_attribute("data-indicator", "5")
    await expect(items.first.get_by_test_id("alert-value")).to_have_text("+31.3 pts")
    await expect(view).to_have_attribute("data-sounds", "1")
    await screenshot(page, "dashboard-alerts-pushed")

    # The meetings page shows the latest ones; an alert opens its race.
    await page.goto(stack.base_url + "/")
    panel = page.get_by_test_id("alerts-panel")
    await expect(panel.get_by_test_id("alert-item")).to_have_count(5)
    await screenshot(page, "dashboard-meetings-alerts")
    await panel.get_by_test_id("alert-item").first.click()
    await expect(page).to_have_url(re.compile(f"/race/{day.live_race}$"))
    await expect(page.get_by_test_id("race-title")).to_have_text("R2 · Awapuni Race 2 Handicap")


async def test_alerts_feed_polls_when_the_stream_is_down_and_follows_the_users_ranges(
    alerts_day: AlertsDay, page: Page
) -> None:
    stack = alerts_day.stack
    day = stack.day
    assert day is not None
    await page.route("**/api/stream*", lambda route: route.abort())
    await page.clock.install()
    await page.goto(f"{stack.base_url}/alerts")
    view = page.get_by_test_id("alerts-view")
    await expect(view).to_have_attribute("data-loaded", "true")
    await expect(view.get_by_test_id("alerts-state")).to_have_attribute("data-state", "polling")
    before = await view.get_by_test_id("alert-item").count()
    [added] = await insert_alerts(
        alerts_day.database_url,
        [
            AlertRow(
                day.final_race,
                day.races[day.final_race].runners[2].entrant_id,
                "win_price",
                1,
                9.5,
                stack.now,
            )
        ],
    )
    await polled_until(page, view.get_by_test_id("alert-item"), before + 1)
    await expect(view.get_by_test_id("alert-item").first).to_have_attribute("data-alert-id", str(added))

    sounds = await view.get_attribute("data-sounds")

    # Disabling the 5-10% range and the sound in the settings dialog: the feed reloads without those
    # alerts, and a new alert arrives in silence.
    await page.get_by_test_id("settings-button").click()
    dialog = page.get_by_test_id("alert-settings-dialog")
    await (
        dialog.locator('[data-testid="indicator-row"][data-display-order="1"]')
        .get_by_test_id("indicator-enabled")
        .uncheck()
    )
    await dialog.get_by_test_id("audible-toggle").uncheck()
    await dialog.get_by_test_id("settings-save").click()
    await expect(dialog.get_by_test_id("settings-message")).to_have_text("Saved.")
    await dialog.get_by_test_id("settings-cancel").click()
    await expect(view.locator('[data-testid="alert-item"][data-indicator="1"]')).to_have_count(0)
    await expect(view.get_by_test_id("alert-item")).to_have_count(before - 1)
    await insert_alerts(
        alerts_day.database_url,
        [
            AlertRow(
                day.final_race, day.races[day.final_race].runners[3].entrant_id, "win_money", 1, 21, stack.now
            )
        ],
    )
    await polled_until(page, view.get_by_test_id("alert-item"), before)
    await expect(view.get_by_test_id("alert-item").first).to_have_attribute("data-indicator", "4")
    assert await view.get_attribute("data-sounds") == sounds
    reset = await stack.http.post("/api/user-alert-configs/reset", json={"user_id": "Default User"})
    assert reset.status_code == 200
