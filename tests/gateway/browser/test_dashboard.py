"""The dashboard in headless Chromium against a real stack seeded through the writer."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from services.gateway import sample
from tests.gateway.browser.conftest import screenshot
from tests.gateway.conftest import Stack, running_stack, seed_day
from tests.gateway.expectations import cell_text, expected_indicators

pytestmark = pytest.mark.browser

# The race view refreshes every 15 s near the start; the tests move the page's clock instead of waiting.
RACE_REFRESH_MS = 15_000


async def api(stack: Stack, path: str, **params: Any) -> Any:
    """GET a JSON body through the gateway."""
    response = await stack.http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def dom_cells(page: Page) -> dict[tuple[str, int], dict[str, Any]]:
    """Every timeline cell by (entrant, interval): text, indicator and background colour."""
    cells: list[dict[str, Any]] = await page.eval_on_selector_all(
        '[data-testid="timeline-cell"]',
        """els => els.map(e => ({entrant: e.dataset.entrantId, interval: Number(e.dataset.interval),
            text: e.textContent, doc: e.dataset.docId || null,
            indicator: e.dataset.indicator ? Number(e.dataset.indicator) : null,
            background: getComputedStyle(e).backgroundColor, title: e.title}))""",
    )
    return {(cell["entrant"], cell["interval"]): cell for cell in cells}


def rgb(hex_colour: str) -> str:
    """#RRGGBB as the browser reports a computed colour."""
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


async def open_race(page: Page, stack: Stack, race_id: str) -> None:
    """Open a race and wait until its grid and timeline are rendered."""
    await page.goto(f"{stack.base_url}/race/{race_id}")
    await expect(page.get_by_test_id("race-view")).to_have_attribute("data-loaded", "true")


async def test_meetings_page_lists_todays_meetings(seeded_stack: Stack, page: Page) -> None:
    day = seeded_stack.day
    assert day is not None
    await page.goto(seeded_stack.base_url + "/")
    cards = page.get_by_test_id("meeting-card")
    await expect(cards).to_have_count(2)  # tomorrow's meeting is not listed
    await expect(cards.nth(0)).to_contain_text("Awapuni")
    await expect(cards.nth(0).get_by_test_id("meeting-status")).to_have_text("Live")
    # Every page links to the backtest page.
    link = page.get_by_test_id("backtest-link")
    assert (await page.request.get(seeded_stack.base_url + str(await link.get_attribute("href")))).ok
    await expect(cards.nth(1)).to_contain_text("Addington")
    await expect(cards.nth(1).get_by_test_id("meeting-status")).to_have_text("Upcoming")
    await expect(page.get_by_test_id("race-row")).to_have_count(3)
    await expect(page.get_by_test_id("connection-badge")).to_have_attribute("data-state", "connected")
    await expect(page.get_by_test_id("next-race-detail")).to_have_text("R2 Awapuni Race 2 Handicap · Awapuni")
    await expect(page.get_by_test_id("next-race-countdown")).to_have_text(re.compile(r"^\d+m \d\ds$"))
    await screenshot(page, "dashboard-meetings")

    await cards.nth(1).click()
    await expect(page.get_by_test_id("race-row")).to_have_count(1)
    await expect(page.get_by_test_id("meeting-races-title")).to_contain_text("Addington")
    await page.get_by_test_id("race-link").first.click()
    await expect(page).to_have_url(re.compile(f"/race/{day.quiet_race}$"))
    await expect(page.get_by_test_id("race-title")).to_have_text("R1 · Addington Race 1 Handicap")
    await expect(page.get_by_test_id("pools-empty")).to_have_text("No pool data available")


