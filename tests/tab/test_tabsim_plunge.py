"""The plunge knob: a runner takes a set share of one bucket's money, as Raceday's money flow sees it.

The money flow is the real one: each poll's payload goes through the Rust core's transform,
the second poll with the first one's state, as the fetcher chains them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import raceday_core
from services.common.config import ConfigError, Env
from services.tabsim.admin_client import TabSimAdmin
from services.tabsim.cli import _add_arguments, config_from_args
from services.tabsim.clock import NS_PER_S
from services.tabsim.config import TabSimConfig
from services.tabsim.curves import pool_fraction
from services.tabsim.event import EventOptions
from services.tabsim.model import hold_shares, state_at
from services.tabsim.plunges import NEXT_LEAD_S
from services.tabsim.pretty import dumps
from services.tabsim.scenario import RaceModel
from services.tabsim.server import RunningTabSim, run_tabsim, start_tabsim_process
from services.tabsim.state import SimState
from services.transformer.engine import run_transform
from services.transformer.records import PriorState, RaceUpdateRecord, empty_state
from tests.tab.conftest import FLAGS, racing_http

# 2026-11-28T23:00:00Z, noon NZDT: a pinned day, so the races, the plunge and the money are the same
# on every run.
PINNED = 1_795_906_800 * NS_PER_S
SHARE = 0.4
# A whole hold percentage is the money tracker's resolution: at each poll a runner's money is known
# to about one point of the pool, two with the tracker's one-point nudge. Bucket 5 holds about a
# fifth of the final pools, so two points of the pool are under a tenth of its money.
RESOLUTION_POINTS = 2


@pytest.fixture
async def pinned() -> AsyncIterator[RunningTabSim]:
    """A simulated TAB on the pinned day, its clock held nearly still."""
    async with run_tabsim(TabSimConfig(port=0, seed=11, now_ns=PINNED, speed=0.001)) as running:
        yield running


def _plain_race(scenario: dict[str, Any], now_s: int) -> dict[str, Any]:
    """The first default-filter race with bucket 5 ahead that runs as advertised.

    No delay, start change, abandonment or late scratching: the money around the plunge is the
    plunge's and the drift's alone.
    """
    races = [
        race
        for meeting in scenario["meetings"]
        if meeting["country"] in ("NZ", "AUS") and meeting["category"] in ("T", "H")
        for race in meeting["races"]
        if race["abandoned_at"] is None
        and race["start_change"] is None
        and race["delay_s"] == 0
        and not any(scratching["late"] for scratching in race["scratchings"])
        and race["final_start"] - 10 * 60 > now_s + 60
    ]
    return min(races, key=lambda race: race["final_start"])


async def _poll(admin: TabSimAdmin, http: httpx.AsyncClient, race_id: str, at_s: float) -> tuple[bytes, int]:
    """The event payload (inflated) at simulated instant `at_s`, and that instant in epoch ms."""
    clock = await admin.set_clock(now=int(at_s * 1000))
    reply = await http.get(f"/events/{race_id}", params=FLAGS)
    assert reply.status_code == 200, reply.text
    return reply.content, int(clock["now_epoch_ms"])


def _transform(payload: bytes, polled_at_ms: int, prior: PriorState) -> RaceUpdateRecord:
    return run_transform(raceday_core, payload, polled_at_ms, prior)


def _runner(payload: bytes, entrant_id: str) -> dict[str, Any]:
    runners = json.loads(payload)["data"]["runners"]
    runner: dict[str, Any] = next(r for r in runners if r["entrant_id"] == entrant_id)
    return runner


def _holds(payload: bytes) -> dict[str, int]:
    holds: dict[str, int] = {}
    for row in json.loads(payload)["data"]["money_tracker"]["entrants"]:
        holds[row["entrant_id"]] = holds.get(row["entrant_id"], 0) + row["hold_percentage"]
    return holds


async def test_a_plunge_takes_its_share_of_the_bucket_and_shortens_the_price(pinned: RunningTabSim) -> None:
    async with TabSimAdmin(pinned.url) as admin, racing_http(pinned.url) as http:
        race = _plain_race(await admin.scenario(), PINNED // NS_PER_S)
        race_id, start = race["race_id"], race["final_start"]
        opens, closes = start - 9.5 * 60, start - 4.5 * 60  # bucket 5: 4.5 <= minutes to start < 9.5
        # Polls the way the fetcher makes them within 15 minutes of the start: the last one of the
        # column before (bucket 10), the last one in bucket 5, and one a minute later (bucket 4).
        before_at, in_at, after_at = opens - 10, closes - 10, closes + 50

        before_plain, _ = await _poll(admin, http, race_id, before_at)
        in_plain, _ = await _poll(admin, http, race_id, in_at)
        runners = json.loads(before_plain)["data"]["runners"]
        holds = _holds(before_plain)
        # A runner from the middle of the market: its rise is a real move, not the favourite firming.
        ranked = sorted((r for r in runners if not r["is_scratched"]), key=lambda r: -holds[r["entrant_id"]])
        runner = ranked[len(ranked) // 2]
        entrant_id = runner["entrant_id"]

        listed = await admin.add_plunge(race_id, runner_number=runner["runner_number"], share=SHARE, bucket=5)
        assert listed["plunges"] == [
            {
                "race_id": race_id,
                "entrant_id": entrant_id,
                "runner_number": runner["runner_number"],
                "share": SHARE,
                "bucket": 5,
                "pools": ["win", "place"],
                "windows": [{"opens_after": int(opens), "closes_at": int(closes)}],
            }
        ]
        before, before_ms = await _poll(admin, http, race_id, before_at)
        during, during_ms = await _poll(admin, http, race_id, in_at)
        after, after_ms = await _poll(admin, http, race_id, after_at)

    # Before its bucket the race is exactly as laid out; in it only the money's split changes.
    assert json.loads(before)["data"] == json.loads(before_plain)["data"]
    pools = json.loads(during)["data"]["tote_pools"]
    assert pools == json.loads(in_plain)["data"]["tote_pools"]
    assert 97 <= sum(_holds(during).values()) <= 103

    first = _transform(before, before_ms, empty_state(race_id))
    second = _transform(during, during_ms, first["state"])
    third = _transform(after, after_ms, second["state"])
    assert {row["time_interval"] for row in first["money_flow"]} == {10}
    assert {row["time_interval"] for row in second["money_flow"]} == {5}
    assert {row["time_interval"] for row in third["money_flow"]} == {4}

    increments = {row["entrant_id"]: row["incremental_win_amount"] for row in second["money_flow"]}
    positive = sum(amount for amount in increments.values() if amount > 0)
    win_total = second["money_flow"][0]["win_pool_total"]
    tolerance = RESOLUTION_POINTS * (win_total / 100) / positive
    assert tolerance < 0.1
    assert increments[entrant_id] / positive == pytest.approx(SHARE, abs=tolerance)
    # The other runners share the rest: the plunge does not take money from them.
    assert all(amount >= -(win_total / 100) for amount in increments.values())
    # The same for the Place money (one hold percentage splits both pools).
    place = {row["entrant_id"]: row["incremental_place_amount"] for row in second["money_flow"]}
    place_positive = sum(amount for amount in place.values() if amount > 0)
    assert place[entrant_id] / place_positive == pytest.approx(SHARE, abs=tolerance)

    # The plunge is a move worth an alert (issue 14): the runner's share of the column's Win and
    # Place money rises by at least the indicator threshold against the column before.
    risen = {(m["entrant_id"], m["kind"]): m["value"] for m in second["moves"]}
    assert risen[(entrant_id, "win_money")] >= raceday_core.ALERT_THRESHOLD
    assert risen[(entrant_id, "place_money")] >= raceday_core.ALERT_THRESHOLD
    assert {(m["time_interval"], m["previous_interval"]) for m in second["moves"]} == {(5, 10)}

    # The bookmaker follows the money (a minute behind): the fixed win price shortens.
    fixed = {row["entrant_id"]: row["fixed_win_odds"] for row in second["money_flow"]}
    assert fixed[entrant_id] is not None
    assert fixed[entrant_id] < _runner(before, entrant_id)["odds"]["fixed_win"]
    assert fixed[entrant_id] < _runner(in_plain, entrant_id)["odds"]["fixed_win"]

    # After the bucket the money stays bet: no fall back, new money is shared as before.
    later = {row["entrant_id"]: row["incremental_win_amount"] for row in third["money_flow"]}
    assert later[entrant_id] >= -(win_total / 100)
    assert _holds(after)[entrant_id] >= _holds(during)[entrant_id] - 2


def _money(race: RaceModel, index: int, t: float) -> float:
    """A runner's money in the model: its hold share of the pools bet so far (share of final x percent)."""
    frozen = min(t, race.freeze_at)
    return pool_fraction(race.jump - frozen) * hold_shares(race, frozen)[index]


