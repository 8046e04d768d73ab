"""End to end (issue 14): a plunge injected into the simulated TAB of a running `raceday up` becomes
one alert, served by /api/alerts right after its poll commits, shown in the dashboard's feed, and
not served to a user who disabled the range that holds it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.conftest import SIM_SPEED, Stack, running_stack
from tests.e2e.stack import http_get, wait_for
from tests.gateway.browser.conftest import ARTIFACTS, CHROMIUM_ARGS, VIEWPORT, find_chromium

PLUNGE_SHARE = 0.6
PLUNGE_BUCKET = 5
DISABLED_USER = "e2e-range-off"


def _request(url: str, method: str, body: object | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _alerts(stack: Stack, **params: str) -> list[dict[str, Any]]:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    status, body = http_get(f"http://127.0.0.1:{stack.http_port}/api/alerts?limit=500&{query}")
    assert status == 200, body
    alerts: list[dict[str, Any]] = json.loads(body)["alerts"]
    return alerts


def _plunge_alerts(stack: Stack, plunge: dict[str, Any], **params: str) -> list[dict[str, Any]]:
    return [
        alert
        for alert in _alerts(stack, race_id=plunge["race_id"], **params)
        if alert["entrant_id"] == plunge["entrant_id"]
        and alert["kind"] == "win_money"
        and alert["time_interval"] == PLUNGE_BUCKET
    ]


def _polls_after(database_url: str, race_id: str, polled_at: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM race_polls WHERE race_id = %s AND polled_at > %s::timestamptz",
            (race_id, polled_at),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _latest_bucket(database_url: str, race_id: str) -> int | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT time_interval FROM money_flow_history WHERE race_id = %s"
            " ORDER BY event_timestamp DESC LIMIT 1",
            (race_id,),
        ).fetchone()
    return None if row is None else int(row[0])


@pytest.fixture(scope="module")
def stack(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A race day at 15x with a plunge on the next race that can take one."""
    with running_stack(module_database_url, tmp_path_factory.mktemp("up"), speed=SIM_SPEED) as running:
        yield running


def _outsider(stack: Stack, race_id: str, at_s: float) -> int:
    """The runner number of the race's smallest share of the money at `at_s` (simulated seconds).

    A plunge is a move only against what the runner held in the column before: a favourite may
    already hold more of the money than the plunge gives it. An outsider, not the model's own
    plunger and running (not scratched), gains most of the plunge's share.
    """
    sim = f"http://127.0.0.1:{stack.tabsim_port}/__sim/races/{race_id}?at={int(at_s * 1000)}"
    race = _request(sim, "GET")
    # `scratchings` lists every runner scratched at any time of the day, those scratched now too.
    excluded = {item["entrant_id"] for item in race["scratchings"]} | {race["plunge_entrant_id"]}
    running = [runner for runner in race["state"]["runners"] if runner["entrant_id"] not in excluded]
    return int(min(running, key=lambda runner: runner["share"])["runner_number"])


def _inject_plunge(stack: Stack) -> dict[str, Any]:
    """A plunge on an outsider of the next race that can take one; the admin API's view of it."""
    sim = f"http://127.0.0.1:{stack.tabsim_port}/__sim/plunges"
    request = {"race_id": "next", "runner_number": 1, "share": PLUNGE_SHARE, "bucket": PLUNGE_BUCKET}
    (chosen,) = _request(sim, "POST", request)["plunges"]
    opens = min(window["opens_after"] for window in chosen["windows"])
    runner_number = _outsider(stack, chosen["race_id"], opens)
    _request(sim, "DELETE")
    request |= {"race_id": chosen["race_id"], "runner_number": runner_number}
    plunges = _request(sim, "POST", request)["plunges"]
    assert len(plunges) == 1, plunges
    plunge: dict[str, Any] = plunges[0]
    return plunge


def test_a_plunge_is_one_alert_in_the_api_and_the_feed(stack: Stack) -> None:
    plunge = _inject_plunge(stack)

    # Poll the API while the race runs into the bucket: the alert must be there as soon as its poll
    # has committed, i.e. before the race's next poll commits.
    found: list[dict[str, Any]] = []

    def alert_served() -> bool:
        found[:] = _plunge_alerts(stack, plunge)
        return bool(found)

    # "next" picks the first race whose bucket opens far enough ahead: wait until its bucket has
    # closed (in real seconds at the simulated speed), and a minute more.
    sim_now_s = _request(f"http://127.0.0.1:{stack.tabsim_port}/__sim/clock", "GET")["now_epoch_ms"] / 1000
    closes_s = max(window["closes_at"] for window in plunge["windows"])
    budget_s = max(0.0, closes_s - sim_now_s) / SIM_SPEED + 60
    wait_for(alert_served, budget_s, f"the plunge's alert in /api/alerts ({plunge})", interval_s=0.25)
    alert = found[0]
    assert _polls_after(stack.database_url, plunge["race_id"], alert["polled_at"]) <= 1
    assert alert["value"] >= 5 and alert["previous_interval"] == 10
    assert alert["indicator"] is not None  # the default ranges hold every value of at least 5

    # The dashboard's feed shows it (screenshot in the test artifacts).
    _feed_shows(stack, alert)

    # Later polls of the bucket and of the next ones store no second alert for the same move.
    wait_for(
        lambda: (_latest_bucket(stack.database_url, plunge["race_id"]) or 99) < PLUNGE_BUCKET,
        120,
        "a poll of the race past the plunge's bucket",
    )
    again = _plunge_alerts(stack, plunge)
    assert [item["alert_id"] for item in again] == [alert["alert_id"]]
    with psycopg.connect(stack.database_url) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM race_alerts WHERE race_id = %s AND entrant_id = %s AND kind = 'win_money'"
            " AND time_interval = %s",
            (plunge["race_id"], plunge["entrant_id"], PLUNGE_BUCKET),
        ).fetchone()
    assert stored == (1,)

    # A user who switched off the range that holds the move gets no alert for it, and still gets
    # the alerts that the ranges left on hold.
    base = f"http://127.0.0.1:{stack.http_port}/api/user-alert-configs"
    defaults = _request(f"{base}?user_id={DISABLED_USER}", "GET")["indicators"]
    off = alert["indicator"]["display_order"]
    chosen = [{**item, "enabled": item["display_order"] != off} for item in defaults]
    _request(base, "POST", {"user_id": DISABLED_USER, "indicators": chosen})
    assert _plunge_alerts(stack, plunge, user_id=DISABLED_USER) == []
    everyone = _alerts(stack)
    lowest, highest = min(item["alert_id"] for item in everyone), max(item["alert_id"] for item in everyone)
    # The day runs on: compare the alerts both reads cover.
    read = _alerts(stack, user_id=DISABLED_USER)
    for_user = [item for item in read if lowest <= item["alert_id"] <= highest]
    assert {item["alert_id"] for item in for_user} == {
        item["alert_id"] for item in everyone if item["indicator"]["display_order"] != off
    }


def _feed_shows(stack: Stack, alert: dict[str, Any]) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.fail("no Chromium found (make browser installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"http://127.0.0.1:{stack.http_port}/alerts")
            item = page.locator(f'[data-testid="alerts-view"] [data-alert-id="{alert["alert_id"]}"]')
            item.wait_for(state="visible", timeout=30_000)
            assert item.get_attribute("data-kind") == "win_money"
            assert item.get_attribute("data-race-id") == alert["race_id"]
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(ARTIFACTS) / "e2e-alerts-feed.png"), full_page=True)
        finally:
            browser.close()