async def test_race_view_shows_the_grid_the_api_describes(seeded_stack: Stack, page: Page) -> None:
    day = seeded_stack.day
    assert day is not None
    race_id = day.live_race
    await open_race(page, seeded_stack, race_id)
    entrants = await api(seeded_stack, "/api/entrants", race_id=race_id)
    timeline = await api(seeded_stack, "/api/money-flow-timeline", race_id=race_id)
    pools = await api(seeded_stack, "/api/race-pools", race_id=race_id)

    rows = page.get_by_test_id("entrant-row")
    await expect(rows).to_have_count(len(entrants))
    scratched = page.locator('[data-testid="entrant-row"][data-scratched="true"]')
    await expect(scratched).to_have_count(1)
    await expect(scratched.get_by_test_id("scratched-tag")).to_have_text("SCR")
    await expect(rows.first.get_by_test_id("fixed-win")).to_have_text(f"{entrants[0]['fixed_win_odds']:.2f}")
    await expect(page.get_by_test_id("race-meta")).to_contain_text("Runners 7 (1 scr)")
    await expect(page.get_by_test_id("pool-total")).to_contain_text(
        f"${(pools['total_race_pool'] + 50) // 100:,}"
    )

    cells = await dom_cells(page)
    documents = timeline["documents"]
    assert len(documents) == 7 * 13  # seven runners, one document in each bucket from 60 to 4
    for doc in documents:
        cell = cells[(doc["entrant_id"], doc["time_interval"])]
        assert cell["text"] == cell_text(doc, "win"), (doc["entrant_id"], doc["time_interval"])
        assert cell["doc"] == str(doc["id"])
    headers = await page.eval_on_selector_all(
        '[data-testid="timeline-header"]', "els => els.map(e => Number(e.dataset.interval))"
    )
    assert headers == [60, 55, 50, 45, 40, 35, 30, 25, 20, 15, 10, 5, 4, 3, 2, 1, 0]

    # The final race and the next one on the card, unless NZ midnight falls between.
    previous, following = day.neighbours(race_id)
    for test_id, neighbour in (("nav-prev", previous), ("nav-next", following)):
        link = page.get_by_test_id(test_id)
        if neighbour is None:
            await expect(link).to_have_attribute("aria-disabled", "true")
        else:
            await expect(link).to_have_attribute("href", f"/race/{neighbour}")
    await expect(page.get_by_test_id("nav-next-scheduled")).to_have_attribute("href", f"/race/{race_id}")
    await screenshot(page, "dashboard-race-win")
    if following is not None:
        await page.get_by_test_id("nav-next").click()
        await expect(page.get_by_test_id("race-title")).to_have_text("R3 · Awapuni Race 3 Handicap")


async def test_views_switch_and_alert_colours_apply(seeded_stack: Stack, page: Page) -> None:
    day = seeded_stack.day
    assert day is not None
    race_id = day.live_race
    await open_race(page, seeded_stack, race_id)
    entrants = await api(seeded_stack, "/api/entrants", race_id=race_id)
    documents = (await api(seeded_stack, "/api/money-flow-timeline", race_id=race_id))["documents"]
    config = await api(seeded_stack, "/api/user-alert-configs")
    colours = {item["display_order"]: item["color"] for item in config["indicators"]}
    await expect(page.get_by_test_id("indicator-legend")).to_contain_text("5–10%")

    coloured_somewhere = False
    for view in ("odds", "place", "win"):
        await page.get_by_test_id(f"view-{view}").click()
        await expect(page.get_by_test_id(f"view-{view}")).to_have_attribute("aria-pressed", "true")
        cells = await dom_cells(page)
        by_key = {(doc["entrant_id"], doc["time_interval"]): doc for doc in documents}
        for key, doc in by_key.items():
            assert cells[key]["text"] == cell_text(doc, view), (view, key)
        expected = expected_indicators(documents, entrants, config["indicators"], view)
        shown = {key: cell["indicator"] for key, cell in cells.items() if cell["indicator"] is not None}
        assert shown == expected, view
        for key, order in expected.items():
            assert cells[key]["background"] == rgb(colours[order])
            assert "%" in cells[key]["title"]
        coloured_somewhere = coloured_somewhere or bool(expected)
        await screenshot(page, f"dashboard-race-{view}")
    assert coloured_somewhere, "the seeded race should trigger at least one indicator"
    # Runner 2 firms in the 10 bucket: its price shortens by 18%, a 15-20% indicator.
    runner_two = entrants[1]["entrant_id"]
    assert expected_indicators(documents, entrants, config["indicators"], "odds")[(runner_two, 10)] == 3