def test_the_model_moves_exactly_the_share_of_the_money_in_each_window() -> None:
    state = SimState(TabSimConfig(seed=11, now_ns=PINNED))
    assert state.day is not None
    now_s = PINNED // NS_PER_S
    ahead = [
        race
        for race in state.day.races.values()
        if race.status_at(now_s) == "Open" and race.freeze_at > now_s
    ]
    changed = next(race for race in ahead if race.start_change is not None)
    # A start-time change part-way through bucket 20 splits it: before the change it is counted from
    # the old start, after it from the new one, as the money flow counts it.
    split = next(bucket for bucket in (25, 20, 15) if len(changed.bucket_windows(bucket)) == 2)
    delayed = next(race for race in ahead if race.delay_s > 0 and race is not changed)
    cases = [(changed, split), (delayed, 5), (ahead[0], 60), (ahead[1], 1), (ahead[2], 0)]
    for race, bucket in cases:
        index = next(i for i, r in enumerate(race.runners) if r.scratched_at is None)
        state.clear_plunges()
        state.add_plunges(
            [
                {
                    "race_id": race.race_id,
                    "entrant_id": race.runners[index].entrant_id,
                    "share": 0.35,
                    "bucket": bucket,
                }
            ]
        )
        plunged = state.day.races[race.race_id]
        windows = plunged.bucket_windows(bucket)
        first_opens = windows[0][0]
        budget = 100 - sum(extra.hold for extra in race.extras)
        if not math.isinf(first_opens):
            # Nothing changes before the bucket.
            for t in range(int(first_opens) - 1200, int(first_opens) + 1, 60):
                assert state_at(plunged, t) == state_at(race, t)
        for opens, closes in windows:
            start = max(opens, race.jump - 86_400)
            added = (
                pool_fraction(race.jump - min(closes, race.freeze_at)) - pool_fraction(race.jump - start)
            ) * budget
            gained = _money(plunged, index, closes) - _money(plunged, index, start)
            assert gained == pytest.approx(0.35 * added, rel=1e-9, abs=1e-12), (race.race_id, bucket)
        last_closes = windows[-1][1]
        for t in range(int(max(first_opens, race.jump - 4 * 3600)), int(last_closes) + 600, 15):
            now, plain = state_at(plunged, t), state_at(race, t)
            assert now.pools == plain.pools and 97 <= now.hold_total <= 103
            assert sum(hold_shares(plunged, t)) == pytest.approx(budget)
        # In its bucket the runner only gains (after it, new money follows the drift as before).
        for opens, closes in windows:
            instants = range(int(max(opens, race.jump - 4 * 3600)), int(closes) + 1, 5)
            money = [_money(plunged, index, t) for t in instants]
            assert all(b >= a - 1e-9 for a, b in itertools.pairwise(money)), (race.race_id, bucket)


