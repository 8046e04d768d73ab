"""Tolerance and data-quality findings (money-flow.md §4, §8, §11; nztab-api.md §6, §9.6),
asserted on both implementations."""

from __future__ import annotations

import json
from typing import Any

from raceday_core.errors import PayloadDecodeError
from services.transformer.records import PriorState, QualityRecord, RaceUpdateRecord, empty_state
from tests.transformer_math.conftest import MoneyFlow, recorded_event

OPEN_AT = 1_752_712_800_000  # ten minutes before the recorded start


def _event(**race: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(recorded_event())
    event["data"]["race"].update(race)
    return event


def _run(impl: MoneyFlow, event: dict[str, Any], state: PriorState | None = None) -> RaceUpdateRecord:
    return impl.transform(json.dumps(event).encode(), OPEN_AT, state or empty_state(""))


def _checks(update: RaceUpdateRecord) -> dict[str, list[QualityRecord]]:
    found: dict[str, list[QualityRecord]] = {}
    for q in update["quality"]:
        found.setdefault(q["check"], []).append(q)
    return found


def test_money_flow_only_while_open(impl: MoneyFlow) -> None:
    final = _run(impl, _event())
    assert final["money_flow"] == [] and final["pools"] is not None
    opened = _run(impl, _event(status="Open"))
    assert len(opened["money_flow"]) == 8
    assert all(e["has_money_flow"] and e["money_flow_at"] == OPEN_AT for e in opened["entrants"])
    row = opened["money_flow"][0]
    assert row["event_timestamp"] == OPEN_AT and row["time_to_start"] == 10 and row["time_interval"] == 10
    assert row["is_baseline"] and row["incremental_win_amount"] == row["win_pool_amount"]


def test_scratched_runners_stop_and_lose_odds_rows(impl: MoneyFlow) -> None:
    event = _event(status="Open")
    event["data"]["runners"][0]["is_late_scratched"] = True
    update = _run(impl, event)
    scratched = event["data"]["runners"][0]["entrant_id"]
    assert scratched not in {m["entrant_id"] for m in update["money_flow"]}
    assert scratched not in {o["entrant_id"] for o in update["odds"]}
    assert len(update["money_flow"]) == 7 and len(update["odds"]) == 28
    results = update["results"]
    assert results is not None
    assert str(event["data"]["runners"][0]["runner_number"]) not in results["fixed_odds_data"]


def test_malformed_items_are_dropped_with_findings(impl: MoneyFlow) -> None:
    event = _event(status="Open", distance="1700 m")
    runners = event["data"]["runners"]
    del runners[1]["entrant_id"]
    runners[2]["runner_number"] = "3"
    runners.append(dict(runners[3]))
    runners[4]["barrier"] = "7"
    event["data"]["money_tracker"]["entrants"] += [
        {"hold_percentage": 5},
        {"entrant_id": runners[0]["entrant_id"], "hold_percentage": -3, "bet_percentage": 1},
        {"entrant_id": runners[0]["entrant_id"], "hold_percentage": "9", "bet_percentage": 1},
    ]
    update = _run(impl, event)
    found = _checks(update)
    assert sorted(q["message"] for q in found["invalid_runner"]) == [
        "data.runners[1].entrant_id: missing",
        "data.runners[2].runner_number: expected integer, got string",
        "data.runners[8].entrant_id: duplicate of an earlier runner",
    ]
    assert found["invalid_tracker_rows"][0]["value"] == 3.0
    fields = {q["message"] for q in found["invalid_field"]}
    assert "data.race.distance: expected integer, got string" in fields
    assert "data.runners[4].barrier: expected integer, got string" in fields
    assert len(update["entrants"]) == 6 and update["race"]["distance"] is None


def test_unknown_status_is_kept_raw(impl: MoneyFlow) -> None:
    update = _run(impl, _event(status="Postponed"))
    assert (update["race"]["status"], update["race"]["status_raw"]) == ("unknown", "Postponed")
    assert _checks(update)["unknown_status"][0]["message"] == 'unknown race status "Postponed"'
    assert _run(impl, _event(status=" running "))["race"]["status"] == "closed"


def test_state_driven_checks(impl: MoneyFlow) -> None:
    state = empty_state("0f57e087-00d9-4c61-9549-835abe2ae2ed")
    state["status"] = "final"
    state["start_time"] = 1_752_713_100_000
    first = _run(impl, _event(status="Open"), state)
    found = _checks(first)
    assert found["status_regression"][0]["message"] == "status went from final to open"
    assert found["start_time_change"][0]["message"].startswith("advertised start changed from 1752713100000")
    # Pools that shrink by more than 1 % while open.
    shrunk = _event(status="Open")
    for pool in shrunk["data"]["tote_pools"]:
        if pool["product_type"] == "Win":
            pool["total"] = 5000
    second = impl.transform(json.dumps(shrunk).encode(), OPEN_AT + 30_000, first["state"])
    assert [q["message"] for q in _checks(second)["pools_shrink"]] == [
        "win pool total fell from 915138 to 500000 cents"
    ]
    assert second["pools"] is not None and second["pools"]["last_updated"] == OPEN_AT + 30_000


def test_missing_pools_and_tracker_mean_no_money_flow(impl: MoneyFlow) -> None:
    event = _event(status="Open")
    event["data"]["money_tracker"] = None
    update = _run(impl, event)
    assert update["money_flow"] == []
    assert _checks(update)["no_money_flow"][0]["message"] == "no money flow: money tracker absent or empty"
    event = _event(status="Open")
    event["data"]["tote_pools"] = None
    event["data"]["dividends"] = []
    update = _run(impl, event)
    assert update["pools"] is None and update["money_flow"] == []
    assert {q["message"] for q in _checks(update)["win_place_pools"]} == {
        "win pool total is absent or 0",
        "place pool total is absent or 0",
    }


def test_event_summary_of_the_recorded_event(impl: MoneyFlow) -> None:
    summary = impl.event_summary(recorded_event())
    assert summary == {
        "event_id": "0f57e087-00d9-4c61-9549-835abe2ae2ed",
        "meeting_id": "e9f2039d-d489-4a7d-aae1-d66225f1a5f4",
        "race_number": 1,
        "status_raw": "Final",
        "status": "final",
        "advertised_start": 1752713400,
        "error": "",
        "runner_count": 8,
        "scratched_count": 0,
        "tracker_rows": 76,
        "tracker_unknown_ids": 3,
        "pool_products": ["Trifecta", "Place", "FirstFour", "Quinella", "Win", "EarlyQuadrella"],
        "results_count": 8,
        "dividends_count": 14,
        "generated_time": "2025-07-17T11:16:59.18904298Z",
    }


def test_event_summary_reports_in_band_errors_without_a_race(impl: MoneyFlow) -> None:
    summary = impl.event_summary(b'{"header": {}, "data": {"error": "event not found"}}')
    assert (summary["error"], summary["event_id"], summary["advertised_start"]) == (
        "event not found",
        "",
        None,
    )
    assert summary["status"] == "unknown" and summary["runner_count"] == 0


def test_output_keys_are_exactly_the_record_shapes(impl: MoneyFlow) -> None:
    from services.transformer import records

    event = _event(status="Open")
    update = _run(impl, event)
    final = impl.transform(recorded_event(), OPEN_AT, empty_state(""))

    def keys(shape: type) -> set[str]:
        return set(shape.__annotations__)

    assert set(update) == keys(records.RaceUpdateRecord)
    assert set(update["race"]) == keys(records.RaceRecord)
    assert set(update["meeting"]) == keys(records.MeetingRecord)
    assert all(set(e) == keys(records.EntrantRecord) for e in update["entrants"])
    assert all(set(m) == keys(records.MoneyFlowRecord) for m in update["money_flow"])
    assert all(set(o) == keys(records.OddsRecord) for o in update["odds"])
    assert update["pools"] is not None and set(update["pools"]) == keys(records.PoolsRecord)
    assert final["results"] is not None and set(final["results"]) == keys(records.ResultsRecord)
    assert all(set(q) == keys(records.QualityRecord) for q in final["quality"])
    assert set(update["state"]) == keys(records.PriorState)
    assert all(set(b) == keys(records.BucketLatestRecord) for b in update["state"]["buckets"])
    assert all(set(o) == keys(records.LastOddsRecord) for o in update["state"]["odds"])
    summary = impl.event_summary(recorded_event())
    assert set(summary) == keys(records.EventSummary)


def test_non_ascii_text_is_kept_and_bad_utf8_is_refused(impl: MoneyFlow) -> None:
    text = recorded_event().decode().replace('"Tickford"', '"Tāwhiri ☆"').replace("NZST", "NZST ✓")
    update = impl.transform(text.encode(), OPEN_AT, empty_state(""))
    assert update["entrants"][0]["name"] == "Tāwhiri ☆"
    assert update["race"]["start_time_nz"] == "12:50:00 NZST ✓"
    broken = text.encode().replace("☆".encode(), b"\xe2\x98", 1)
    try:
        impl.transform(broken, OPEN_AT, empty_state(""))
    except PayloadDecodeError as e:
        assert "UTF-8" in str(e)
    else:
        raise AssertionError("invalid UTF-8 accepted")
