"""Pure-Python reference of the money-flow transform (spec/money-flow.md).

A test oracle, not a fallback: it is written plainly from the spec and must produce
exactly what the Rust extension (`raceday_core`) produces, with the same
function signatures and the same exception classes (raceday_core/errors.py).
The sections of the payload are read in refsections.py, increments and odds changes are in
refhistory.py, the data-quality checks in refquality.py and the numeric rules in refmath.py.
"""

from __future__ import annotations

import math

from raceday_core.errors import PayloadDecodeError, PayloadError, PayloadSchemaError
from services.common.status import normalise_status
from services.transformer.records import (
    BucketLatestRecord,
    EventSummary,
    MoneyFlowRecord,
    MoveCell,
    MoveRecord,
    MoveRunner,
    PriorState,
    RaceUpdateRecord,
)
from services.transformer.refhistory import (
    bucket_histories,
    effective,
    odds_changes,
    previous_bucket,
    record_poll,
)
from services.transformer.refjson import (
    I32_MAX,
    MISSING,
    Findings,
    decode,
    member,
    req_int,
    req_object,
    req_text,
)
from services.transformer.refmath import (
    MAX_EPOCH_S,
    bucket,
    check_epoch_ms,
    hundredths,
    interval_type,
    pool_amounts,
    round2,
    round_half_up,
    time_to_start,
)
from services.transformer.refmoves import moves as column_moves
from services.transformer.refmoves import previous_column
from services.transformer.refquality import quality_checks
from services.transformer.refsections import (
    generated_time,
    meeting_record,
    odds_value,
    read_pools,
    read_race,
    read_results,
    read_runners,
    read_tracker,
)

__all__ = [
    "PayloadDecodeError",
    "PayloadError",
    "PayloadSchemaError",
    "bucket",
    "event_summary",
    "hundredths",
    "interval_type",
    "pool_amounts",
    "round_half_up",
    "time_to_start",
    "transform",
    "version",
]


def version() -> str:
    """Identifies the reference implementation."""
    return "reference"


def _cell(poll: BucketLatestRecord) -> MoveCell:
    return {
        "incremental_win_amount": poll["incremental_win_amount"],
        "incremental_place_amount": poll["incremental_place_amount"],
        "fixed_win_odds": poll["fixed_win_odds"],
        "pool_win_odds": poll["pool_win_odds"],
    }


def _validate_state(prior: PriorState) -> None:
    # A stored price of 0 is a price (moves define nothing against it), so 0 is accepted here.
    for i, b in enumerate(prior["buckets"]):
        for name, price in (("fixed_win_odds", b["fixed_win_odds"]), ("pool_win_odds", b["pool_win_odds"])):
            if price is not None and not (math.isfinite(price) and 0 <= price < 1e7):
                raise ValueError(f"prior_state.buckets[{i}].{name}: {price} is not a valid price")
    for i, o in enumerate(prior["odds"]):
        x = o["odds"]
        if x is not None and not (math.isfinite(x) and 0 < x < 1e7):
            raise ValueError(f"prior_state.odds[{i}].odds: {x} is not a valid price")


