"""Moves (issue 14): the server's values are the dashboard's colour-indicator values (rest-api.md §4.1).

Three checks of one definition:

- the hand-computed golden vectors of tests/fixtures/moves_golden.json (the dashboard's browser
  test reads the same file) against `raceday_core.moves` and the reference's oracle;
- whole poll sequences through the real transform, on the records path (state handed on) and
  the encoded path (state read back from "storage", as the writer serves it): each poll's moves
  equal, double for double, what indicators.js computes from the timeline the dashboard would
  load right after the poll (effective buckets only, money-flow §7.1), for the poll's column;
- a start moved so that the previous column holds a bucket left behind (not effective): the
  dashboard does not show it, so it counts for nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import raceday_core
from services.common.proto.raceday.v1 import race_pb2, transformer_pb2
from services.transformer import reference, refmoves
from services.transformer.convert import state_to_proto, timestamp_from_ms
from services.transformer.engine import nz_date_text
from services.transformer.records import MoveRecord, PriorState, RaceUpdateRecord, empty_state
from tests.transformer.payloads import (
    BASE_START_S,
    open_race_payload,
    open_race_polls,
    recorded_payload,
)

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "moves_golden.json"
CASES: list[dict[str, Any]] = json.loads(GOLDEN.read_text())["cases"]
RACE_ID = "0f57e087-00d9-4c61-9549-835abe2ae2ed"

Moves = Callable[..., list[MoveRecord]]


def _assert_moves_equal(got: Sequence[MoveRecord], expected: Sequence[dict[str, Any]], where: str) -> None:
    assert [(m["entrant_id"], m["kind"]) for m in got] == [(m["entrant_id"], m["kind"]) for m in expected], (
        where
    )
    for move, want in zip(got, expected, strict=True):
        assert math.isclose(move["value"], want["value"], rel_tol=1e-9, abs_tol=1e-9), (where, move, want)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
@pytest.mark.parametrize("moves", [raceday_core.moves, refmoves.moves], ids=["extension", "reference"])
def test_golden_vectors(case: dict[str, Any], moves: Moves) -> None:
    got = moves(case["time_interval"], case["runners"], case["previous"], case["current"])
    _assert_moves_equal(got, case["moves"], case["name"])
    assert {(m["time_interval"], m["previous_interval"]) for m in got} <= {
        (case["time_interval"], case["previous_interval"])
    }
    assert raceday_core.previous_column(case["time_interval"]) == case["previous_interval"]


def test_golden_vectors_cover_what_the_issue_asks() -> None:
    pairs = {(case["time_interval"], case["previous_interval"]) for case in CASES}
    assert {(55, 60), (4, 5), (-1, 0)} <= pairs
    assert any(r["scratched"] for case in CASES for r in case["runners"])
    assert any(move["value"] < 0 for case in CASES for move in case["moves"])
    assert any(
        cell["fixed_win_odds"] == 0
        for case in CASES
        for cell in [*case["previous"].values(), *case["current"].values()]
    )
    kinds = {move["kind"] for case in CASES for move in case["moves"]}
    assert kinds == set(raceday_core.MOVE_KINDS)


def test_the_timeline_columns_and_the_threshold() -> None:
    for b in [60, *range(55, 4, -5), *range(4, -70, -1)]:
        assert raceday_core.previous_column(b) == refmoves.previous_column(b), b
    assert raceday_core.previous_column(60) is None and raceday_core.moves(60, [], {}, {}) == []
    assert raceday_core.ALERT_THRESHOLD == 5.0
    assert raceday_core.MOVE_KINDS == ("win_money", "place_money", "win_price")


def test_malformed_arguments_are_value_errors() -> None:
    # Typed loosely on purpose: these are the shapes the stub refuses.
    runner: Any = {"entrant_id": "a"}
    cell: Any = {"incremental_win_amount": 1}
    with pytest.raises(ValueError, match=r"runners\[0\]\.scratched: missing"):
        raceday_core.moves(5, [runner], {}, {})
    runner["scratched"] = False
    with pytest.raises(ValueError, match=r"current\[\"a\"\]\.incremental_place_amount: missing"):
        raceday_core.moves(5, [runner], {}, {"a": cell})


# ---- the dashboard's view, rebuilt from stored rows ---------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    """A money-flow row as stored, with the fields the timeline serves."""

    row_id: int
    entrant_id: str
    bucket: int
    polled_at: int
    win: int
    place: int
    incremental_win: int
    incremental_place: int
    fixed_win_odds: float | None
    pool_win_odds: float | None


def _timeline(history: Sequence[Stored]) -> dict[tuple[str, int], Stored]:
    """The documents the dashboard loads: per entrant, the latest row of each effective bucket."""
    latest: dict[tuple[str, int], Stored] = {}
    for row in history:
        key = (row.entrant_id, row.bucket)
        if key not in latest or (row.polled_at, row.row_id) > (latest[key].polled_at, latest[key].row_id):
            latest[key] = row
    cells: dict[tuple[str, int], Stored] = {}
    newest: dict[str, tuple[int, int]] = {}
    for (entrant_id, bucket), row in sorted(latest.items(), key=lambda kv: -kv[0][1]):
        stamp = (row.polled_at, row.row_id)
        if entrant_id not in newest or stamp > newest[entrant_id]:
            cells[(entrant_id, bucket)] = row
            newest[entrant_id] = stamp
    return cells


def _indicator_values(
    cells: dict[tuple[str, int], Stored], runner_ids: Sequence[str]
) -> dict[tuple[str, int, str], float]:
    """moneyIndicatorValues and oddsIndicatorValues of indicators.js over every column."""
    lowest = min([0, *(bucket for _, bucket in cells)])
    columns = [60, 55, 50, 45, 40, 35, 30, 25, 20, 15, 10, 5, 4, 3, 2, 1, 0, *range(-1, lowest - 1, -1)]
    values: dict[tuple[str, int, str], float] = {}
    for kind, amount in (("win_money", "incremental_win"), ("place_money", "incremental_place")):
        shares = []
        for column in columns:
            positive = [
                max(0.0, float(getattr(cells[(i, column)], amount))) if (i, column) in cells else 0.0
                for i in runner_ids
            ]
            total = 0.0
            for value in positive:
                total += value
            shares.append((total, [value * 100 / total if total > 0 else None for value in positive]))
        for index in range(1, len(columns)):
            (before_total, before), (now_total, now) = shares[index - 1], shares[index]
            if before_total == 0 or now_total == 0:
                continue
            for position, runner in enumerate(runner_ids):
                now_share, before_share = now[position], before[position]
                assert now_share is not None and before_share is not None
                values[(runner, columns[index], kind)] = now_share - before_share

    def price(runner: str, column: int) -> float | None:
        row = cells.get((runner, column))
        if row is None:
            return None
        return row.fixed_win_odds if row.fixed_win_odds is not None else row.pool_win_odds

    for index in range(1, len(columns)):
        for runner in runner_ids:
            before_price, now_price = price(runner, columns[index - 1]), price(runner, columns[index])
            if before_price is None or now_price is None or before_price <= 0:
                continue
            values[(runner, columns[index], "win_price")] = (before_price - now_price) * 100 / before_price
    return values


def _dashboard_moves(update: RaceUpdateRecord, history: Sequence[Stored]) -> list[MoveRecord]:
    """The values the dashboard shows in the column of this poll, in the order moves are listed."""
    if not update["money_flow"]:
        return []
    bucket = update["money_flow"][0]["time_interval"]
    previous = raceday_core.previous_column(bucket)
    runners = [
        e["entrant_id"] for e in update["entrants"] if not (e["is_scratched"] or e["is_late_scratched"])
    ]
    values = _indicator_values(_timeline(history), runners)
    return [
        {
            "entrant_id": runner,
            "kind": kind,
            "time_interval": bucket,
            "previous_interval": previous,
            "value": values[(runner, bucket, kind)],
        }
        for runner in runners
        for kind in raceday_core.MOVE_KINDS
        if previous is not None and (runner, bucket, kind) in values
    ]


def _store(update: RaceUpdateRecord, history: list[Stored]) -> None:
    for row in update["money_flow"]:
        history.append(
            Stored(
                row_id=len(history) + 1,
                entrant_id=row["entrant_id"],
                bucket=row["time_interval"],
                polled_at=row["event_timestamp"],
                win=row["win_pool_amount"],
                place=row["place_pool_amount"],
                incremental_win=row["incremental_win_amount"],
                incremental_place=row["incremental_place_amount"],
                fixed_win_odds=row["fixed_win_odds"],
                pool_win_odds=row["pool_win_odds"],
            )
        )


def _state_from_storage(update: RaceUpdateRecord, history: Sequence[Stored]) -> PriorState:
    """What GetRaceState serves: the latest stored row per (entrant, bucket), with its row id."""
    latest: dict[tuple[str, int], Stored] = {}
    for row in history:
        key = (row.entrant_id, row.bucket)
        if key not in latest or (row.polled_at, row.row_id) > (latest[key].polled_at, latest[key].row_id):
            latest[key] = row
    state: PriorState = {**update["state"]}
    state["buckets"] = [
        {
            "entrant_id": row.entrant_id,
            "time_interval": row.bucket,
            "polled_at": row.polled_at,
            "row_id": row.row_id,
            "win_pool_amount": row.win,
            "place_pool_amount": row.place,
            "incremental_win_amount": row.incremental_win,
            "incremental_place_amount": row.incremental_place,
            "fixed_win_odds": row.fixed_win_odds,
            "pool_win_odds": row.pool_win_odds,
        }
        for row in latest.values()
    ]
    return state


def _encoded(payload: bytes, polled_at_ms: int, state: PriorState) -> race_pb2.RaceUpdate:
    request = transformer_pb2.TransformRequest(
        payload=payload, polled_at=timestamp_from_ms(polled_at_ms), prior_state=state_to_proto(state)
    )
    answer = raceday_core.transform_encoded(request.SerializeToString(), nz_date_text)
    return transformer_pb2.TransformResponse.FromString(answer).update


def _run(polls: Sequence[tuple[int, bytes]]) -> list[tuple[RaceUpdateRecord, list[MoveRecord]]]:
    """Each poll's update (records path, state handed on) and the dashboard's moves after it.

    Along the way the reference must agree, and the encoded path fed the state storage serves
    must give the same moves.
    """
    handed = empty_state(RACE_ID)
    history: list[Stored] = []
    out = []
    for polled_at, payload in polls:
        update = raceday_core.transform(payload, polled_at, handed)
        assert update["moves"] == reference.transform(payload, polled_at, handed)["moves"]
        stored_state = _state_from_storage(update, history) if history else empty_state(RACE_ID)
        encoded = _encoded(payload, polled_at, stored_state)
        assert [
            {
                "entrant_id": m.entrant_id,
                "kind": m.kind,
                "time_interval": m.time_interval,
                "previous_interval": m.previous_interval,
                "value": m.value,
            }
            for m in encoded.moves
        ] == update["moves"]
        _store(update, history)
        out.append((update, _dashboard_moves(update, history)))
        handed = update["state"]
    return out


def test_a_poll_sequence_moves_as_the_dashboard_colours() -> None:
    results = _run([(poll.polled_at_ms, poll.payload) for poll in open_race_polls()])
    for index, (update, dashboard) in enumerate(results):
        assert update["moves"] == dashboard, f"poll {index}"
    with_moves = [update for update, _ in results if update["moves"]]
    columns = {update["moves"][0]["time_interval"] for update in with_moves}
    # Polls in column 60, after an empty column (45, 2, -2) or without money flow have none.
    assert {55, 50, 15, 10, 5, 4, 0, -1} <= columns
    assert not results[0][0]["moves"] and not results[-1][0]["moves"]
    every = [move for update in with_moves for move in update["moves"]]
    assert {move["kind"] for move in every} == set(raceday_core.MOVE_KINDS)
    assert any(move["value"] >= raceday_core.ALERT_THRESHOLD for move in every)
    assert any(move["value"] < 0 for move in every)
    # Scratched runners (runner 3 from poll 7, runner 6 from poll 12) have no moves.
    scratched = {
        e["entrant_id"] for e in results[12][0]["entrants"] if e["is_scratched"] or e["is_late_scratched"]
    }
    assert len(scratched) == 2
    assert not [
        move for update, _ in results[12:] for move in update["moves"] if move["entrant_id"] in scratched
    ]


def test_a_bucket_left_behind_is_no_previous_column() -> None:
    template = recorded_payload()
    start, delayed = BASE_START_S, BASE_START_S + 600

    def poll(index: int, start_s: int, seconds_before: int) -> tuple[int, bytes]:
        return start_s * 1000 - seconds_before * 1000, open_race_payload(
            template, index, advertised_start_s=start_s
        )

    polls = [
        poll(0, start, 12 * 60),  # column 10
        poll(1, start, 7 * 60),  # column 5
        # The start moves ten minutes later: the next poll lands in 10 again (13 minutes), so
        # the poll in 5 is older than the latest of a bucket above it and is no longer served.
        poll(2, delayed, 13 * 60),
        poll(3, delayed, 4 * 60),  # column 4: its previous column, 5, is empty on the dashboard
    ]
    results = _run(polls)
    for index, (update, dashboard) in enumerate(results):
        assert update["moves"] == dashboard, f"poll {index}"
    assert [update["money_flow"][0]["time_interval"] for update, _ in results] == [10, 5, 10, 4]
    assert results[1][0]["moves"]  # 5 against 10 while both are served
    assert results[3][0]["moves"] == []  # against the left-behind 5: nothing
