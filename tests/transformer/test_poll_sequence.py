"""A sequence of polls of an open race through the service and the CLI.

Checks money-flow.md 7.3 (each entrant's increments over the latest polls of its
effective buckets sum to its latest amount) after every poll, and that handing the
state from poll to poll in every way it travels (the update's own state, a JSON state
file, a state rebuilt from stored rows like the writer's, the CLI's --state/--state-out)
gives the same money-flow and odds rows as one uninterrupted run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.proto.raceday.v1 import race_pb2, transformer_pb2
from services.transformer.convert import state_from_proto, state_to_proto
from services.transformer.documents import (
    UPDATE_KEYS,
    iso_from_ms,
    ms_from_iso,
    state_document,
    state_from_document,
)
from tests.transformer.conftest import TransformerServer, raceday
from tests.transformer.payloads import BASE_START_S, DELAY_S, Poll, open_race_polls

RACE_ID = "0f57e087-00d9-4c61-9549-835abe2ae2ed"
POLLS = open_race_polls()


@dataclass(frozen=True, slots=True)
class Row:
    """The fields of a money-flow row that the invariant and the comparisons use."""

    entrant_id: str
    polled_at_ms: int
    advertised_start_ms: int
    time_to_start: int
    bucket: int
    win: int
    place: int
    incremental_win: int
    incremental_place: int
    is_baseline: bool
    hold_percentage: float
    win_pool_total: int
    place_pool_total: int
    fixed_win_odds: float | None
    pool_win_odds: float | None


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A row as the writer would store it: with a row id from a sequence."""

    row_id: int
    row: Row


def _row_from_proto(row: race_pb2.MoneyFlowRow) -> Row:
    return Row(
        entrant_id=row.entrant_id,
        polled_at_ms=row.event_timestamp.ToMilliseconds(),
        advertised_start_ms=row.advertised_start.ToMilliseconds(),
        time_to_start=row.time_to_start,
        bucket=row.time_interval,
        win=row.win_pool_amount,
        place=row.place_pool_amount,
        incremental_win=row.incremental_win_amount,
        incremental_place=row.incremental_place_amount,
        is_baseline=row.is_baseline,
        hold_percentage=row.hold_percentage,
        win_pool_total=row.win_pool_total,
        place_pool_total=row.place_pool_total,
        fixed_win_odds=row.fixed_win_odds if row.HasField("fixed_win_odds") else None,
        pool_win_odds=row.pool_win_odds if row.HasField("pool_win_odds") else None,
    )


def _row_from_document(row: dict[str, Any]) -> Row:
    return Row(
        entrant_id=row["entrant_id"],
        polled_at_ms=ms_from_iso(row["event_timestamp"]),
        advertised_start_ms=ms_from_iso(row["advertised_start"]),
        time_to_start=row["time_to_start"],
        bucket=row["time_interval"],
        win=row["win_pool_amount"],
        place=row["place_pool_amount"],
        incremental_win=row["incremental_win_amount"],
        incremental_place=row["incremental_place_amount"],
        is_baseline=row["is_baseline"],
        hold_percentage=row["hold_percentage"],
        win_pool_total=row["win_pool_total"],
        place_pool_total=row["place_pool_total"],
        fixed_win_odds=row["fixed_win_odds"],
        pool_win_odds=row["pool_win_odds"],
    )


def _latest_per_bucket(rows: Sequence[StoredRow]) -> dict[int, StoredRow]:
    latest: dict[int, StoredRow] = {}
    for stored in rows:
        current = latest.get(stored.row.bucket)
        key = (stored.row.polled_at_ms, stored.row_id)
        if current is None or key > (current.row.polled_at_ms, current.row_id):
            latest[stored.row.bucket] = stored
    return latest


def _effective(rows: Sequence[StoredRow]) -> list[StoredRow]:
    """Latest polls of the effective buckets, highest bucket first (money-flow.md 7.1)."""
    effective: list[StoredRow] = []
    newest: tuple[int, int] | None = None
    latest = _latest_per_bucket(rows)
    for bucket in sorted(latest, reverse=True):
        stored = latest[bucket]
        key = (stored.row.polled_at_ms, stored.row_id)
        if newest is None or key > newest:
            effective.append(stored)
            newest = key
    return effective