def transform(payload: bytes, polled_at_ms: int, prior_state: PriorState) -> RaceUpdateRecord:
    """One poll of one race: payload + receive time (epoch ms) + prior state -> update."""
    polled_at = polled_at_ms
    check_epoch_ms(polled_at)
    prior = prior_state
    _validate_state(prior)
    root = decode(payload)
    out = Findings()
    source_generated_at = generated_time(root, out)
    data = req_object("data", member(root, "data"))
    error = data.get("error")
    if isinstance(error, str) and error:
        raise PayloadSchemaError(f"data.error: upstream reported an error: {error[:200]}")
    race, meeting_name = read_race(data.get("race", MISSING), out)
    race_id = race["race_id"]
    if prior["race_id"] and prior["race_id"] != race_id:
        raise ValueError(
            f"prior_state.race_id {prior['race_id']!r} does not match the payload's race {race_id!r}"
        )
    meeting = meeting_record(race, meeting_name)
    status = race["status"]
    is_open = status == "open"
    runners = read_runners(data.get("runners", MISSING), race_id, out)
    tracker = read_tracker(data.get("money_tracker", MISSING), runners, out)
    pools = read_pools(
        data.get("tote_pools", MISSING),
        data.get("dividends", MISSING),
        race_id=race_id,
        polled_at=polled_at,
        prior=prior,
        out=out,
    )

    money_flow: list[MoneyFlowRecord] = []
    moves: list[MoveRecord] = []
    histories = bucket_histories(prior["buckets"])
    tracker_rows = tracker.rows if tracker is not None else 0
    if is_open:
        why = None
        if pools is None:
            why = "no pool totals in this poll"
        elif pools["win_pool_total"] == 0 and pools["place_pool_total"] == 0:
            why = "win and place pool totals are 0"
        elif tracker_rows == 0:
            why = "money tracker absent or empty"
        if why is not None:
            out.add("no_money_flow", "info", f"no money flow: {why}")
    if is_open and pools is not None and tracker is not None:
        wc, pc = pools["win_pool_total"], pools["place_pool_total"]
        if (wc > 0 or pc > 0) and tracker.rows > 0:
            tts = time_to_start(race["start_time"] // 1000, polled_at)
            b = bucket(tts)
            column_before = previous_column(b)
            previous_cells: dict[str, MoveCell] = {}
            current_cells: dict[str, MoveCell] = {}
            for runner in runners:
                if runner.scratched:
                    continue
                entrant_id = runner.entrant_id
                h = tracker.hold.get(entrant_id, 0.0)
                bet = tracker.bet.get(entrant_id, 0.0)
                try:
                    win, place, total, win_pct, place_pct = pool_amounts(h, wc, pc)
                except ValueError:
                    raise PayloadSchemaError(
                        f"data.money_tracker: amounts of entrant {entrant_id} are out of range"
                    ) from None
                history = histories.setdefault(entrant_id, {})
                previous = previous_bucket(history, b)
                # The dashboard's previous column shows the bucket's latest poll only while that
                # bucket is effective; this poll (in a lower bucket) does not change that.
                shown = [p for p in effective(history) if p["time_interval"] == column_before]
                if shown:
                    previous_cells[entrant_id] = _cell(shown[0])
                if previous is not None:
                    inc_win = win - previous["win_pool_amount"]
                    inc_place = place - previous["place_pool_amount"]
                    is_baseline = False
                else:
                    inc_win, inc_place, is_baseline = win, place, True
                poll: BucketLatestRecord = {
                    "entrant_id": entrant_id,
                    "time_interval": b,
                    "polled_at": polled_at,
                    "row_id": None,
                    "win_pool_amount": win,
                    "place_pool_amount": place,
                    "incremental_win_amount": inc_win,
                    "incremental_place_amount": inc_place,
                    "fixed_win_odds": odds_value(runner.odds[0]),
                    "pool_win_odds": odds_value(runner.odds[2]),
                }
                current_cells[entrant_id] = _cell(poll)
                if not record_poll(history, poll):
                    out.add(
                        "increment_invariant",
                        "error",
                        f"entrant {entrant_id}: the poll in bucket {b} is older than a stored poll "
                        "in the same or a lower bucket",
                    )
                try:
                    hold_pct, bet_pct = round2(h), round2(bet)
                    win_pct_2 = None if win_pct is None else round2(win_pct)
                    place_pct_2 = None if place_pct is None else round2(place_pct)
                except ValueError:
                    raise PayloadSchemaError("data.money_tracker: percentage out of range") from None
                odds = runner.odds
                money_flow.append(
                    {
                        "race_id": race_id,
                        "entrant_id": entrant_id,
                        "event_timestamp": polled_at,
                        "source_generated_at": source_generated_at,
                        "advertised_start": race["start_time"],
                        "time_to_start": tts,
                        "time_interval": b,
                        "interval_type": interval_type(tts),
                        "hold_percentage": hold_pct,
                        "bet_percentage": bet_pct,
                        "win_pool_total": wc,
                        "place_pool_total": pc,
                        "win_pool_amount": win,
                        "place_pool_amount": place,
                        "total_pool_amount": total,
                        "win_pool_percentage": win_pct_2,
                        "place_pool_percentage": place_pct_2,
                        "incremental_win_amount": inc_win,
                        "incremental_place_amount": inc_place,
                        "is_baseline": is_baseline,
                        "fixed_win_odds": odds_value(odds[0]),
                        "fixed_place_odds": odds_value(odds[1]),
                        "pool_win_odds": odds_value(odds[2]),
                        "pool_place_odds": odds_value(odds[3]),
                    }
                )
                record = runner.record
                record["has_money_flow"] = True
                record["hold_percentage"] = hold_pct
                record["bet_percentage"] = bet_pct
                record["win_pool_percentage"] = win_pct_2
                record["place_pool_percentage"] = place_pct_2
                record["win_pool_amount"] = win
                record["place_pool_amount"] = place
                record["money_flow_at"] = polled_at
            runner_list: list[MoveRunner] = [
                {"entrant_id": r.entrant_id, "scratched": r.scratched} for r in runners
            ]
            moves = column_moves(b, runner_list, previous_cells, current_cells)

    odds_rows, odds_state = odds_changes(runners, race_id, polled_at, prior)
    results = read_results(
        data.get("results", MISSING),
        data.get("dividends", MISSING),
        runners=runners,
        race_id=race_id,
        status=status,
        polled_at=polled_at,
        prior=prior,
        out=out,
    )
    quality_checks(race, runners=runners, tracker=tracker, pools=pools, prior=prior, out=out)

    buckets = [poll for history in histories.values() for poll in history.values()]
    buckets.sort(key=lambda p: (p["entrant_id"], -p["time_interval"]))
    state: PriorState = {
        "race_id": race_id,
        "buckets": buckets,
        "odds": odds_state,
        "status": status,
        "start_time": race["start_time"],
        "protest": prior["protest"],
        "pools": pools if pools is not None else prior["pools"],
        "photo_finish": results["photo_finish"] if results else prior["photo_finish"],
        "stewards_inquiry": results["stewards_inquiry"] if results else prior["stewards_inquiry"],
        "protest_lodged": results["protest_lodged"] if results else prior["protest_lodged"],
        "result_status": results["result_status"] if results else prior["result_status"],
        "result_time": results["result_time"] if results else prior["result_time"],
    }
    return {
        "race_id": race_id,
        "polled_at": polled_at,
        "source_generated_at": source_generated_at,
        "race": race,
        "meeting": meeting,
        "entrants": [r.record for r in runners],
        "money_flow": money_flow,
        "odds": odds_rows,
        "pools": pools,
        "results": results,
        "quality": out.sorted(),
        "moves": moves,
        "state": state,
    }


def event_summary(payload: bytes) -> EventSummary:
    """A digest of an event payload for logging and in-band error detection."""
    root = decode(payload)
    data = member(root, "data")
    raw_error = member(data, "error")
    error = raw_error if isinstance(raw_error, str) else ""
    if not error:
        req_object("data", data)
        req_object("data.race", member(data, "race"))
    race = member(data, "race")
    advertised_start: int | None
    if error:
        raw_id = member(race, "event_id")
        event_id = raw_id if isinstance(raw_id, str) else ""
        raw_start = member(race, "advertised_start")
        is_int = isinstance(raw_start, int) and not isinstance(raw_start, bool)
        advertised_start = raw_start if is_int and 0 <= raw_start <= MAX_EPOCH_S else None
    else:
        event_id = req_text("data.race.event_id", member(race, "event_id"))
        advertised_start = req_int(
            "data.race.advertised_start", member(race, "advertised_start"), 0, MAX_EPOCH_S
        )
    raw_status = member(race, "status")
    status_raw = raw_status if isinstance(raw_status, str) else None
    raw_meeting = member(race, "meeting_id")
    raw_number = member(race, "race_number")
    runners_value = member(data, "runners")
    runners = runners_value if isinstance(runners_value, list) else []
    runner_ids = {e for r in runners if isinstance(e := member(r, "entrant_id"), str)}
    scratched = sum(
        1 for r in runners if member(r, "is_scratched") is True or member(r, "is_late_scratched") is True
    )
    rows_value = member(member(data, "money_tracker"), "entrants")
    rows = rows_value if isinstance(rows_value, list) else []
    tracker_ids = {e for row in rows if isinstance(e := member(row, "entrant_id"), str)}
    pools_value = member(data, "tote_pools")
    pools = pools_value if isinstance(pools_value, list) else []
    results_value = member(data, "results")
    dividends_value = member(data, "dividends")
    generated = member(member(root, "header"), "generated_time")
    return {
        "event_id": event_id,
        "meeting_id": raw_meeting if isinstance(raw_meeting, str) else None,
        "race_number": (
            raw_number
            if isinstance(raw_number, int) and not isinstance(raw_number, bool) and 0 <= raw_number <= I32_MAX
            else None
        ),
        "status_raw": status_raw,
        "status": normalise_status(status_raw),
        "advertised_start": advertised_start,
        "error": error,
        "runner_count": len(runners),
        "scratched_count": scratched,
        "tracker_rows": len(rows),
        "tracker_unknown_ids": len(tracker_ids - runner_ids),
        "pool_products": [p for row in pools if isinstance(p := member(row, "product_type"), str)],
        "results_count": len(results_value) if isinstance(results_value, list) else 0,
        "dividends_count": len(dividends_value) if isinstance(dividends_value, list) else 0,
        "generated_time": generated if isinstance(generated, str) else None,
    }