async def test_a_committed_poll_is_pushed_to_the_open_race_page(fresh_database_url: str, page: Page) -> None:
    async with running_stack(fresh_database_url) as stack:
        day = await seed_day(stack, "push")
        live = day.races[day.live_race]
        await open_race(page, stack, day.live_race)
        await expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "live")
        await expect(page.get_by_test_id("data-age")).to_contain_text(re.compile(r"data \d+m \d\ds old"))

        # The page polls this race every 15 s; the poll below lands long before the next one is due.
        polled_at = live.start - timedelta(minutes=3)
        holds = sample.holds_for(live.runners, 10)
        await sample.write(
            stack.writer, live.poll(polled_at, holds=holds, win_pool=5_800_000, place_pool=1_900_000)
        )
        shown_at_ms = await page.wait_for_function(
            """() => document.querySelectorAll(
                '[data-testid="timeline-cell"][data-interval="3"][data-doc-id]').length === 7
                ? Date.now() : null""",
            polling=10,
        )
        race = await api(stack, f"/api/races/{day.live_race}")
        committed_at = datetime.fromisoformat(race["last_committed_at"])
        assert race["last_polled_at"] is not None
        delay_ms = await shown_at_ms.json_value() - committed_at.timestamp() * 1000
        assert 0 <= delay_ms <= 1000, f"the poll reached the grid {delay_ms:.0f} ms after its commit"
        await expect(page.get_by_test_id("race-view")).to_have_attribute(
            "data-last-committed-at", race["last_committed_at"]
        )
        await screenshot(page, "dashboard-pushed")


async def test_timeline_cells_fill_in_as_polls_land(fresh_database_url: str, page: Page) -> None:
    async with running_stack(fresh_database_url) as stack:
        day = await seed_day(stack, "fill")
        live = day.races[day.live_race]
        # No live stream (a proxy that refuses it, say): the page keeps its polling cadence.
        await page.route("**/api/stream*", lambda route: route.abort())
        await page.clock.install()
        await open_race(page, stack, day.live_race)
        await expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "polling")
        cells = await dom_cells(page)
        assert not any(cell["doc"] for key, cell in cells.items() if key[1] == 3)
        await screenshot(page, "dashboard-fill-before")

        # A poll lands in the 3-minute bucket while the page is open.
        polled_at = live.start - timedelta(minutes=3)
        holds = sample.holds_for(live.runners, 10)
        await sample.write(
            stack.writer, live.poll(polled_at, holds=holds, win_pool=5_800_000, place_pool=1_900_000)
        )
        await page.clock.fast_forward(RACE_REFRESH_MS + 1000)
        filled = page.locator('[data-testid="timeline-cell"][data-interval="3"][data-doc-id]')
        await expect(filled).to_have_count(7)
        documents = (await api(stack, "/api/money-flow-timeline", race_id=day.live_race))["documents"]
        cells = await dom_cells(page)
        for doc in documents:
            assert cells[(doc["entrant_id"], doc["time_interval"])]["text"] == cell_text(doc, "win")
        await expect(page.get_by_test_id("race-view")).to_have_attribute(
            "data-timeline-documents", str(7 * 14)
        )
        await screenshot(page, "dashboard-fill-after")


