"""The REST contract (rest-api.md §1-2) against a real stack: every endpoint's status codes, field
names and types (validated against the gateway's own OpenAPI document), both parameter casings,
NZ-offset timestamps and JSON error bodies."""

from __future__ import annotations

import contextlib
import gzip
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from services.common.nztime import nz_date
from services.gateway.app import GatewayApp
from tests.gateway import golden
from tests.gateway.conftest import AlertRow, Stack, earlier_today, health_when, insert_alerts, start_service
from tests.gateway.contract import SchemaChecker, assert_nz_timestamps

TIMESTAMP_RE = re.compile(r"\.\d{3}[+-]\d{2}:\d{2}$")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def checker(seeded_stack: Stack) -> AsyncIterator[SchemaChecker]:
    """The gateway's OpenAPI document as a response validator."""
    response = await seeded_stack.http.get("/api/openapi.json")
    assert response.status_code == 200
    yield SchemaChecker(response.json())


async def get_ok(stack: Stack, checker: SchemaChecker, template: str, url: str, **params: Any) -> Any:
    """GET, expect 200, validate against the documented schema and the timestamp rule."""
    response = await stack.http.get(url, params=params)
    assert response.status_code == 200, (url, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    checker.validate_response(template, "GET", 200, body)
    assert_nz_timestamps(body)
    return body


async def error(stack: Stack, method: str, url: str, status: int, **kwargs: Any) -> dict[str, Any]:
    """A JSON error response with `status`."""
    response = await stack.http.request(method, url, **kwargs)
    assert response.status_code == status, (url, response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    assert "x-request-id" in response.headers
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text
    return body


def day(stack: Stack) -> Any:
    assert stack.day is not None
    return stack.day


# --- health ---------------------------------------------------------------------------------------


async def test_health_reports_the_services_behind_the_gateway(
    seeded_stack: Stack, checker: SchemaChecker
) -> None:
    expected = {"writer": "serving", "transformer": "serving", "fetcher": "unknown"}
    for path in ("/health", "/api/health"):
        # Probes have 500 ms deadlines; on a busy machine one may time out until a later probe.
        await get_ok(seeded_stack, checker, "/health", path)  # the documented schema
        body = await health_when(seeded_stack, path, lambda b: b["services"] == expected)
        assert body["status"] == "healthy"
        assert body["database"] == "connected"
        # The fetcher is not started in this stack: the probe is real, so it reports unknown.
        assert body["services"] == expected
        assert body["workers"] == "degraded"
        assert isinstance(body["data_age_seconds"], float | int) and body["data_age_seconds"] >= 0
        assert TIMESTAMP_RE.search(body["timestamp"])


# --- meetings and races ---------------------------------------------------------------------------


async def test_meetings_of_today_ordered_with_summary_fields(
    seeded_stack: Stack, checker: SchemaChecker
) -> None:
    seeded = day(seeded_stack)
    body = await get_ok(seeded_stack, checker, "/api/meetings", "/api/meetings")
    assert [item["meeting_id"] for item in body] == seeded.meeting_ids  # by first race time
    awapuni = body[0]
    assert awapuni["race_count"] == 3
    assert awapuni["category"] == "T" and awapuni["race_type"] == "thoroughbred"
    assert awapuni["date"] == nz_date(seeded_stack.now).isoformat()
    assert awapuni["status"] == "active"
    for alias in ("/meetings",):
        assert (await seeded_stack.http.get(alias)).json() == body


async def test_meetings_filters_accept_both_casings_and_spellings(
    seeded_stack: Stack, checker: SchemaChecker
) -> None:
    seeded = day(seeded_stack)
    for params in ({"race_type": "harness"}, {"raceType": "H"}, {"race_type": "h", "raceType": "h"}):
        body = await get_ok(seeded_stack, checker, "/api/meetings", "/api/meetings", **params)
        assert [item["meeting_id"] for item in body] == [seeded.meeting_ids[1]], params
    assert len(await get_ok(seeded_stack, checker, "/api/meetings", "/api/meetings", country="nz")) == 2
    assert await get_ok(seeded_stack, checker, "/api/meetings", "/api/meetings", country="AU") == []
    tomorrow = nz_date(seeded_stack.now + timedelta(days=1)).isoformat()
    body = await get_ok(seeded_stack, checker, "/api/meetings", "/api/meetings", date=tomorrow)
    assert [item["meeting_id"] for item in body] == [seeded.other_day_meeting]
    assert await get_ok(seeded_stack, checker, "/api/meetings", "/api/meetings", date="2001-01-01") == []


async def test_meetings_validation_errors(seeded_stack: Stack) -> None:
    body = await error(seeded_stack, "GET", "/api/meetings?date=2025-13-40", 400)
    assert body == {"error": "Invalid date", "details": {"param": "date"}}
    await error(seeded_stack, "GET", "/api/meetings?date=yesterday", 400)
    await error(seeded_stack, "GET", "/api/meetings?race_type=camel", 400)
    await error(seeded_stack, "GET", "/api/meetings?race_type=harness&raceType=greyhound", 400)
    body = await error(seeded_stack, "GET", "/api/meetings?date=2025-01-01&date=2025-01-02", 400)
    assert body["details"] == {"param": "date"}


async def test_meeting_detail_and_its_races(seeded_stack: Stack, checker: SchemaChecker) -> None:
    seeded = day(seeded_stack)
    meeting_id = seeded.meeting_ids[0]
    detail = await get_ok(seeded_stack, checker, "/api/meetings/{meeting_id}", f"/api/meetings/{meeting_id}")
    assert detail["meeting_name"] == "Awapuni" and detail["race_count"] == 3
    listed = await get_ok(
        seeded_stack, checker, "/api/meetings/{meeting_id}", f"/api/meetings/{seeded.meeting_ids[1]}"
    )
    assert listed["tote_status"] == "open"  # from the meetings list (UpsertMeetings)
    assert (await seeded_stack.http.get(f"/meetings/{meeting_id}")).json() == detail
    body = await error(seeded_stack, "GET", "/api/meetings/nope", 404)
    assert body == {"error": "Meeting not found"}

    for params in ({"meeting_id": meeting_id}, {"meetingId": meeting_id}):
        races = await get_ok(seeded_stack, checker, "/api/races", "/api/races", **params)
        assert [race["race_number"] for race in races] == [1, 2, 3]
    live = next(race for race in races if race["race_id"] == seeded.live_race)
    assert live["meeting_name"] == "Awapuni" and live["status"] == "open"
    assert live["runner_count"] == 7 and live["field_size"] == 8  # one scratched of eight
    assert (await seeded_stack.http.get("/races", params={"meetingId": meeting_id})).json() == races
    body = await error(seeded_stack, "GET", "/api/races", 400)
    assert body == {"error": "meeting_id query parameter is required"}
    assert (await error(seeded_stack, "GET", "/api/races?meeting_id=", 400))["error"].startswith("meeting_id")
    assert await error(seeded_stack, "GET", "/api/races?meeting_id=nope", 404) == {
        "error": "Meeting not found"
    }


async def test_race_detail(seeded_stack: Stack, checker: SchemaChecker) -> None:
    seeded = day(seeded_stack)
    race = await get_ok(seeded_stack, checker, "/api/races/{race_id}", f"/api/races/{seeded.final_race}")
    assert race["status"] == "final" and race["results_available"] is True
    assert race["total_prize_money"] == 2_500_000 and isinstance(race["total_prize_money"], int)
    assert race["race_date_nz"] == nz_date(seeded_stack.now - timedelta(minutes=20)).isoformat()
    assert await error(seeded_stack, "GET", "/api/races/unknown-race", 404) == {"error": "Race not found"}


async def test_fixed_race_routes_take_precedence_over_race_id(seeded_stack: Stack) -> None:
    body = await error(seeded_stack, "GET", "/api/races/navigation", 400)
    assert body == {"error": "race_id query parameter is required"}
    assert (await seeded_stack.http.get("/api/races/upcoming")).status_code == 200
    assert (await seeded_stack.http.get("/api/races/next-scheduled")).status_code == 200


async def test_navigation(seeded_stack: Stack, checker: SchemaChecker) -> None:
    seeded = day(seeded_stack)
    # The final race and the next one on the card, unless NZ midnight falls between.
    previous, following = seeded.neighbours(seeded.live_race)
    assert previous in (seeded.final_race, None) and following in (seeded.future_race, None)
    for params in ({"race_id": seeded.live_race}, {"raceId": seeded.live_race}):
        nav = await get_ok(seeded_stack, checker, "/api/races/navigation", "/api/races/navigation", **params)
        assert (nav["previousRace"] or {}).get("race_id") == previous
        assert (nav["nextRace"] or {}).get("race_id") == following
        assert nav["nextScheduledRace"]["race_id"] == seeded.live_race
        assert nav["nextScheduledRace"]["meeting_name"] == "Awapuni"
    first = await get_ok(
        seeded_stack, checker, "/api/races/navigation", "/api/races/navigation", race_id=seeded.final_race
    )
    assert first["previousRace"] is None
    assert await error(seeded_stack, "GET", "/api/races/navigation?race_id=nope", 404) == {
        "error": "Race not found"
    }


async def test_upcoming_races_window(seeded_stack: Stack, checker: SchemaChecker) -> None:
    seeded = day(seeded_stack)
    body = await get_ok(seeded_stack, checker, "/api/races/upcoming", "/api/races/upcoming")
    ids = [race["race_id"] for race in body["races"]]
    assert ids == [seeded.live_race, seeded.future_race, seeded.quiet_race]
    assert body["total"] == 3
    assert body["window"]["window_minutes"] == 120 and body["window"]["lookback_minutes"] == 5
    assert all(race["meeting_name"] and race["race_type"] and race["country"] for race in body["races"])
    narrow = await get_ok(
        seeded_stack,
        checker,
        "/api/races/upcoming",
        "/api/races/upcoming",
        windowMinutes="10",
        lookback_minutes="0",
    )
    assert [race["race_id"] for race in narrow["races"]] == [seeded.live_race]
    clamped = await get_ok(
        seeded_stack, checker, "/api/races/upcoming", "/api/races/upcoming", window_minutes="99999", limit="0"
    )
    assert clamped["window"]["window_minutes"] == 480 and clamped["total"] == 1  # limit clamped to 1
    await error(seeded_stack, "GET", "/api/races/upcoming?limit=ten", 400)
    await error(seeded_stack, "GET", "/api/races/upcoming?limit=1.5", 400)
    await error(seeded_stack, "GET", "/api/races/upcoming?limit=1&limit=2", 400)


async def test_next_scheduled_race(seeded_stack: Stack, checker: SchemaChecker) -> None:
    seeded = day(seeded_stack)
    race = await get_ok(seeded_stack, checker, "/api/races/next-scheduled", "/api/races/next-scheduled")
    assert race["race_id"] == seeded.live_race
    assert (
        race["meeting_name"] == "Awapuni" and race["race_type"] == "thoroughbred" and race["country"] == "NZ"
    )


# --- entrants, pools, results ---------------------------------------------------------------------


async def test_entrants_with_odds_money_flow_and_capped_histories(
    seeded_stack: Stack, checker: SchemaChecker
) -> None:
    seeded = day(seeded_stack)
    entrants = await get_ok(seeded_stack, checker, "/api/entrants", "/api/entrants", race_id=seeded.live_race)
    assert [item["runner_number"] for item in entrants] == list(range(1, 9))
    first, scratched = entrants[0], entrants[7]
    assert first["win_odds"] == first["fixed_win_odds"] == 3.5
    assert first["place_odds"] == first["fixed_place_odds"]
    assert isinstance(first["win_pool_amount"], int) and first["money_flow_at"] is not None
    assert first["silk_url"] == first["silk_url_64"] == first["silk_url_64x64"]
    assert scratched["is_scratched"] is True and scratched["fixed_win_odds"] is None
    assert 0 < len(first["money_flow_history"]) <= 50
    stamps = [point["timestamp"] for point in first["money_flow_history"]]
    assert stamps == sorted(stamps)  # oldest first
    runner_two = entrants[1]
    odds_types = {point["type"] for point in runner_two["odds_history"]}
    assert odds_types == {"fixed_win", "fixed_place"}

    capped = await get_ok(
        seeded_stack, checker, "/api/entrants", "/api/entrants", raceId=seeded.live_race, historyLimit="2"
    )
    assert all(len(item["money_flow_history"]) <= 2 and len(item["odds_history"]) <= 2 for item in capped)
    assert capped[0]["money_flow_history"] == first["money_flow_history"][-2:]  # the latest two
    none = await get_ok(
        seeded_stack, checker, "/api/entrants", "/api/entrants", race_id=seeded.live_race, history_limit=0
    )
    assert all(item["money_flow_history"] == [] and item["odds_history"] == [] for item in none)
    await error(seeded_stack, "GET", f"/api/entrants?race_id={seeded.live_race}&history_limit=x", 400)
    assert await error(seeded_stack, "GET", "/api/entrants", 400) == {
        "error": "race_id query parameter is required"
    }
    assert await error(seeded_stack, "GET", "/api/entrants?race_id=nope", 404) == {"error": "Race not found"}
    await error(seeded_stack, "GET", f"/api/entrants?race_id={seeded.live_race}&raceId=other", 400)
    same = await seeded_stack.http.get(f"/api/entrants?race_id={seeded.live_race}&raceId={seeded.live_race}")
    assert same.status_code == 200


async def test_race_pools_in_cents(seeded_stack: Stack, checker: SchemaChecker) -> None:
    seeded = day(seeded_stack)
    pools = await get_ok(seeded_stack, checker, "/api/race-pools", "/api/race-pools", raceId=seeded.live_race)
    singles = ("win", "place", "quinella", "trifecta", "exacta", "first4")
    assert pools["total_race_pool"] == sum(pools[f"{name}_pool_total"] for name in singles)
    assert all(isinstance(pools[f"{name}_pool_total"], int) for name in singles)
    assert pools["currency"] == "$" and pools["source"] == "tote_pools"
    assert await error(seeded_stack, "GET", f"/api/race-pools?race_id={seeded.quiet_race}", 404) == {
        "error": "Pool data not found"
    }
    assert await error(seeded_stack, "GET", "/api/race-pools?race_id=nope", 404) == {
        "error": "Pool data not found"
    }
    await error(seeded_stack, "GET", "/api/race-pools", 400)


async def test_race_results_as_json_documents(seeded_stack: Stack, checker: SchemaChecker) -> None:
    seeded = day(seeded_stack)
    results = await get_ok(
        seeded_stack, checker, "/api/race-results", "/api/race-results", race_id=seeded.final_race
    )
    assert results["results_available"] is True and results["result_status"] == "final"
    assert [item["position"] for item in results["results_data"]] == [1, 2, 3]
    assert results["results_data"][0]["name"] == "Frosbie"
    assert results["dividends_data"][1]["product_name"] == "Pool Quinella"
    assert results["fixed_odds_data"]["2"]["runner_name"] == "Kiwi Gold"
    assert await error(seeded_stack, "GET", f"/api/race-results?race_id={seeded.live_race}", 404) == {
        "error": "Race results not found"
    }
    await error(seeded_stack, "GET", "/api/race-results", 400)


# --- timeline -------------------------------------------------------------------------------------


async def test_timeline_one_document_per_entrant_and_interval(
    seeded_stack: Stack, checker: SchemaChecker
) -> None:
    seeded = day(seeded_stack)
    template = "/api/money-flow-timeline"
    body = await get_ok(seeded_stack, checker, template, template, race_id=seeded.live_race)
    documents = body["documents"]
    assert body["success"] is True and body["bucketed_data"] is True and body["pool_type"] == "win"
    assert body["total"] == len(documents) == 7 * 13
    keys = {(doc["entrant_id"], doc["time_interval"]) for doc in documents}
    assert len(keys) == len(documents)
    assert [doc["id"] for doc in documents] == sorted(doc["id"] for doc in documents)
    assert body["next_cursor"] is None  # not a full page
    assert body["next_created_at"] == max(doc["created_at"] for doc in documents)
    assert body["limit"] == 2000 and body["created_after"] is None and "message" not in body
    for doc in documents:
        assert (
            doc["winPoolAmount"] == doc["win_pool_amount"]
            and doc["placePoolAmount"] == doc["place_pool_amount"]
        )
        assert doc["incremental_amount"] == doc["incremental_win_amount"]
        assert doc["event_timestamp"] == doc["polling_timestamp"] and doc["created_at"] == doc["updated_at"]
        assert doc["fixed_win_odds"] is not None
    # Increments of an entrant's buckets add up to its latest amount (money-flow.md §7.3).
    for entrant_id in body["entrant_ids"]:
        own = [doc for doc in documents if doc["entrant_id"] == entrant_id]
        if own:
            latest = min(own, key=lambda doc: doc["time_interval"])
            assert sum(doc["incremental_win_amount"] for doc in own) == latest["win_pool_amount"]
            assert [doc["is_baseline"] for doc in own].count(True) == 1
    coverage = body["interval_coverage"]
    assert coverage["summary"]["total_documents"] == len(documents)
    assert coverage["summary"]["entrants_covered"] == 7
    assert coverage["summary"]["intervals_covered"][0] == 60
    assert coverage["summary"]["coverage_report"] == "Missing coverage in critical 5-minute window"
    gap = coverage["summary"]["critical_period_gaps"][0]
    assert gap["missing_intervals"] == [3, 2, 1, 0]
    assert coverage["entrants"][0]["critical_period_coverage"] == [5, 4]


async def test_timeline_pages_follow_the_cursor(seeded_stack: Stack, checker: SchemaChecker) -> None:
    seeded = day(seeded_stack)
    template = "/api/money-flow-timeline"
    full = await get_ok(seeded_stack, checker, template, template, race_id=seeded.live_race)
    collected: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"raceId": seeded.live_race, "limit": 25}
        if cursor is not None:
            params["cursorAfter"] = cursor
        page = await get_ok(seeded_stack, checker, template, template, **params)
        pages += 1
        collected.extend(page["documents"])
        if len(page["documents"]) == 25:
            assert page["next_cursor"] == str(page["documents"][-1]["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4  # 91 documents in pages of 25
    assert collected == full["documents"]


async def test_timeline_parameters(seeded_stack: Stack, checker: SchemaChecker) -> None:
    seeded = day(seeded_stack)
    template = "/api/money-flow-timeline"
    live = seeded.races[seeded.live_race]
    two = [live.runners[0].entrant_id, live.runners[1].entrant_id]
    body = await get_ok(
        seeded_stack,
        checker,
        template,
        template,
        race_id=seeded.live_race,
        entrants=f" {two[0]} ,,{two[1]},not-in-race",
    )
    assert {doc["entrant_id"] for doc in body["documents"]} == set(two)
    repeated = await seeded_stack.http.get(
        template, params=[("race_id", seeded.live_race), ("entrants", two[0]), ("entrants", two[1])]
    )
    assert {doc["entrant_id"] for doc in repeated.json()["documents"]} == set(two)
    for pool_type in ("PLACE", "odds"):
        echoed = await get_ok(
            seeded_stack, checker, template, template, race_id=seeded.live_race, poolType=pool_type
        )
        assert echoed["pool_type"] == pool_type.lower()
        assert len(echoed["documents"]) == 91  # the selection does not depend on pool_type
    bad = await error(seeded_stack, "GET", f"{template}?race_id={seeded.live_race}&pool_type=quinella", 400)
    assert bad == {
        "error": "Invalid pool_type parameter",
        "message": "pool_type must be one of: win, place, odds",
        "received": "quinella",
    }
    await error(seeded_stack, "GET", f"{template}?race_id={seeded.live_race}&cursor_after=abc", 400)
    await error(seeded_stack, "GET", f"{template}?race_id={seeded.live_race}&created_after=soon", 400)
    await error(
        seeded_stack, "GET", f"{template}?race_id={seeded.live_race}&created_after=2025-01-01T10:00:00", 400
    )
    assert await error(seeded_stack, "GET", f"{template}?race_id=nope", 404) == {"error": "Race not found"}
    empty = await get_ok(seeded_stack, checker, template, template, race_id=seeded.quiet_race)
    assert empty["documents"] == [] and empty["message"] == "No timeline data available yet"
    assert empty["interval_coverage"]["summary"]["coverage_report"] == "No documents to analyze"
    assert empty["next_cursor"] is None and empty["next_created_at"] is None
    later = await get_ok(
        seeded_stack,
        checker,
        template,
        template,
        race_id=seeded.live_race,
        created_after="2999-01-01T00:00:00Z",
    )
    assert later["documents"] == [] and later["created_after"] == "2999-01-01T13:00:00.000+13:00"


# --- alert configuration --------------------------------------------------------------------------


DEFAULT_COLOURS = ["#E5E7EB", "#BFDBFE", "#FEF3C7", "#BBF7D0", "#FECACA", "#F3E8FF"]


async def test_alert_config_defaults_without_side_effects(
    seeded_stack: Stack, checker: SchemaChecker
) -> None:
    template = "/api/user-alert-configs"
    first = await get_ok(seeded_stack, checker, template, template, userId="  contract-reader  ")
    again = await get_ok(seeded_stack, checker, template, template, user_id="contract-reader")
    assert first == again
    assert first["user_id"] == "contract-reader" and first["toggle_all"] is True
    assert [item["color"] for item in first["indicators"]] == DEFAULT_COLOURS
    assert [item["percentage_range_max"] for item in first["indicators"]][-1] is None
    assert all(item["created_at"] is None and item["is_default"] for item in first["indicators"])
    default = await get_ok(seeded_stack, checker, template, template, user_id="")
    assert default["user_id"] == "Default User"
    await error(seeded_stack, "GET", f"{template}?user_id={'x' * 101}", 400)


async def test_alert_config_save_and_reset(seeded_stack: Stack, checker: SchemaChecker) -> None:
    template = "/api/user-alert-configs"
    body: dict[str, Any] = {
        "userId": "contract-writer",
        "audibleAlertsEnabled": "false",
        "indicators": [
            {
                "displayOrder": 2,
                "percentageRangeMin": 10,
                "percentageRangeMax": 15,
                "color": "#abcdef",
                "enabled": False,
            },
            {
                "display_order": 6,
                "percentage_range_min": 50,
                "percentage_range_max": None,
                "color": "#123456",
            },
        ],
    }
    response = await seeded_stack.http.post(template, json=body)
    assert response.status_code == 200, response.text
    saved = response.json()
    checker.validate_response(template, "POST", 200, saved)
    assert_nz_timestamps(saved)
    assert saved["success"] is True and saved["user_id"] == "contract-writer"
    assert saved["audible_alerts_enabled"] is False and saved["toggle_all"] is False
    two, six = saved["indicators"][1], saved["indicators"][5]
    assert two["color"] == "#ABCDEF" and two["enabled"] is False and two["is_default"] is False
    assert TIMESTAMP_RE.search(two["created_at"])
    assert six["color"] == "#123456" and six["percentage_range_max"] is None
    assert saved["indicators"][0]["is_default"] is True  # untouched orders keep the defaults
    stored = await get_ok(seeded_stack, checker, template, template, user_id="contract-writer")
    assert stored["indicators"] == saved["indicators"]

    # An existing row keeps its id when saved again.
    again = await seeded_stack.http.post(
        template,
        json={"user_id": "contract-writer", "indicators": [{**body["indicators"][0], "color": "#000000"}]},
    )
    assert again.json()["indicators"][1]["indicator_id"] == two["indicator_id"]

    resets: list[tuple[str, dict[str, Any]]] = [
        ("POST", {"json": {"user_id": "contract-writer"}}),
        ("PUT", {"params": {"userId": "contract-writer"}}),
    ]
    for method, kwargs in resets:
        reset = await seeded_stack.http.request(method, f"{template}/reset", **kwargs)
        assert reset.status_code == 200, reset.text
        checker.validate_response(f"{template}/reset", method, 200, reset.json())
        assert [item["color"] for item in reset.json()["indicators"]] == DEFAULT_COLOURS
        assert reset.json()["audible_alerts_enabled"] is False  # the audible setting is kept


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([1, 2], {"error": "Invalid JSON body"}),
        ({"user_id": "u"}, {"error": "indicators array is required"}),
        ({"indicators": []}, {"error": "indicators array is required"}),
        ({"indicators": "all"}, {"error": "indicators array is required"}),
        (
            {"indicators": [{"display_order": 1, "color": "#FFFFFF"}]},
            {
                "error": "Invalid indicator payload",
                "details": {"index": 0, "field": "percentage_range_min", "reason": "is required"},
            },
        ),
        (
            {"indicators": [{"display_order": 1, "percentage_range_min": 5, "color": "red"}]},
            {
                "error": "Invalid indicator payload",
                "details": {"index": 0, "field": "color", "reason": "must be #RRGGBB"},
            },
        ),
        (
            {"indicators": [{"display_order": 7, "percentage_range_min": 5, "color": "#FFFFFF"}]},
            {
                "error": "Invalid indicator payload",
                "details": {"index": 0, "field": "display_order", "reason": "must be between 1 and 6"},
            },
        ),
        (
            {
                "indicators": [
                    {
                        "display_order": 1,
                        "percentage_range_min": 20,
                        "percentage_range_max": 10,
                        "color": "#FFFFFF",
                    }
                ]
            },
            {
                "error": "Invalid indicator payload",
                "details": {
                    "index": 0,
                    "field": "percentage_range_max",
                    "reason": "must be greater than percentage_range_min",
                },
            },
        ),
        (
            {
                "user_id": "a",
                "indicators": [
                    {"user_id": "b", "display_order": 1, "percentage_range_min": 5, "color": "#FFFFFF"}
                ],
            },
            {"error": "All indicators must target the same user_id"},
        ),
        (
            {
                "indicators": [
                    {"display_order": 3, "percentage_range_min": 5, "color": "#FFFFFF"},
                    {"displayOrder": 3, "percentage_range_min": 6, "color": "#FFFFFF"},
                ]
            },
            {"error": "Duplicate display_order", "details": {"display_order": 3}},
        ),
        (
            {
                "indicators": [
                    {"display_order": 1, "displayOrder": 2, "percentage_range_min": 5, "color": "#FFFFFF"}
                ]
            },
            {
                "error": "Invalid indicator payload",
                "details": {
                    "index": 0,
                    "field": "display_order",
                    "reason": "conflicting values for display_order and displayOrder",
                },
            },
        ),
    ],
)
async def test_alert_config_validation(seeded_stack: Stack, payload: Any, expected: dict[str, Any]) -> None:
    body = await error(seeded_stack, "POST", "/api/user-alert-configs", 400, json=payload)
    assert body == expected


async def test_alert_config_body_errors(seeded_stack: Stack) -> None:
    url = "/api/user-alert-configs"
    assert await error(
        seeded_stack, "POST", url, 400, content=b"{not json", headers={"content-type": "application/json"}
    ) == {"error": "Invalid JSON body"}
    assert await error(seeded_stack, "POST", url, 400) == {"error": "Invalid JSON body"}
    body = await error(
        seeded_stack,
        "POST",
        url,
        415,
        content=b"a=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert body["error"].startswith("Unsupported media type")
    big = b'{"indicators": [' + b" " * (101 * 1024) + b"]}"
    assert (
        await error(seeded_stack, "POST", url, 413, content=big, headers={"content-type": "application/json"})
    )["details"] == {"max_bytes": 102400}

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(30):
            yield b" " * 8192

    chunked = await seeded_stack.http.post(
        url, content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413 and chunked.json()["error"] == "Request body too large"


# --- alerts ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeededAlerts:
    """Alerts stored for the seeded day: ids in insertion order (ids grow with it)."""

    today: list[int]
    yesterday: int
    values: dict[int, float]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def seeded_alerts(seeded_stack: Stack, module_database_url: str) -> SeededAlerts:
    """Four alerts of today in two races and one of yesterday (outside the default window)."""
    seeded = day(seeded_stack)
    live = seeded.races[seeded.live_race].runners
    final = seeded.races[seeded.final_race].runners
    now = seeded_stack.now
    rows = [
        AlertRow(seeded.live_race, live[3].entrant_id, "win_money", 15, 7.0, now - timedelta(days=1)),
        AlertRow(seeded.final_race, final[0].entrant_id, "win_money", 2, 55.5, earlier_today(now, 22)),
        AlertRow(seeded.live_race, live[1].entrant_id, "win_money", 10, 12.5, earlier_today(now, 9)),
        AlertRow(seeded.live_race, live[1].entrant_id, "win_price", 10, 18.0, earlier_today(now, 9)),
        AlertRow(seeded.live_race, live[2].entrant_id, "place_money", 5, 5.0, earlier_today(now, 4)),
    ]
    ids = await insert_alerts(module_database_url, rows)
    return SeededAlerts(ids[1:], ids[0], {i: row.value for i, row in zip(ids, rows, strict=True)})


async def test_alerts_of_today_newest_first_classified_for_the_user(
    seeded_stack: Stack, checker: SchemaChecker, seeded_alerts: SeededAlerts
) -> None:
    seeded = day(seeded_stack)
    template = "/api/alerts"
    body = await get_ok(seeded_stack, checker, template, template)
    assert [item["alert_id"] for item in body["alerts"]] == seeded_alerts.today[::-1]
    assert body["total"] == 4 and body["limit"] == 100 and body["next_cursor"] is None
    assert body["user_id"] == "Default User" and body["race_id"] is None
    # The default window: today's NZ racing day from its midnight.
    assert body["since"] == f"{nz_date(seeded_stack.now).isoformat()}T00:00:00.000" + body["since"][-6:]
    newest = body["alerts"][0]
    live = seeded.races[seeded.live_race]
    assert newest["race_id"] == seeded.live_race and newest["race_number"] == 2
    assert newest["meeting_name"] == "Awapuni" and newest["race_name"] == live.race.name
    assert (newest["runner_number"], newest["runner_name"]) == (3, live.runners[2].name)
    assert (newest["kind"], newest["time_interval"], newest["previous_interval"]) == ("place_money", 5, 10)
    # Each alert carries the default user's classification (5 is the first range's min; 55.5 the last's).
    classes = {item["alert_id"]: item["indicator"] for item in body["alerts"]}
    assert [classes[i]["display_order"] for i in seeded_alerts.today] == [6, 2, 3, 1]
    assert classes[seeded_alerts.today[0]] == {"display_order": 6, "color": "#F3E8FF", "label": "50%+"}
    assert classes[seeded_alerts.today[3]] == {"display_order": 1, "color": "#E5E7EB", "label": "5–10%"}
    # The classifier's golden "default" config is the writer's default configuration.
    config = await get_ok(seeded_stack, checker, "/api/user-alert-configs", "/api/user-alert-configs")
    expected = golden.load(golden.CLASSIFICATION)["configs"]["default"]["indicators"]
    assert [{key: item[key] for key in expected[0]} for item in config["indicators"]] == expected


async def test_alerts_of_a_user_who_disabled_a_range(
    seeded_stack: Stack, checker: SchemaChecker, seeded_alerts: SeededAlerts
) -> None:
    template = "/api/alerts"
    saved = await seeded_stack.http.post(
        "/api/user-alert-configs",
        json={
            "userId": "alerts-picky",
            "indicators": [
                {
                    "displayOrder": 1,
                    "percentageRangeMin": 5,
                    "percentageRangeMax": 10,
                    "color": "#E5E7EB",
                    "enabled": False,
                },
                {"displayOrder": 6, "percentageRangeMin": 50, "color": "#123456"},
            ],
        },
    )
    assert saved.status_code == 200, saved.text
    body = await get_ok(seeded_stack, checker, template, template, userId="alerts-picky")
    # The 5.0 alert is only in the disabled range: not served to this user.
    assert [item["alert_id"] for item in body["alerts"]] == seeded_alerts.today[:3][::-1]
    assert body["user_id"] == "alerts-picky"
    assert body["alerts"][-1]["indicator"] == {"display_order": 6, "color": "#123456", "label": "50%+"}
    # A page a disabled range thins out still carries on to the older alerts.
    first = await get_ok(seeded_stack, checker, template, template, user_id="alerts-picky", limit=2)
    assert [item["alert_id"] for item in first["alerts"]] == seeded_alerts.today[1:3][::-1]
    assert first["next_cursor"] == str(seeded_alerts.today[1])
    rest = await get_ok(
        seeded_stack,
        checker,
        template,
        template,
        user_id="alerts-picky",
        limit=2,
        cursor=first["next_cursor"],
    )
    assert [item["alert_id"] for item in rest["alerts"]] == [seeded_alerts.today[0]]
    assert rest["next_cursor"] is None


async def test_alerts_window_race_and_pages(
    seeded_stack: Stack, checker: SchemaChecker, seeded_alerts: SeededAlerts
) -> None:
    seeded = day(seeded_stack)
    template = "/api/alerts"
    since = (seeded_stack.now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    everything = await get_ok(seeded_stack, checker, template, template, since=since)
    assert [item["alert_id"] for item in everything["alerts"]][-1] == seeded_alerts.yesterday
    assert everything["since"].endswith(("+12:00", "+13:00"))
    live = await get_ok(seeded_stack, checker, template, template, raceId=seeded.live_race)
    assert {item["race_id"] for item in live["alerts"]} == {seeded.live_race} and live["total"] == 3
    assert live["race_id"] == seeded.live_race
    none = await get_ok(seeded_stack, checker, template, template, race_id=seeded.quiet_race)
    assert none["alerts"] == [] and none["next_cursor"] is None
    collected: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"since": since, "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = await get_ok(seeded_stack, checker, template, template, **params)
        collected += [item["alert_id"] for item in page["alerts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == str(page["alerts"][-1]["alert_id"])
    assert collected == [item["alert_id"] for item in everything["alerts"]]
    later = await get_ok(seeded_stack, checker, template, template, since="2999-01-01T00:00:00+13:00")
    assert later["alerts"] == [] and later["since"] == "2999-01-01T00:00:00.000+13:00"
    clamped = await get_ok(seeded_stack, checker, template, template, limit=100000)
    assert clamped["limit"] == 500


@pytest.mark.parametrize(
    "query",
    [
        "since=soon",
        "since=2025-07-17T10:00:00",  # no offset
        "since=2025-07-17",
        "limit=ten",
        "cursor=1.5",
        f"user_id={'x' * 101}",
        "user_id=a&userId=b",
        "limit=5&limit=6",
        f"race_id={'r' * 65}",
    ],
)
async def test_alerts_parameter_errors(seeded_stack: Stack, query: str) -> None:
    body = await error(seeded_stack, "GET", f"/api/alerts?{query}", 400)
    assert body["error"]


# --- transport: errors, headers, compression, caching ---------------------------------------------


async def test_unknown_paths_and_wrong_methods_are_json(seeded_stack: Stack) -> None:
    assert await error(seeded_stack, "GET", "/api/nothing-here", 404) == {"error": "Not found"}
    assert await error(seeded_stack, "GET", "/definitely/not/here", 404) == {"error": "Not found"}
    response = await seeded_stack.http.delete("/api/meetings")
    assert response.status_code == 405 and response.json() == {"error": "Method not allowed"}
    assert response.headers["allow"] == "GET, HEAD"
    response = await seeded_stack.http.delete("/api/user-alert-configs")
    assert response.headers["allow"] == "GET, HEAD, POST"
    response = await seeded_stack.http.get("/api/user-alert-configs/reset")
    assert response.status_code == 405 and response.headers["allow"] == "POST, PUT"


async def test_request_ids_security_headers_and_caching(seeded_stack: Stack) -> None:
    response = await seeded_stack.http.get("/api/meetings", headers={"X-Request-ID": "trace-123"})
    headers = response.headers
    assert headers["x-request-id"] == "trace-123"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cross-origin-resource-policy"] == "same-origin"
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "img-src 'self' https: data:" in csp and "unsafe-inline" not in csp
    assert "server" not in headers and "x-powered-by" not in headers
    assert "access-control-allow-origin" not in headers  # CORS is off by default
    assert "strict-transport-security" not in headers
    assert headers["cache-control"] == "no-cache" and headers["etag"].startswith('W/"')
    cached = await seeded_stack.http.get("/api/meetings", headers={"If-None-Match": headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""
    generated = await seeded_stack.http.get("/api/meetings", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    failed = await seeded_stack.http.get("/api/races/nope")
    assert failed.headers["cache-control"] == "no-store" and "x-request-id" in failed.headers
    docs = await seeded_stack.http.get("/api/docs")
    assert docs.status_code == 200 and "'unsafe-inline'" in docs.headers["content-security-policy"]


async def test_gzip_for_bodies_of_one_kilobyte_or_more(seeded_stack: Stack) -> None:
    seeded = day(seeded_stack)
    raw = httpx.AsyncClient(base_url=seeded_stack.base_url, headers={"Accept-Encoding": "gzip"})
    async with raw:
        big = await raw.get("/api/entrants", params={"race_id": seeded.live_race})
        assert big.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in big.headers["vary"].lower()
        assert len(gzip.compress(big.content)) < len(big.content)  # decoded transparently by httpx
        small = await raw.get("/api/races/nope")
        assert "content-encoding" not in small.headers
        assert "accept-encoding" in small.headers["vary"].lower()
    plain = httpx.AsyncClient(base_url=seeded_stack.base_url, headers={"Accept-Encoding": "identity"})
    async with plain:
        response = await plain.get("/api/entrants", params={"race_id": seeded.live_race})
        assert "content-encoding" not in response.headers


async def test_openapi_document_matches_the_routes(seeded_stack: Stack) -> None:
    document = (await seeded_stack.http.get("/api/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert (await seeded_stack.http.get("/openapi.json")).json() == document
    expected = {
        "/health",
        "/api/health",
        "/api/meetings",
        "/api/meetings/{meeting_id}",
        "/api/races",
        "/api/races/navigation",
        "/api/races/upcoming",
        "/api/races/next-scheduled",
        "/api/races/{race_id}",
        "/api/entrants",
        "/api/race-pools",
        "/api/race-results",
        "/api/money-flow-timeline",
        "/api/backtest",
        "/api/alerts",
        "/api/user-alert-configs",
        "/api/user-alert-configs/reset",
        "/api/stream",
        "/meetings",
        "/meetings/{meeting_id}",
        "/races",
    }
    assert set(document["paths"]) == expected
    # Every query parameter is documented in both spellings.
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names = {param["name"] for param in operation["parameters"] if param["in"] == "query"}
            for name in names:
                if "_" in name:
                    head, *rest = name.split("_")
                    assert head + "".join(part.capitalize() for part in rest) in names, (path, method, name)
    # Every documented operation answers something other than 404/405 on its own path.
    app_routes = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    gateway = seeded_stack.gateway
    assert gateway.web is not None
    registered = {
        (route.path, method)  # type: ignore[attr-defined]
        for route in gateway.web.fastapi.routes
        for method in getattr(route, "methods", ()) or ()
        if method != "HEAD"
        and route.path.startswith(("/api/", "/health", "/meetings", "/races"))  # type: ignore[attr-defined]
        and route.path not in ("/api/openapi.json", "/api/docs")  # type: ignore[attr-defined]
    }
    assert registered == app_routes


# --- configurable transport: CORS, aliases, HSTS --------------------------------------------------


@contextlib.asynccontextmanager
async def extra_gateway(stack: Stack, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second gateway on the same writer with different settings."""
    service = await start_service("gateway", {**stack.environ, **env})
    app = service.app
    assert isinstance(app, GatewayApp)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}") as client:
            yield client
    finally:
        await service.stop()


async def test_cors_only_for_configured_origins(seeded_stack: Stack) -> None:
    origin = "https://client.example.nz"
    async with extra_gateway(seeded_stack, API_CORS_ORIGINS=f"{origin}, https://other.example.nz") as client:
        preflight = await client.options(
            "/api/entrants",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "X-Race-Polling, If-None-Match",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert preflight.headers["access-control-max-age"] == "600"
        allowed = preflight.headers["access-control-allow-methods"]
        assert all(method in allowed for method in ("GET", "POST", "PUT", "OPTIONS"))
        assert "x-race-polling" in preflight.headers["access-control-allow-headers"].lower()
        response = await client.get("/api/meetings", headers={"Origin": origin})
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["cross-origin-resource-policy"] == "cross-origin"
        stranger = await client.get("/api/meetings", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in stranger.headers


async def test_aliases_can_be_disabled_and_hsts_enabled(seeded_stack: Stack) -> None:
    async with extra_gateway(seeded_stack, API_COMPAT_ALIASES="false", API_HSTS="true") as client:
        assert (await client.get("/meetings")).status_code == 404
        assert (await client.get("/races", params={"meeting_id": "x"})).status_code == 404
        response = await client.get("/api/meetings")
        assert response.status_code == 200
        assert response.headers["strict-transport-security"].startswith("max-age=")
        document = (await client.get("/api/openapi.json")).json()
        assert "/meetings" not in document["paths"] and "/api/meetings" in document["paths"]


async def test_deeply_nested_json_is_a_400(seeded_stack: Stack) -> None:
    body = b"[" * 50_000 + b"]" * 50_000
    response = await seeded_stack.http.post(
        "/api/user-alert-configs", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json() == {"error": "Invalid JSON body"}
