"""Every golden vector of spec/money-flow.md, against the extension and the reference."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from services.transformer.records import LastOddsRecord, PriorState, empty_state
from tests.transformer_math.conftest import MoneyFlow, golden, open_race, recorded_event


def test_rounding_is_half_up(impl: MoneyFlow) -> None:
    doc = golden("rounding.json")
    for x, want in doc["round_half_up"]:
        assert impl.round_half_up(x) == want, x
    for x, want in doc["hundredths"]:
        assert impl.hundredths(x) == want, x


def test_rounding_rejects_what_cannot_be_an_integer(impl: MoneyFlow) -> None:
    for bad in (float("nan"), float("inf"), 1e19):
        with pytest.raises(ValueError, match="cannot round"):
            impl.round_half_up(bad)


def _close(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    return abs(actual - expected) <= 1e-9


def test_amounts_follow_the_operation_order(impl: MoneyFlow) -> None:
    doc = golden("amounts.json")
    for h, wc, pc, win, place, total, win_pct, place_pct in doc["amounts"]:
        got = impl.pool_amounts(h, wc, pc)
        assert got[:3] == (win, place, total), (h, wc, pc)
        assert _close(got[3], win_pct) and _close(got[4], place_pct), (h, wc, pc, got)
    for h, wc, win in doc["operation_order"]:
        assert impl.pool_amounts(h, wc, 0)[0] == win, (h, wc)
    for h, wc, pc, win, place, total in doc["half_up"]:
        assert impl.pool_amounts(h, wc, pc)[:3] == (win, place, total), (h, wc, pc)


def test_time_to_start_bucket_and_interval_type(impl: MoneyFlow) -> None:
    doc = golden("time_to_start.json")
    for poll in doc["polls"]:
        t = impl.time_to_start(doc["advertised_start"], poll["polled_at_ms"])
        assert (t, impl.bucket(t), impl.interval_type(t)) == (
            poll["time_to_start"],
            poll["bucket"],
            poll["interval_type"],
        ), poll["polled_at"]
    for t, want in doc["buckets"]:
        assert impl.bucket(t) == want, t
    for t, want in doc["interval_types"]:
        assert impl.interval_type(t) == want, t


@pytest.mark.parametrize("name", list(golden("increments.json")["sequences"]))
def test_increment_sequences(impl: MoneyFlow, name: str) -> None:
    sequence = golden("increments.json")["sequences"][name]
    state: PriorState = empty_state("golden-race")
    for n, poll in enumerate(sequence["polls"], start=1):
        adv = poll["advertised_start"]
        payload = open_race(adv, poll["win_cents"], poll["place_cents"], poll["hold"])
        update = impl.transform(payload, adv * 1000 - poll["time_to_start"] * 60_000, state)
        [row] = update["money_flow"]
        got = (
            row["time_to_start"],
            row["time_interval"],
            row["win_pool_amount"],
            row["place_pool_amount"],
            row["incremental_win_amount"],
            row["incremental_place_amount"],
            row["is_baseline"],
        )
        want = (
            poll["time_to_start"],
            poll["bucket"],
            poll["win"],
            poll["place"],
            poll["incremental_win"],
            poll["incremental_place"],
            poll["is_baseline"],
        )
        assert got == want, f"{name}, poll {n}"
        assert not [q for q in update["quality"] if q["check"] == "increment_invariant"]
        state = update["state"]
    latest = {p["bucket"]: p for p in sequence["polls"]}
    effective = sequence["effective_buckets"]
    assert sum(latest[b]["incremental_win"] for b in effective) == sequence["latest_win"]
    assert sum(latest[b]["incremental_place"] for b in effective) == sequence["latest_place"]


@pytest.mark.parametrize("case", golden("odds.json")["changes"], ids=lambda c: f"{c['last']}->{c['current']}")
def test_odds_changes_compare_hundredths(impl: MoneyFlow, case: dict[str, object]) -> None:
    state = empty_state("golden-race")
    if case["last"] != "none":
        last = case["last"]
        assert last is None or isinstance(last, int | float)
        entry: LastOddsRecord = {"entrant_id": "e1", "type": "fixed_win", "odds": last}
        state["odds"].append(entry)
    current = case["current"]
    assert current is None or isinstance(current, float)
    update = impl.transform(open_race(1_752_713_400, 100_000, 50_000, 10, current), 1_752_712_800_000, state)
    written = [o for o in update["odds"] if o["type"] == "fixed_win"]
    assert len(written) == int(bool(case["write"]))
    if written:
        assert written[0]["odds"] == current


def _pools(impl: MoneyFlow, payload: bytes) -> dict[str, object]:
    update = impl.transform(payload, 1_752_713_400_000, empty_state(""))
    pools = update["pools"]
    assert pools is not None
    return {k: v for k, v in pools.items() if k not in ("race_id", "currency", "last_updated")}


def test_recorded_event_pools_and_dividends_fallback(impl: MoneyFlow) -> None:
    doc = golden("recorded_event.json")
    assert _pools(impl, recorded_event()) == doc["pools"]
    event = json.loads(recorded_event())
    event["data"]["tote_pools"] = []
    assert _pools(impl, json.dumps(event).encode()) == doc["dividends_fallback"]


def test_recorded_event_tracker_is_summed_not_last_row(impl: MoneyFlow) -> None:
    want = golden("recorded_event.json")["tracker"]
    event = json.loads(recorded_event())
    rows = event["data"]["money_tracker"]["entrants"]
    runner_ids = {r["entrant_id"] for r in event["data"]["runners"]}
    assert len(rows) == want["rows"]
    assert len({r["entrant_id"] for r in rows}) == want["distinct_ids"]
    summary = impl.event_summary(recorded_event())
    assert (summary["tracker_rows"], summary["tracker_unknown_ids"]) == (
        want["rows"],
        want["ids_not_runners"],
    )
    # Reopen the race so it produces money flow: each runner's hold is the sum of its rows.
    event["data"]["race"]["status"] = "Open"
    update = impl.transform(json.dumps(event).encode(), 1_752_712_800_000, empty_state(""))
    holds = {m["entrant_id"]: m["hold_percentage"] for m in update["money_flow"]}
    assert len(holds) == 8 and all(h > 0 for h in holds.values())
    unknown_hold = sum(r["hold_percentage"] for r in rows if r["entrant_id"] not in runner_ids)
    assert sum(holds.values()) + unknown_hold == want["hold_sum"]
    assert not [q for q in update["quality"] if q["check"] == "hold_sum"]
    assert [q["value"] for q in update["quality"] if q["check"] == "unknown_tracker_ids"] == [3.0]


def test_recorded_event_results(impl: MoneyFlow) -> None:
    want = golden("recorded_event.json")["results"]
    update = impl.transform(recorded_event(), 1_752_751_019_000, empty_state(""))
    results = update["results"]
    assert results is not None
    assert results["results_available"] is want["results_available"]
    assert len(results["results_data"]) == want["results_count"]
    first = results["results_data"][0]
    assert (first["name"], first["runner_number"]) == (want["first"]["name"], want["first"]["runner_number"])
    assert len(json.loads(recorded_event())["data"]["dividends"]) == want["upstream_dividend_rows"]
    assert {d["status"] for d in results["dividends_data"]} == {"Final"}
    assert Counter(d["product_name"] for d in results["dividends_data"]) == want["dividends_kept"]
    assert len(results["fixed_odds_data"]) == want["fixed_odds_entries"]
    assert results["fixed_odds_data"]["2"] == want["fixed_odds_2"]
    assert results["result_status"] == want["result_status"]
    flags = (results["photo_finish"], results["stewards_inquiry"], results["protest_lodged"])
    assert flags == (want["photo_finish"], want["stewards_inquiry"], want["protest_lodged"])