async def test_final_race_shows_results_and_pools(seeded_stack: Stack, page: Page) -> None:
    day = seeded_stack.day
    assert day is not None
    await open_race(page, seeded_stack, day.final_race)
    results = page.get_by_test_id("results-footer")
    await expect(results).to_be_visible()
    await expect(results.get_by_test_id("result-tag")).to_have_text("FINAL")
    await expect(results.get_by_test_id("result-row")).to_have_count(3)
    await expect(results.get_by_test_id("result-row").first).to_contain_text("Frosbie")
    await expect(results.get_by_test_id("dividend")).to_have_count(2)
    await expect(page.get_by_test_id("race-status")).to_have_text("final")
    await expect(page.get_by_test_id("race-countdown")).to_have_text("")
    await screenshot(page, "dashboard-race-final")


async def test_alert_settings_dialog_reads_saves_and_resets(seeded_stack: Stack, page: Page) -> None:
    await page.goto(seeded_stack.base_url + "/")
    await page.get_by_test_id("settings-button").click()
    dialog = page.get_by_test_id("alert-settings-dialog")
    await expect(dialog).to_be_visible()
    rows = dialog.get_by_test_id("indicator-row")
    await expect(rows).to_have_count(6)
    await expect(dialog.get_by_test_id("toggle-all")).to_be_checked()
    try:
        await rows.nth(0).get_by_test_id("indicator-enabled").uncheck()
        await rows.nth(1).get_by_test_id("indicator-color").fill("#112233")
        await expect(dialog.get_by_test_id("toggle-all")).not_to_be_checked()
        await dialog.get_by_test_id("settings-save").click()
        await expect(dialog.get_by_test_id("settings-message")).to_have_text("Saved.")
        await screenshot(page, "dashboard-alert-settings")
        saved = await api(seeded_stack, "/api/user-alert-configs")
        assert saved["indicators"][0]["enabled"] is False
        assert saved["indicators"][1]["color"] == "#112233"
        assert saved["toggle_all"] is False
        await expect(page.get_by_test_id("indicator-legend")).not_to_contain_text("5–10%")
    finally:
        await dialog.get_by_test_id("settings-reset").click()
        await expect(dialog.get_by_test_id("settings-message")).to_have_text("Defaults restored.")
    restored = await api(seeded_stack, "/api/user-alert-configs")
    assert all(item["enabled"] and item["is_default"] for item in restored["indicators"])
    assert restored["indicators"][1]["color"] == "#BFDBFE"
    await expect(dialog.get_by_test_id("toggle-all")).to_be_checked()


async def test_settings_opened_before_the_configuration_arrives_fill_in_when_it_does(
    seeded_stack: Stack, page: Page
) -> None:
    released = asyncio.Event()

    async def hold_back(route: Route) -> None:
        if route.request.method == "GET":
            await released.wait()
        await route.continue_()

    await page.route("**/api/user-alert-configs?*", hold_back)
    await page.goto(seeded_stack.base_url + "/")
    await page.get_by_test_id("settings-button").click()
    dialog = page.get_by_test_id("alert-settings-dialog")
    await expect(dialog.get_by_test_id("settings-loading")).to_be_visible()
    await expect(dialog.get_by_test_id("indicator-row")).to_have_count(0)
    await expect(dialog.get_by_test_id("settings-save")).to_be_disabled()
    await screenshot(page, "dashboard-settings-loading")

    released.set()
    rows = dialog.get_by_test_id("indicator-row")
    await expect(rows).to_have_count(6)
    await expect(dialog.get_by_test_id("settings-loading")).to_be_hidden()
    await expect(dialog.get_by_test_id("toggle-all")).to_be_checked()
    try:
        await rows.nth(2).get_by_test_id("indicator-enabled").uncheck()
        await dialog.get_by_test_id("settings-save").click()
        await expect(dialog.get_by_test_id("settings-message")).to_have_text("Saved.")
        saved = await api(seeded_stack, "/api/user-alert-configs")
        assert [item["enabled"] for item in saved["indicators"]] == [True, True, False, True, True, True]
    finally:
        await dialog.get_by_test_id("settings-reset").click()
        await expect(dialog.get_by_test_id("settings-message")).to_have_text("Defaults restored.")


