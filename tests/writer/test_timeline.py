"""GetMoneyFlowTimeline: one document per (entrant, effective bucket), stable ids, cursor paging."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from services.common.nztime import from_epoch_ms, to_epoch_ms
from services.common.proto.raceday.v1 import query_pb2, race_pb2
from services.common.timestamps import datetime_to_ts, timestamp_from_ms
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from tests.writer.builder import START, ensure, fetch, new_race, poll, write
from tests.writer.conftest import Stubs


async def _delayed_race(
    db: Database, maintainer: PartitionMaintainer
) -> tuple[str, list[race_pb2.RaceUpdate]]:
    """money-flow §7.7 with two runners: the start moves 10 minutes later after the third poll,
    then two polls after the (new) start land in buckets -64 (shown) and -65 (not shown)."""
    await ensure(maintainer, START.date())
    race = new_race(runners=2)
    original = race.start_ms
    delayed = original + 10 * 60_000
    plan = [  # (start used, minutes before it) -> buckets 60, 10, 5, 15, 10, 4, -64, -65
        (original, 61),
        (original, 12),
        (original, 7),
        (delayed, 16),
        (delayed, 11),
        (delayed, 4),
        (delayed, -64),
        (delayed, -65),
    ]
    updates: list[race_pb2.RaceUpdate] = []
    previous = None
    for index, (start_ms, minutes) in enumerate(plan):
        race.start_ms = start_ms
        at = from_epoch_ms(start_ms) - timedelta(minutes=minutes)
        update = poll(race, at, index=index, previous=previous)
        assert (await write(db, maintainer, update)).written
        updates.append(update)
        previous = update
    return race.race_id, updates


async def test_documents_are_the_latest_polls_of_effective_buckets(
    stubs: Stubs, db: Database, maintainer: PartitionMaintainer
) -> None:
    race_id, updates = await _delayed_race(db, maintainer)
    rows = await fetch(
        db,
        "SELECT id, entrant_id, time_interval, created_at FROM money_flow_history WHERE race_id = %s",
        race_id,
    )
    assert sorted({r[2] for r in rows}) == [-65, -64, 4, 5, 10, 15, 60]
    response = await stubs.query.GetMoneyFlowTimeline(query_pb2.GetMoneyFlowTimelineRequest(race_id=race_id))
    documents = list(response.documents)
    entrants = list(response.entrant_ids)
    assert entrants == [f"{race_id}-e01", f"{race_id}-e02"]
    # Bucket 5 (poll 3) was left behind by the delay; -65 is outside the window.
    assert sorted((d.entrant_id, d.time_interval) for d in documents) == sorted(
        (e, b) for e in entrants for b in (60, 15, 10, 4, -64)
    )
    assert [d.id for d in documents] == sorted(d.id for d in documents)
    for doc in documents:
        bucket_rows = [r for r in rows if r[1] == doc.entrant_id and r[2] == doc.time_interval]
        assert doc.id == min(r[0] for r in bucket_rows)  # stable: the bucket's first row
        assert doc.row_id == max(r[0] for r in bucket_rows)  # the latest poll
    ten = next(d for d in documents if d.entrant_id == entrants[0] and d.time_interval == 10)
    poll5 = updates[4].money_flow[0]
    assert ten.row_id != ten.id
    assert (ten.win_pool_amount, ten.incremental_win_amount, ten.time_to_start) == (
        poll5.win_pool_amount,
        poll5.incremental_win_amount,
        11,
    )
    assert ten.event_timestamp.ToMilliseconds() == updates[4].polled_at.ToMilliseconds()
    assert ten.fixed_win_odds == poll5.fixed_win_odds and ten.interval_type == "2m"
    # Entrant filter: unknown ids are ignored; the selection is reported in runner order.
    only = await stubs.query.GetMoneyFlowTimeline(
        query_pb2.GetMoneyFlowTimelineRequest(race_id=race_id, entrant_ids=[entrants[1], "not-in-race"])
    )
    assert list(only.entrant_ids) == [entrants[1]]
    assert {d.entrant_id for d in only.documents} == {entrants[1]} and len(only.documents) == 5


async def test_cursor_paging_and_created_after(
    stubs: Stubs, db: Database, maintainer: PartitionMaintainer
) -> None:
    race_id, updates = await _delayed_race(db, maintainer)
    full = list(
        (
            await stubs.query.GetMoneyFlowTimeline(query_pb2.GetMoneyFlowTimelineRequest(race_id=race_id))
        ).documents
    )
    assert len(full) == 10
    pages: list[list[int]] = []
    cursor: int | None = None
    while True:
        request = query_pb2.GetMoneyFlowTimelineRequest(race_id=race_id, limit=4)
        if cursor is not None:
            request.cursor_after = cursor
        page = list((await stubs.query.GetMoneyFlowTimeline(request)).documents)
        pages.append([d.id for d in page])
        if len(page) < 4:
            break
        cursor = page[-1].id
    assert [len(p) for p in pages] == [4, 4, 2]
    assert [i for p in pages for i in p] == [d.id for d in full]
    # Only documents whose latest row was written after poll 6's write: the post-start bucket -64.
    created = await fetch(
        db,
        "SELECT max(created_at) FROM money_flow_history WHERE race_id = %s AND event_timestamp = %s",
        race_id,
        from_epoch_ms(updates[5].polled_at.ToMilliseconds()),
    )
    request = query_pb2.GetMoneyFlowTimelineRequest(race_id=race_id)
    datetime_to_ts(created[0][0], request.created_after)
    fresh = (await stubs.query.GetMoneyFlowTimeline(request)).documents
    assert sorted(d.time_interval for d in fresh) == [-64, -64]
    # The REST layer echoes instants truncated to milliseconds: poll 6's documents may come again,
    # but nothing newer is ever skipped.
    request.created_after.CopyFrom(timestamp_from_ms(to_epoch_ms(created[0][0])))
    again = (await stubs.query.GetMoneyFlowTimeline(request)).documents
    assert {d.time_interval for d in again} >= {-64}


async def test_timeline_errors_and_empty_race(
    stubs: Stubs, db: Database, maintainer: PartitionMaintainer
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.GetMoneyFlowTimeline(query_pb2.GetMoneyFlowTimelineRequest(race_id="nope"))
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.GetMoneyFlowTimeline(
            query_pb2.GetMoneyFlowTimelineRequest(race_id="x", cursor_after=-1)
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await ensure(maintainer, START.date())
    race = new_race(runners=2)
    await write(db, maintainer, poll(race, START + timedelta(minutes=5), status="closed"))
    empty = await stubs.query.GetMoneyFlowTimeline(
        query_pb2.GetMoneyFlowTimelineRequest(race_id=race.race_id)
    )
    assert list(empty.documents) == [] and len(empty.entrant_ids) == 2
