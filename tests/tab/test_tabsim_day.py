"""The simulated race day: layout around now, incidents, determinism, modes, routes and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.common.config import Env
from services.common.nztime import nz_date
from services.tabsim.admin_client import TabSimAdmin
from services.tabsim.clock import NS_PER_S, SimClock
from services.tabsim.config import TabSimConfig
from services.tabsim.event import EventOptions
from services.tabsim.pretty import dumps
from services.tabsim.server import RunningTabSim, run_tabsim, start_tabsim_process
from services.tabsim.state import SimState
from services.tabsim.templates import RECORDED_EVENT_ID, RECORDED_MEETING_ID
from tests.tab.conftest import FLAGS, NZTAB_FIXTURES, racing_http

PINNED = 1_795_870_800 * 1_000_000_000  # 2026-11-28T11:00:00Z, 00:00 NZDT the next day


def _races(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    return [race for meeting in scenario["meetings"] for race in meeting["races"]]


async def test_day_is_laid_out_around_now(sim: RunningTabSim, admin: TabSimAdmin) -> None:
    scenario = await admin.scenario()
    now_s = (await admin.clock())["now_epoch_ms"] / 1000
    races = _races(scenario)
    assert scenario["date"] == nz_date(datetime.now(UTC)).isoformat()
    assert {m["date"] for m in scenario["meetings"]} == {scenario["date"]}
    finished = [r for r in races if r["jump"] + r["closed_s"] + r["interim_s"] < now_s]
    soon = [r for r in races if 0 < r["final_start"] - now_s <= 10 * 60]
    later = [r for r in races if r["final_start"] - now_s > 2 * 3600]
    assert finished and soon and later
    kinds = {(m["country"] in ("NZ", "AUS"), m["category"]) for m in scenario["meetings"]}
    assert (True, "G") in kinds or (False, "G") in kinds  # greyhounds to exercise the filter
    assert any(not local for local, category in kinds if category != "G")  # overseas too
    # The incidents of spec §10.4: one start-time change, a late scratching, abandonments, delays.
    assert sum(1 for r in races if r["start_change"] is not None) == 1
    assert any(s["late"] and s["at"] > now_s for r in races for s in r["scratchings"])
    assert any(r["abandoned_at"] is not None and r["abandoned_at"] > now_s for r in races)
    assert any(r["delay_s"] > 0 and r["final_start"] > now_s for r in races)
    assert all(r["plunge_entrant_id"] for r in races)


def test_same_seed_and_instant_give_byte_identical_data() -> None:
    config = TabSimConfig(port=0, seed=42, now_ns=PINNED)
    first, second = SimState(config), SimState(config)
    other = SimState(TabSimConfig(port=0, seed=43, now_ns=PINNED))
    assert first.day is not None and second.day is not None and other.day is not None
    assert list(first.day.races) == list(second.day.races)
    assert not set(first.day.races) & set(other.day.races)
    options = EventOptions(with_money_tracker=True, with_tote_trends=True)
    for race_id, race in list(first.day.races.items())[:12]:
        for at in (race.jump - 1800, race.jump - 60, race.jump + 400):
            one, _ = first.renderer.data(race, at + 0.3, options)
            two, _ = second.renderer.data(second.day.races[race_id], at + 0.3, options)
            assert dumps(one) == dumps(two)
    assert first.day.date == "2026-11-29"


async def test_late_scratching_abandonment_and_delay(
    sim: RunningTabSim, admin: TabSimAdmin, http: httpx.AsyncClient
) -> None:
    races = _races(await admin.scenario())
    late = next(r for r in races if any(s["late"] for s in r["scratchings"]))
    scratch = next(s for s in late["scratchings"] if s["late"])

    async def runner_at(at: int) -> tuple[dict[str, Any], int]:
        await admin.set_clock(now=at * 1000)
        data = (await http.get(f"/events/{late['race_id']}", params=FLAGS)).json()["data"]
        runner = next(r for r in data["runners"] if r["entrant_id"] == scratch["entrant_id"])
        hold = sum(
            row["hold_percentage"]
            for row in data["money_tracker"]["entrants"]
            if row["entrant_id"] == scratch["entrant_id"]
        )
        return runner, hold

    runner, hold = await runner_at(scratch["at"] - 30)
    assert not runner["is_scratched"] and runner["odds"]["fixed_win"] > 1 and hold > 0
    runner, hold = await runner_at(scratch["at"] + 30)
    assert runner["is_scratched"] and runner["is_late_scratched"] and runner["scratch_time"] == scratch["at"]
    assert runner["odds"] == {"fixed_win": 0, "fixed_place": 0} and hold == 0

    abandoned = next(r for r in races if r["abandoned_at"] is not None)
    await admin.set_clock(now=(abandoned["abandoned_at"] + 30) * 1000)
    data = (await http.get(f"/events/{abandoned['race_id']}")).json()["data"]
    assert data["race"]["status"] == "Abandoned" and data["results"] is None

    delayed = next(r for r in races if r["delay_s"] >= 60 and r["abandoned_at"] is None)
    await admin.set_clock(now=(delayed["final_start"] + 30) * 1000)
    race = (await http.get(f"/events/{delayed['race_id']}")).json()["data"]["race"]
    assert race["status"] == "Open" and race["advertised_start"] == delayed["final_start"]
    assert race["actual_start"] == 0


async def test_event_flags_params_echo_and_envelope(
    sim: RunningTabSim, admin: TabSimAdmin, http: httpx.AsyncClient
) -> None:
    race = _races(await admin.scenario())[0]
    bare = await http.get(f"/events/{race['race_id']}", params={"with_will_pays": "true", "junk": "1"})
    document = bare.json()
    assert document["params"]["will_pays"] is True and "with_will_pays" not in document["params"]
    assert document["params"]["with_money_tracker"] is False and "junk" not in document["params"]
    assert document["header"]["url"].endswith("?with_will_pays=true&junk=1")
    assert document["data"]["money_tracker"] is None
    assert all("tote_trends" not in pool for pool in document["data"]["tote_pools"])
    assert document["data"]["error"] == ""
    full = (await http.get(f"/events/{race['race_id']}", params=FLAGS)).json()
    assert full["params"]["with_money_tracker"] is True and full["params"]["with_tote_trends_data"] is True
    assert full["data"]["money_tracker"]["entrants"]
    trends = [pool["product_type"] for pool in full["data"]["tote_pools"] if "tote_trends" in pool]
    assert trends == ["Trifecta", "FirstFour", "EarlyQuadrella"]
    assert full["data"]["race"]["start_time_nz"].endswith(("NZST", "NZDT"))


async def test_meetings_query_parameters(
    sim: RunningTabSim, admin: TabSimAdmin, http: httpx.AsyncClient
) -> None:
    scenario = await admin.scenario()
    listing = (await http.get("/meetings", params={"limit": 250})).json()
    assert listing["params"]["limit"] == 200 and listing["params"]["offset"] == 0
    assert len(listing["data"]["meetings"]) == len(scenario["meetings"])  # absent dates = today
    paged = (await http.get("/meetings", params={"date_from": "today", "limit": 3, "offset": 3})).json()
    assert [m["meeting"] for m in paged["data"]["meetings"]] == [
        m["meeting_id"] for m in scenario["meetings"][3:6]
    ]
    nz = (await http.get("/meetings", params={"country": "NZ", "category": "T"})).json()["data"]["meetings"]
    assert all(m["country"] == "NZ" and m["category"] == "T" for m in nz)
    other_day = (
        await http.get("/meetings", params={"date_from": "2025-07-17", "date_to": "2025-07-17"})
    ).json()
    assert other_day["data"]["meetings"] == []
    assert other_day["params"]["date_from"] == "2025-07-17T00:00:00Z"
    bad = await http.get("/meetings", params={"date_from": "17/07/2025"})
    assert bad.status_code == 400 and bad.json()["header"]["error_code"] == "BAD_REQUEST"
    unknown = await http.get("/nowhere")
    assert unknown.status_code == 404 and unknown.json()["header"]["error_code"] == "NOT_FOUND"


async def test_bench_scenario_is_all_open_and_full_size(
    sim: RunningTabSim, admin: TabSimAdmin, http: httpx.AsyncClient
) -> None:
    scenario = await admin.set_scenario(kind="bench", meetings=3, races=5)
    now_s = (await admin.clock())["now_epoch_ms"] / 1000
    races = _races(scenario)
    assert len(races) == 15
    assert all(120 - 60 <= r["final_start"] - now_s <= 600 for r in races)
    assert all(m["country"] in ("NZ", "AUS") and m["category"] in ("T", "H") for m in scenario["meetings"])
    for race in races[:3]:
        response = await http.get(f"/events/{race['race_id']}", params=FLAGS)
        data = response.json()["data"]
        assert data["race"]["status"] == "Open" and len(data["runners"]) == 8
        assert 300_000 <= len(response.content) <= 520_000  # the recorded event is 410 KB


async def test_replay_serves_the_recordings_verbatim() -> None:
    async with (
        run_tabsim(TabSimConfig(port=0, replay=True)) as replay,
        racing_http(replay.url) as http,
    ):
        event = await http.get(f"/events/{RECORDED_EVENT_ID}", params=FLAGS)
        assert event.content == (NZTAB_FIXTURES / "race-event-final.json").read_bytes()
        meetings = await http.get("/meetings", params={"date_from": "2025-07-17", "date_to": "2025-07-17"})
        assert meetings.content == (NZTAB_FIXTURES / "meetings-list.json").read_bytes()
        detail = await http.get(f"/meetings/{RECORDED_MEETING_ID}")
        assert detail.content == (NZTAB_FIXTURES / "meeting-detail.json").read_bytes()
        assert (await http.get("/list")).content == (NZTAB_FIXTURES / "races-list.json").read_bytes()
        assert (await http.get("/events/0f57e087-0000-0000-0000-000000000000")).status_code == 404
        second_page = await http.get("/meetings", params={"date_from": "2025-07-17", "offset": 100})
        assert second_page.json()["data"]["meetings"] == []
        async with TabSimAdmin(replay.url) as admin:
            await admin.set_faults(data_error={"count": 1, "message": "boom"})
        errored = await http.get(f"/events/{RECORDED_EVENT_ID}")
        assert errored.json()["data"]["error"] == "boom"


async def test_admin_api_validates_and_reports(sim: RunningTabSim, admin: TabSimAdmin) -> None:
    with pytest.raises(RuntimeError, match="unknown fault knob"):
        await admin.set_faults(explode={"rate": 1})
    with pytest.raises(RuntimeError, match="rate must be within"):
        await admin.set_faults(http_5xx={"rate": 2})
    with pytest.raises(RuntimeError, match="unknown clock settings"):
        await admin.set_clock(tomorrow=True)
    faults = await admin.set_faults(http_5xx={"count": 1, "route": "events"}, require_identification=False)
    assert faults["http_5xx"]["count"] == 1 and faults["require_identification"] is False
    cleared = await admin.clear_faults()
    assert cleared["http_5xx"]["count"] == 0 and cleared["require_identification"] is True
    before = (await admin.clock())["now_epoch_ms"]
    after = (await admin.set_clock(advance_s=3600))["now_epoch_ms"]
    assert 3_600_000 <= after - before < 3_660_000
    assert (await admin.health())["mode"] == "simulate"


def test_cli_runs_the_simulator_as_a_process() -> None:
    with start_tabsim_process(
        ["--seed", "3", "--speed", "60", "--meetings", "2", "--races", "3", "--no-identification-check"]
    ) as process:
        clock_a = httpx.get(process.url + "/__sim/clock").json()
        scenario = httpx.get(process.url + "/__sim/scenario").json()
        assert scenario["seed"] == 3 and len(scenario["meetings"]) == 2
        assert all(len(m["races"]) == 3 for m in scenario["meetings"])
        assert clock_a["speed"] == 60
        listing = httpx.get(process.url + "/affiliates/v1/racing/meetings")
        assert listing.status_code == 200 and len(listing.json()["data"]["meetings"]) == 2
        time.sleep(0.2)
        clock_b = httpx.get(process.url + "/__sim/clock").json()
        assert clock_b["now_epoch_ms"] - clock_a["now_epoch_ms"] >= 0.2 * 60 * 1000
    assert process.process.returncode == 0


def test_cli_rejects_bad_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.tabsim.cli", "--meetings", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "meetings must be 1..200" in result.stderr
    bad_faults = subprocess.run(
        [sys.executable, "-m", "services.tabsim.cli", "--faults", json.dumps({"slow": {"delay_s": -1}})],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad_faults.returncode == 2 and "--faults" in bad_faults.stderr


def test_clock_follows_the_shared_anchor_and_speed() -> None:
    anchor_ms = int(time.time() * 1000) - 10_000  # `raceday up` started 10 s ago at 60x
    config = TabSimConfig.from_env(
        Env({"RACEDAY_CLOCK_ANCHOR_MS": str(anchor_ms), "RACEDAY_CLOCK_SPEED": "60"})
    )
    assert config.speed == 60.0
    state = SimState(config)
    # Bracketed by real readings, so a slow machine between them cannot fail the check.
    before_ms = time.time() * 1000
    sim_ms = state.clock.now_ns() / 1_000_000
    after_ms = time.time() * 1000
    assert (
        anchor_ms + (before_ms - anchor_ms) * 60 - 1 <= sim_ms <= anchor_ms + (after_ms - anchor_ms) * 60 + 1
    )
    pinned = SimClock(speed=2.0, now_ns=PINNED)
    pinned.advance_s(60)
    assert 60 <= (pinned.now_ns() - PINNED) / 1e9 < 61
    pinned.set_speed(1.0)
    assert pinned.speed == 1.0


async def test_snapshots_reuse_a_rendered_event_until_the_race_refreshes() -> None:
    config = TabSimConfig(port=0, seed=11, snapshot_s=15)
    async with (
        run_tabsim(config) as running,
        TabSimAdmin(running.url) as admin,
        racing_http(running.url) as http,
    ):
        await admin.set_clock(speed=0.001)  # hold simulated time nearly still
        race_ids = [race["race_id"] for race in _races(await admin.scenario())[:6]]
        race_id = race_ids[0]
        first = await http.get(f"/events/{race_id}", params=FLAGS)
        asked_at = _ns((await admin.clock())["now"])
        again = await http.get(f"/events/{race_id}", params=FLAGS)
        other_flags = await http.get(f"/events/{race_id}", params={"with_money_tracker": "true"})
        others = [await http.get(f"/events/{other}", params=FLAGS) for other in race_ids[1:]]
        await admin.set_clock(advance_s=16)
        later = await http.get(f"/events/{race_id}", params=FLAGS)
    assert first.content == again.content
    assert other_flags.json()["data"]["money_tracker"] is not None
    assert other_flags.content != first.content
    # The data is as of the race's last refresh: at most one refresh interval old, and the next
    # refresh comes a whole number of intervals later (the race keeps its phase).
    generated = _ns(first.json()["header"]["generated_time"])
    assert 0 <= asked_at - generated < 15 * NS_PER_S
    refreshed = _ns(later.json()["header"]["generated_time"])
    assert refreshed > generated and (refreshed - generated) % (15 * NS_PER_S) == 0
    # Races refresh at phases of their own, not all at once.
    phases = {_ns(reply.json()["header"]["generated_time"]) % (15 * NS_PER_S) for reply in [first, *others]}
    assert len(phases) > 1


def _ns(rfc3339: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 UTC instant with up to nine fractional digits."""
    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp())
    return seconds * NS_PER_S + int(fraction.ljust(9, "0")[:9] or 0)