async def test_plunges_in_snapshot_mode_refresh_the_cached_bodies() -> None:
    config = TabSimConfig(port=0, seed=11, now_ns=PINNED, speed=0.001, snapshot_s=15)
    async with (
        run_tabsim(config) as running,
        TabSimAdmin(running.url) as admin,
        racing_http(running.url) as http,
    ):
        race = _plain_race(await admin.scenario(), PINNED // NS_PER_S)
        race_id, start = race["race_id"], race["final_start"]
        cached, _ = await _poll(admin, http, race_id, start - 5 * 60)
        entrant_id = json.loads(cached)["data"]["runners"][0]["entrant_id"]
        await admin.add_plunge(race_id, entrant_id=entrant_id, share=0.6, bucket=5)
        plunged = (await http.get(f"/events/{race_id}", params=FLAGS)).content
        again = (await http.get(f"/events/{race_id}", params=FLAGS)).content
        await admin.clear_plunges()
        cleared = (await http.get(f"/events/{race_id}", params=FLAGS)).content
    # Same refresh boundary, new money: the snapshot taken before the plunge is not served.
    assert json.loads(plunged)["header"] == json.loads(cached)["header"]
    assert _holds(plunged)[entrant_id] > _holds(cached)[entrant_id] + 5
    assert again == plunged
    assert cleared == cached


def test_start_up_plunges_bind_to_the_next_race_and_render_the_same_each_time() -> None:
    config = TabSimConfig(
        seed=11, now_ns=PINNED, plunges=({"race_id": "next", "runner_number": 2, "share": 0.5, "bucket": 5},)
    )
    first, second = SimState(config), SimState(config)
    assert first.plunges == second.plunges and len(first.plunges) == 1
    plunge = first.plunges[0]
    assert first.day is not None and second.day is not None
    race = first.day.races[plunge.race_id]
    now_s = PINNED // NS_PER_S
    # The first Open local race whose bucket 5 opens far enough ahead for a poller to see it whole.
    assert race.local and race.status_at(now_s) == "Open"
    assert race.advertised_start(now_s) - 9.5 * 60 >= now_s + NEXT_LEAD_S
    earlier = [
        other
        for other in first.day.races.values()
        if other.local
        and other.abandoned_at is None
        and not any(r.runner_number == 2 and r.scratched_at is not None for r in other.runners)
        and now_s + NEXT_LEAD_S
        <= other.advertised_start(now_s) - 9.5 * 60
        < race.advertised_start(now_s) - 9.5 * 60
    ]
    assert earlier == []
    assert race.injected_plunges and race.injected_plunges[0].share == 0.5
    options = EventOptions(with_money_tracker=True, with_tote_trends=True)
    at = race.final_start - 5 * 60
    a, _ = first.renderer.data(race, at, options)
    b, _ = second.renderer.data(second.day.races[plunge.race_id], at, options)
    assert dumps(a) == dumps(b)
    # reset() restores the start-up plunges; clearing removes them from the day's races.
    first.clear_plunges()
    assert not first.day.races[plunge.race_id].injected_plunges
    first.reset()
    assert first.plunges == second.plunges
    assert first.day.races[plunge.race_id].injected_plunges == race.injected_plunges


async def test_admin_api_sets_lists_and_clears_plunges(pinned: RunningTabSim) -> None:
    async with TabSimAdmin(pinned.url) as admin, httpx.AsyncClient(base_url=pinned.url + "/__sim") as raw:
        race = _plain_race(await admin.scenario(), PINNED // NS_PER_S)
        race_id = race["race_id"]
        assert (await admin.plunges()) == {"plunges": []}
        await admin.add_plunge(race_id, runner_number=1, share=0.3, bucket=5)
        await admin.add_plunge(race_id, runner_number=2, share=0.5, bucket=5)
        # The same race, runner and bucket again: replaced, not added.
        listed = await admin.add_plunge(race_id, runner_number=1, share=0.25, bucket=5)
        assert [(p["runner_number"], p["share"]) for p in listed["plunges"]] == [(1, 0.25), (2, 0.5)]
        plan = await admin.race(race_id)
        assert [(p["runner_number"], p["bucket"]) for p in plan["injected_plunges"]] == [(1, 5), (2, 5)]
        # An array is taken all or nothing; `next` names a race by when it runs.
        batch = [
            {"race_id": "next", "runner_number": 1, "share": 1, "bucket": 0, "pools": ["place", "win"]},
            {"race_id": "next+1", "runner_number": 1, "share": 0.2, "bucket": 60},
        ]
        reply = await raw.post("/plunges", json=batch)
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["plunges"]) == 4
        bad_batch = [
            {"race_id": race_id, "runner_number": 3, "share": 0.1, "bucket": 10},
            {"race_id": race_id},
        ]
        reply = await raw.post("/plunges", json=bad_batch)
        assert reply.status_code == 400 and reply.json()["error"].startswith("plunge 2: ")
        assert len((await admin.plunges())["plunges"]) == 4

        bad: list[tuple[Any, str]] = [
            ({"runner_number": 1, "share": 0.5, "bucket": 5}, "race_id"),
            ({"race_id": "nope", "runner_number": 1, "share": 0.5, "bucket": 5}, "race_id"),
            ({"race_id": race_id, "share": 0.5, "bucket": 5}, "runner_number"),
            (
                {"race_id": race_id, "runner_number": 1, "entrant_id": "x", "share": 0.5, "bucket": 5},
                "entrant_id",
            ),
            ({"race_id": race_id, "runner_number": 99, "share": 0.5, "bucket": 5}, "runner_number"),
            ({"race_id": race_id, "runner_number": True, "share": 0.5, "bucket": 5}, "runner_number"),
            ({"race_id": race_id, "entrant_id": "not-a-runner", "share": 0.5, "bucket": 5}, "entrant_id"),
            ({"race_id": race_id, "runner_number": 1, "share": 0, "bucket": 5}, "share"),
            ({"race_id": race_id, "runner_number": 1, "share": 1.5, "bucket": 5}, "share"),
            ({"race_id": race_id, "runner_number": 1, "share": "half", "bucket": 5}, "share"),
            (
                {"race_id": race_id, "runner_number": 3, "share": 0.3, "bucket": 5},
                "share",
            ),  # 0.25 + 0.5 + 0.3
            ({"race_id": race_id, "runner_number": 1, "share": 0.5, "bucket": 7}, "bucket"),
            ({"race_id": race_id, "runner_number": 1, "share": 0.5, "bucket": -1}, "bucket"),
            ({"race_id": race_id, "runner_number": 1, "share": 0.5}, "bucket"),
            ({"race_id": race_id, "runner_number": 1, "share": 0.5, "bucket": 5, "pools": ["win"]}, "pools"),
            ({"race_id": race_id, "runner_number": 1, "share": 0.5, "bucket": 5, "when": "now"}, "when"),
            ({"race_id": "next+500", "runner_number": 1, "share": 0.5, "bucket": 5}, "race_id"),
            ("half", "plunge object"),
            ([], "plunge object"),
        ]
        for body, field in bad:
            reply = await raw.post("/plunges", json=body)
            assert reply.status_code == 400, (body, reply.text)
            assert field in reply.json()["error"], (body, reply.json())
        broken = await raw.post(
            "/plunges", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400
        assert len((await admin.plunges())["plunges"]) == 4

        # A day laid out again keeps the plunges whose race it still has: all of them for the same
        # seed and anchor, none for another seed.
        anchor_ms = (await admin.scenario())["anchor"] * 1000
        await admin.set_scenario(seed=11, anchor=anchor_ms)
        assert len((await admin.plunges())["plunges"]) == 4
        await admin.set_scenario(seed=12, anchor=anchor_ms)
        assert (await admin.plunges()) == {"plunges": []}
        await admin.set_scenario(seed=11, anchor=anchor_ms)
        await admin.add_plunge(race_id, runner_number=1, share=0.3, bucket=5)

        assert (await admin.clear_plunges()) == {"plunges": []}
        assert (await admin.race(race_id))["injected_plunges"] == []
        await admin.add_plunge(race_id, runner_number=1, share=0.3, bucket=5)
        await admin.reset()  # back to the start-up plunges: none
        assert (await admin.plunges()) == {"plunges": []}


async def test_replay_mode_has_no_plunges() -> None:
    async with run_tabsim(TabSimConfig(port=0, replay=True)) as replay, TabSimAdmin(replay.url) as admin:
        with pytest.raises(RuntimeError, match="409"):
            await admin.add_plunge("anything", runner_number=1, share=0.5, bucket=5)
        assert (await admin.plunges()) == {"plunges": []}
    with pytest.raises(ValueError, match="plunges need the synthetic day"):
        TabSimConfig(
            replay=True, plunges=({"race_id": "next", "runner_number": 1, "share": 0.5, "bucket": 5},)
        )


def _config(argv: list[str], environ: dict[str, str] | None = None) -> TabSimConfig:
    parser = argparse.ArgumentParser()
    _add_arguments(parser)
    return config_from_args(parser.parse_args(argv), Env(environ or {}))


def test_plunges_from_flags_and_the_environment() -> None:
    flags = _config(["--plunge", "next:3:0.5:5", "--plunge", "abc-123:e-7:1:0"])
    assert flags.plunges == (
        {"race_id": "next", "runner_number": 3, "share": 0.5, "bucket": 5},
        {"race_id": "abc-123", "entrant_id": "e-7", "share": 1.0, "bucket": 0},
    )
    compact = _config([], {"TABSIM_PLUNGES": "next:3:0.5:5, next+1:2:0.25:10"})
    assert [p["race_id"] for p in compact.plunges] == ["next", "next+1"]
    as_json = [{"race_id": "next", "runner_number": 4, "share": 0.7, "bucket": 1}]
    assert _config([], {"TABSIM_PLUNGES": json.dumps(as_json)}).plunges == tuple(as_json)
    # The flags replace the variable's plunges.
    both = _config(["--plunge", "next:1:0.5:5"], {"TABSIM_PLUNGES": "next:3:0.5:5"})
    assert [p["runner_number"] for p in both.plunges] == [1]
    for argv, environ, name, problem in (
        (["--plunge", "next:3:0.5"], {}, "--plunge", "RACE:RUNNER:SHARE:BUCKET"),
        (["--plunge", "next:3:2:5"], {}, "--plunge", "share"),
        (["--plunge", "next:3:0.5:6"], {}, "--plunge", "bucket"),
        ([], {"TABSIM_PLUNGES": '[{"race_id": "next"}]'}, "TABSIM_PLUNGES", "runner_number"),
        ([], {"TABSIM_PLUNGES": "next:1:0.5:5", "TABSIM_REPLAY": "true"}, "TABSIM_PLUNGES", "TABSIM_REPLAY"),
    ):
        with pytest.raises(ConfigError) as caught:
            _config(argv, environ)
        assert caught.value.name == name and problem in caught.value.problem, (argv, environ, caught.value)


def test_cli_starts_with_a_plunge_and_refuses_one_that_fits_no_race() -> None:
    with start_tabsim_process(
        ["--seed", "3", "--meetings", "2", "--races", "6", "--plunge", "next:1:0.5:5"]
    ) as process:
        plunges = httpx.get(process.url + "/__sim/plunges").json()["plunges"]
        assert [(p["runner_number"], p["share"], p["bucket"]) for p in plunges] == [(1, 0.5, 5)]
    assert process.process.returncode == 0
    refused = subprocess.run(
        [sys.executable, "-m", "services.tabsim.cli", "--port", "0", "--plunge", "no-such-race:1:0.5:5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "--plunge" in refused.stderr and "no-such-race" in refused.stderr
    described = subprocess.run(
        [sys.executable, "-m", "services.tabsim.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "--plunge RACE:RUNNER:SHARE:BUCKET" in described.stdout
