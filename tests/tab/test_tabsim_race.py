"""One simulated race driven from Open to Final at high speed, observed through the TAB client."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx

from services.fetcher.tab_client import EventFetch
from services.tabsim.admin_client import TabSimAdmin
from services.tabsim.curves import ladder_price
from services.tabsim.server import RunningTabSim
from tests.tab.conftest import IDENTITY, ClientFactory, inflated

LIFECYCLE = ("Open", "Closed", "Interim", "Final")


def _holds(data: dict[str, Any]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for row in data["money_tracker"]["entrants"]:
        sums[row["entrant_id"]] += row["hold_percentage"]
    return sums


def _pick_race(scenario: dict[str, Any]) -> dict[str, Any]:
    """A default-filter race without abandonment or a start change (its scratching, if any, is fine)."""
    return next(
        race
        for meeting in scenario["meetings"]
        if meeting["country"] in ("NZ", "AUS") and meeting["category"] in ("T", "H")
        for race in meeting["races"]
        if race["abandoned_at"] is None and race["start_change"] is None and race["delay_s"] > 0
    )


async def test_one_race_from_open_to_final(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race = _pick_race(await admin.scenario())
    race_id, jump = race["race_id"], race["jump"]
    final_at = jump + race["closed_s"] + race["interim_s"]
    plunger = race["plunge_entrant_id"]
    client = make_client()
    await admin.set_clock(speed=60.0)

    steps = list(range(jump - 3 * 3600, jump - 900, 600)) + list(range(jump - 900, final_at + 120, 30))
    seen_status: list[str] = []
    last_pools: dict[str, float] = {}
    fixed_history: dict[str, list[float]] = defaultdict(list)
    holds_at: dict[int, dict[str, int]] = {}
    for at in steps:
        await admin.set_clock(now=at * 1000)
        fetched = await client.fetch_event(race_id, budget_s=10)
        assert isinstance(fetched, EventFetch), fetched
        data = json.loads(inflated(fetched))["data"]
        status = data["race"]["status"]
        assert fetched.summary["status_raw"] == status
        if not seen_status or seen_status[-1] != status:
            seen_status.append(status)

        # Pools never shrink; the multi-race EarlyQuadrella row is there throughout.
        pools = {pool["product_type"]: pool["total"] for pool in data["tote_pools"]}
        assert set(pools) == {"Win", "Place", "Quinella", "Trifecta", "FirstFour", "EarlyQuadrella"}
        for product, total in pools.items():
            assert total >= last_pools.get(product, 0.0), (at - jump, product, total)
        last_pools = pools

        holds = _holds(data)
        assert 97 <= sum(holds.values()) <= 103, (at - jump, sum(holds.values()))
        holds_at[at] = holds

        runners = {r["entrant_id"]: r for r in data["runners"]}
        for entrant_id, runner in runners.items():
            if runner["is_scratched"]:
                assert runner["odds"] == {"fixed_win": 0, "fixed_place": 0}
                assert holds.get(entrant_id, 0) == 0
            else:
                fixed_history[entrant_id].append(runner["odds"]["fixed_win"])
                assert ladder_price(runner["odds"]["fixed_win"]) == runner["odds"]["fixed_win"]

        results, dividends = data["results"], data["dividends"]
        if status in ("Open", "Closed"):
            assert results is None and dividends is None
            assert data["race"]["actual_start"] == (0 if status == "Open" else jump)
        else:
            running = [r for r in data["runners"] if not r["is_scratched"]]
            assert [r["position"] for r in results] == list(range(1, len(running) + 1))
            assert {r["entrant_id"] for r in results} == {r["entrant_id"] for r in running}
            numbers = {r["runner_number"] for r in running}
            assert all(p["runner_number"] in numbers for d in dividends for p in d["positions"])
            statuses = [d["status"] for d in dividends]
            if status == "Interim":
                assert set(statuses) == {"Interim"}
            else:
                assert "Final" in statuses and statuses == sorted(statuses, key=lambda s: s != "Interim")
            win = next(d for d in dividends if d["product_name"] == "Pool Win")
            assert win["pool_size"] == pools["Win"]
            assert win["positions"][0]["runner_number"] == results[0]["runner_number"]

    assert seen_status == list(LIFECYCLE)
    # The race was still Open after its advertised start: the jump was delayed.
    assert race["jump"] > race["final_start"]
    # The plunge: at least 6 points more of the hold in the last two minutes.
    before = holds_at[max(a for a in holds_at if a <= jump - 120)]
    at_jump = holds_at[max(a for a in holds_at if a <= jump)]
    assert at_jump[plunger] - before[plunger] >= 6
    # Fixed odds move in ticks and sometimes hold still across consecutive polls.
    moves = [(a != b) for prices in fixed_history.values() for a, b in itertools.pairwise(prices)]
    assert any(moves) and not all(moves)

    # Between polls values follow the model: the admin view of the race agrees with the payload.
    plan = await admin.race(race_id, at_ms=(jump - 300) * 1000)
    model = {r["entrant_id"]: r for r in plan["state"]["runners"]}
    await admin.set_clock(now=(jump - 300) * 1000, speed=1.0)
    fetched = await client.fetch_event(race_id, budget_s=10)
    assert isinstance(fetched, EventFetch)
    for runner in json.loads(inflated(fetched))["data"]["runners"]:
        if not runner["is_scratched"]:
            assert runner["odds"]["pool_win"] == model[runner["entrant_id"]]["pool_win"]
            share = model[runner["entrant_id"]]["share"]
            assert abs(runner["odds"]["pool_win"] - 0.85 / (max(share, 0.5) / 100)) <= 0.06 + 1e-9


async def test_meetings_list_agrees_with_the_event(sim: RunningTabSim, admin: TabSimAdmin) -> None:
    scenario = await admin.scenario()
    changed = next(r for m in scenario["meetings"] for r in m["races"] if r["start_change"] is not None)
    headers = {
        "From": IDENTITY["from_"],
        "X-Partner": IDENTITY["partner"],
        "X-Partner-ID": IDENTITY["partner_id"],
    }
    async with httpx.AsyncClient(base_url=sim.url + "/affiliates/v1/racing", headers=headers) as http:
        for at in (
            changed["start_change"]["at"] - 60,
            changed["start_change"]["at"] + 60,
            changed["jump"] + 30,
        ):
            await admin.set_clock(now=at * 1000, speed=1.0)
            event = (await http.get(f"/events/{changed['race_id']}")).json()["data"]["race"]
            day = scenario["date"]
            listing = (await http.get("/meetings", params={"date_from": day, "date_to": day})).json()
            summary = next(
                r for m in listing["data"]["meetings"] for r in m["races"] if r["id"] == changed["race_id"]
            )
            assert summary["status"] == event["status"]
            expected = (
                changed["scheduled_start"] if at < changed["start_change"]["at"] else changed["final_start"]
            )
            assert event["advertised_start"] == expected
            assert summary["start_time"] == _rfc3339(expected)


def _rfc3339(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