def assert_increment_invariant(history: Sequence[StoredRow]) -> None:
    """money-flow.md 7.3 for every entrant of the stored history."""
    by_entrant: dict[str, list[StoredRow]] = defaultdict(list)
    for stored in history:
        by_entrant[stored.row.entrant_id].append(stored)
    for entrant_id, rows in by_entrant.items():
        most_recent = max(rows, key=lambda stored: (stored.row.polled_at_ms, stored.row_id)).row
        effective = _effective(rows)
        assert sum(stored.row.incremental_win for stored in effective) == most_recent.win, entrant_id
        assert sum(stored.row.incremental_place for stored in effective) == most_recent.place, entrant_id
        assert effective[0].row.is_baseline, entrant_id
        assert not any(stored.row.is_baseline for stored in effective[1:]), entrant_id


def _stamp(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


@dataclass
class Run:
    """What one pass over the polls produced."""

    updates: list[race_pb2.RaceUpdate]
    history: list[StoredRow]

    def money_flow(self) -> list[list[race_pb2.MoneyFlowRow]]:
        return [list(update.money_flow) for update in self.updates]

    def odds(self) -> list[list[race_pb2.OddsChange]]:
        return [list(update.odds) for update in self.updates]

    def moves(self) -> list[list[race_pb2.Move]]:
        return [list(update.moves) for update in self.updates]


StateHandover = Callable[[race_pb2.RaceUpdate, list[StoredRow]], race_pb2.RaceState]


def _carried(update: race_pb2.RaceUpdate, _history: list[StoredRow]) -> race_pb2.RaceState:
    return update.state


def _through_json_file(update: race_pb2.RaceUpdate, _history: list[StoredRow]) -> race_pb2.RaceState:
    text = json.dumps(state_document(state_from_proto(update.state)))
    return state_to_proto(state_from_document(json.loads(text)))


def _from_storage(update: race_pb2.RaceUpdate, history: list[StoredRow]) -> race_pb2.RaceState:
    """What the writer would read back (storage.md 5): latest row per (entrant, bucket) with ids."""
    state = race_pb2.RaceState(race_id=update.race_id, status=update.race.status)
    state.start_time.CopyFrom(update.race.start_time)
    by_entrant: dict[str, list[StoredRow]] = defaultdict(list)
    for stored in history:
        by_entrant[stored.row.entrant_id].append(stored)
    for entrant_id, rows in by_entrant.items():
        for bucket, stored in sorted(_latest_per_bucket(rows).items()):
            state.buckets.add(
                entrant_id=entrant_id,
                time_interval=bucket,
                polled_at=_stamp(stored.row.polled_at_ms),
                row_id=stored.row_id,
                win_pool_amount=stored.row.win,
                place_pool_amount=stored.row.place,
                incremental_win_amount=stored.row.incremental_win,
                incremental_place_amount=stored.row.incremental_place,
                fixed_win_odds=stored.row.fixed_win_odds,
                pool_win_odds=stored.row.pool_win_odds,
            )
    # The last stored odds are the previous update's state odds (the writer keeps every change).
    state.odds.extend(update.state.odds)
    if update.HasField("pools"):
        state.pools.CopyFrom(update.pools)
    elif update.state.HasField("pools"):
        state.pools.CopyFrom(update.state.pools)
    return state


async def _run(server: TransformerServer, polls: Sequence[Poll], handover: StateHandover) -> Run:
    state = race_pb2.RaceState(race_id=RACE_ID)
    updates: list[race_pb2.RaceUpdate] = []
    history: list[StoredRow] = []
    for poll in polls:
        response: transformer_pb2.TransformResponse = await server.stub.Transform(
            transformer_pb2.TransformRequest(
                payload=poll.payload, polled_at=_stamp(poll.polled_at_ms), prior_state=state
            ),
            timeout=10,
        )
        update = response.update
        updates.append(update)
        for row in update.money_flow:
            history.append(StoredRow(row_id=len(history) + 1, row=_row_from_proto(row)))
        assert_increment_invariant(history)
        state = handover(update, history)
    return Run(updates, history)


@pytest.fixture(scope="module")
async def uninterrupted(transformer: TransformerServer) -> Run:
    return await _run(transformer, POLLS, _carried)


def test_polls_are_in_time_order_and_cover_the_cases() -> None:
    times = [poll.polled_at_ms for poll in POLLS]
    assert times == sorted(times)
    assert {poll.advertised_start_s for poll in POLLS} == {BASE_START_S, BASE_START_S + DELAY_S}


async def test_uninterrupted_run_holds_the_invariant(uninterrupted: Run) -> None:
    rows = [stored.row for stored in uninterrupted.history]
    buckets = [row.bucket for row in rows]
    # The sequence exercises what it claims to: reused buckets, a delay, post-start buckets.
    assert {60, 55, 15, 10, 5, 4, 1, 0, -1, -3} <= set(buckets)
    assert any(row.time_to_start < 0 for row in rows)
    assert len({row.advertised_start_ms for row in rows}) == 2
    assert any(row.incremental_win < 0 for row in rows) or any(row.incremental_place < 0 for row in rows)

    per_poll = [len(update.money_flow) for update in uninterrupted.updates]
    assert per_poll[0] == 8
    assert per_poll[7] == 7  # runner 3 scratched
    assert per_poll[12] == 6  # runner 6 late-scratched too
    assert per_poll[-1] == 0  # Closed: no money flow
    by_number = {entrant.runner_number: entrant for entrant in uninterrupted.updates[-1].entrants}
    assert by_number[3].is_scratched and by_number[6].is_late_scratched
    for index, update in enumerate(uninterrupted.updates):
        ids = {row.entrant_id for row in update.money_flow}
        assert (by_number[3].entrant_id in ids) == (index < 7 and update.race.status == "open")
        assert (by_number[6].entrant_id in ids) == (index < 12 and update.race.status == "open")

    # Each entrant's first row is its baseline: the full amount.
    seen: set[str] = set()
    for row in rows:
        if row.entrant_id not in seen:
            assert row.is_baseline
            assert (row.incremental_win, row.incremental_place) == (row.win, row.place)
            seen.add(row.entrant_id)
    assert len(seen) == 8


async def test_state_through_json_gives_the_same_rows(
    transformer: TransformerServer, uninterrupted: Run
) -> None:
    replay = await _run(transformer, POLLS, _through_json_file)
    assert replay.money_flow() == uninterrupted.money_flow()
    assert replay.odds() == uninterrupted.odds()
    assert replay.moves() == uninterrupted.moves()


async def test_state_from_stored_rows_gives_the_same_rows(
    transformer: TransformerServer, uninterrupted: Run
) -> None:
    replay = await _run(transformer, POLLS, _from_storage)
    assert replay.money_flow() == uninterrupted.money_flow()
    assert replay.odds() == uninterrupted.odds()
    assert replay.moves() == uninterrupted.moves()


async def test_cli_replay_with_state_files_gives_the_same_rows(
    uninterrupted: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history: list[StoredRow] = []
    previous_state: Path | None = None
    for poll, expected in zip(POLLS, uninterrupted.updates, strict=True):
        payload = tmp_path / f"poll-{poll.index:02d}.json"
        payload.write_bytes(poll.payload)
        state_out = tmp_path / f"state-{poll.index:02d}.json"
        argv = [
            "transform",
            str(payload),
            "--at",
            iso_from_ms(poll.polled_at_ms),
            "--state-out",
            str(state_out),
            "--compact",
        ]
        if previous_state is not None:
            argv += ["--state", str(previous_state)]
        assert raceday(argv) == 0
        captured = capsys.readouterr()
        assert captured.err == ""
        document = json.loads(captured.out)
        assert tuple(document) == UPDATE_KEYS
        rows = [_row_from_document(row) for row in document["money_flow"]]
        assert rows == [_row_from_proto(row) for row in expected.money_flow]
        assert [(row["entrant_id"], row["type"], row["odds"]) for row in document["odds"]] == [
            (row.entrant_id, row.type, row.odds if row.HasField("odds") else None) for row in expected.odds
        ]
        for row in rows:
            history.append(StoredRow(row_id=len(history) + 1, row=row))
        assert_increment_invariant(history)
        state_document_on_disk = json.loads(state_out.read_text())
        assert state_from_document(state_document_on_disk) == state_from_proto(expected.state)
        previous_state = state_out