async def test_settings_show_a_failed_load_and_a_retry_that_works(seeded_stack: Stack, page: Page) -> None:
    failing = True

    async def fail_until_retried(route: Route) -> None:
        if route.request.method == "GET" and failing:
            await route.fulfill(status=503, json={"error": "service unavailable"})
        else:
            await route.continue_()

    await page.route("**/api/user-alert-configs?*", fail_until_retried)
    # The page's timers stand still: only the Retry button can load the configuration again.
    await page.clock.install()
    await page.goto(seeded_stack.base_url + "/")
    await page.clock.pause_at(await page.evaluate("Date.now()") + 1000)
    await page.get_by_test_id("settings-button").click()
    dialog = page.get_by_test_id("alert-settings-dialog")
    problem = dialog.get_by_test_id("settings-load-error")
    await expect(problem).to_be_visible()
    await expect(problem).to_contain_text("service unavailable")
    await expect(dialog.get_by_test_id("settings-save")).to_be_disabled()
    await screenshot(page, "dashboard-settings-load-error")

    failing = False
    await dialog.get_by_test_id("settings-retry").click()
    await expect(dialog.get_by_test_id("indicator-row")).to_have_count(6)
    await expect(problem).to_be_hidden()
    await expect(dialog.get_by_test_id("settings-save")).to_be_enabled()


async def test_views_show_their_loading_and_error_states(seeded_stack: Stack, page: Page) -> None:
    await page.goto(f"{seeded_stack.base_url}/race/no-such-race")
    await expect(page.get_by_test_id("race-view")).to_have_attribute("data-state", "not-found")
    await expect(page.get_by_test_id("race-title")).to_have_text("Race not found")

    failing = True

    async def meetings(route: Route) -> None:
        if failing:
            await route.fulfill(status=503, json={"error": "service unavailable"})
        else:
            await route.continue_()

    await page.route("**/api/meetings", meetings)
    await page.clock.install()
    await page.goto(seeded_stack.base_url + "/")
    problem = page.get_by_test_id("meetings-load-error")
    await expect(problem).to_contain_text("Could not load the meetings: service unavailable")
    await expect(page.get_by_test_id("meetings-loading")).to_be_hidden()
    failing = False
    await page.clock.fast_forward(10_000)  # the view's own retry, backing off from 5 s
    await expect(page.get_by_test_id("meeting-card")).to_have_count(2)
    await expect(problem).to_be_hidden()


async def test_api_docs_render_offline(seeded_stack: Stack, page: Page) -> None:
    await page.goto(seeded_stack.base_url + "/api/docs")
    operations = page.locator(".swagger-ui .opblock")
    await expect(operations.first).to_be_visible()
    assert await operations.count() >= 15
    await screenshot(page, "api-docs")


async def test_disconnected_when_the_writer_stops(fresh_database_url: str, page: Page) -> None:
    async with running_stack(fresh_database_url) as stack:
        day = await seed_day(stack, "down")
        await page.clock.install()
        await open_race(page, stack, day.live_race)
        await expect(page.get_by_test_id("connection-badge")).to_have_attribute("data-state", "connected")
        await stack.stop_service("writer")
        await page.clock.fast_forward(RACE_REFRESH_MS + 1000)
        await expect(page.get_by_test_id("connection-badge")).to_have_attribute("data-state", "disconnected")
        await expect(page.get_by_test_id("disconnected-panel")).to_be_visible()
        # Health probes and retries follow; none may flip the badge back while the writer is down.
        for _ in range(3):
            async with page.expect_response(lambda response: "/api/health" in response.url):
                await page.clock.fast_forward(6000)
            await expect(page.get_by_test_id("connection-badge")).to_have_attribute(
                "data-state", "disconnected"
            )
        await expect(page.get_by_test_id("disconnected-detail")).to_contain_text("Retrying automatically")
        # The grid stays on screen with the last data while the page retries.
        await expect(page.get_by_test_id("entrant-row")).to_have_count(8)
        await screenshot(page, "dashboard-disconnected")
