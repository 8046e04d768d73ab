"""GetRaceState, UpsertMeetings, ListSchedulableRaces and job runs, through the real gRPC server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from services.common.nztime import to_epoch_ms
from services.common.proto.raceday.v1 import race_pb2, writer_pb2
from services.common.timestamps import timestamp_from_ms
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from tests.writer.builder import START, ensure, fetch, minutes_before, new_race, poll, scalar, write
from tests.writer.conftest import Stubs


@pytest.fixture(autouse=True)
async def _partitions(maintainer: PartitionMaintainer) -> None:
    await ensure(maintainer, START.date())


async def test_state_of_an_unknown_race_is_not_found(stubs: Stubs) -> None:
    response = await stubs.writer.GetRaceState(writer_pb2.GetRaceStateRequest(race_id="nope"), timeout=10)
    assert not response.found
    assert list(response.state.buckets) == [] and list(response.state.odds) == []


async def test_state_has_latest_poll_per_bucket_and_last_odds(
    stubs: Stubs, db: Database, maintainer: PartitionMaintainer
) -> None:
    race = new_race(runners=3)
    p1 = poll(race, minutes_before(START, 62), index=0)  # bucket 60
    p2 = poll(race, minutes_before(START, 57), index=1, previous=p1)  # bucket 55
    p3 = poll(race, minutes_before(START, 56), index=2, previous=p1, odds_rows="changed")  # bucket 55 again
    p3.odds.add(
        race_id=race.race_id, entrant_id=race.entrant_id(2), type="pool_place"
    ).event_timestamp.CopyFrom(p3.polled_at)  # the price disappeared: a stored null
    for update in (p1, p2, p3):
        assert (await write(db, maintainer, update)).written
    response = await stubs.writer.GetRaceState(
        writer_pb2.GetRaceStateRequest(race_id=race.race_id), timeout=10
    )
    assert response.found
    state = response.state
    assert state.status == "open" and state.start_time.ToMilliseconds() == to_epoch_ms(START)
    latest_ids = dict(
        await fetch(
            db,
            "SELECT entrant_id || ':' || time_interval, max(id) FROM money_flow_history "
            "WHERE race_id = %s GROUP BY 1",
            race.race_id,
        )
    )
    got = {(b.entrant_id, b.time_interval): b for b in state.buckets}
    assert set(got) == {(race.entrant_id(n), b) for n in (1, 2, 3) for b in (60, 55)}
    for n in (1, 2, 3):
        eid = race.entrant_id(n)
        b55 = got[(eid, 55)]
        assert b55.polled_at.ToMilliseconds() == to_epoch_ms(minutes_before(START, 56))
        assert b55.win_pool_amount == next(r.win_pool_amount for r in p3.money_flow if r.entrant_id == eid)
        assert b55.row_id == latest_ids[f"{eid}:55"]
        assert got[(eid, 60)].polled_at.ToMilliseconds() == to_epoch_ms(minutes_before(START, 62))
        # The row's increments and win prices: the cell the next column's moves compare with.
        row = next(r for r in p3.money_flow if r.entrant_id == eid)
        assert (b55.incremental_win_amount, b55.incremental_place_amount) == (
            row.incremental_win_amount,
            row.incremental_place_amount,
        )
        assert (b55.fixed_win_odds, b55.pool_win_odds) == (row.fixed_win_odds, row.pool_win_odds)
    # A price the row does not have stays absent (a stored null).
    async with db.write_connection() as conn:
        await conn.execute(
            "UPDATE money_flow_history SET pool_win_odds = NULL WHERE id = %s",
            (latest_ids[f"{race.entrant_id(1)}:55"],),
        )
    again = await stubs.writer.GetRaceState(writer_pb2.GetRaceStateRequest(race_id=race.race_id), timeout=10)
    b55 = next(b for b in again.state.buckets if (b.entrant_id, b.time_interval) == (race.entrant_id(1), 55))
    assert not b55.HasField("pool_win_odds") and b55.HasField("fixed_win_odds")
    odds = {(o.entrant_id, o.type): (o.odds if o.HasField("odds") else None) for o in state.odds}
    assert len(odds) == 12
    assert odds[(race.entrant_id(2), "pool_place")] is None
    expected_fixed = next(e.fixed_win_odds for e in p3.entrants if e.entrant_id == race.entrant_id(1))
    assert odds[(race.entrant_id(1), "fixed_win")] == expected_fixed
    assert state.HasField("pools") and state.pools.win_pool_total == p3.pools.win_pool_total
    assert not state.HasField("result_status")


def _meeting(meeting_id: str, *races: race_pb2.Race) -> writer_pb2.MeetingWithRaces:
    item = writer_pb2.MeetingWithRaces(
        meeting=race_pb2.Meeting(
            meeting_id=meeting_id, meeting_name="List Park", date="2025-07-17", country="NZ", category="H"
        )
    )
    item.races.extend(races)
    return item


def _race(
    race_id: str, number: int, status: str, start: datetime, protest: bool | None = None
) -> race_pb2.Race:
    race = race_pb2.Race(
        race_id=race_id,
        race_number=number,
        name=f"List Race {number}",
        status=status,
        race_date_nz="2025-07-17",
        start_time=timestamp_from_ms(to_epoch_ms(start)),
    )
    if protest is not None:
        race.protest = protest
    return race


async def test_upsert_meetings_never_moves_a_status_backwards(
    stubs: Stubs, db: Database, maintainer: PartitionMaintainer
) -> None:
    polled = new_race(meeting_id="list-m1", race_number=1)
    await write(db, maintainer, poll(polled, minutes_before(START, -10), status="final", with_results=True))
    request = writer_pb2.UpsertMeetingsRequest(
        meetings=[
            _meeting(
                "list-m1",
                _race(polled.race_id, 1, "open", START),  # final stays final
                _race("list-r2", 2, "open", START + timedelta(minutes=30), protest=True),
                _race("list-r3", 3, "closed", START + timedelta(minutes=60)),
            )
        ]
    )
    response = await stubs.writer.UpsertMeetings(request, timeout=10)
    assert response.meetings_upserted == 1 and response.races_upserted == 3
    statuses = dict(await fetch(db, "SELECT race_id, status FROM races WHERE meeting_id = 'list-m1'"))
    assert statuses == {polled.race_id: "final", "list-r2": "open", "list-r3": "closed"}
    # Entrants and history of the polled race are untouched.
    assert await scalar(db, "SELECT count(*) FROM entrants WHERE race_id = %s", polled.race_id) == 16
    # Forward moves apply, backward ones do not; abandoned applies from a non-terminal status.
    later = writer_pb2.UpsertMeetingsRequest(
        meetings=[
            _meeting(
                "list-m1",
                _race("list-r2", 2, "abandoned", START + timedelta(minutes=30)),
                _race("list-r3", 3, "open", START + timedelta(minutes=75)),
            )
        ]
    )
    response = await stubs.writer.UpsertMeetings(later, timeout=10)
    assert response.races_upserted == 2
    rows = await fetch(
        db,
        "SELECT race_id, status, start_time, protest FROM races WHERE meeting_id = 'list-m1' "
        "ORDER BY race_number",
    )
    assert rows[1:] == [
        ("list-r2", "abandoned", START + timedelta(minutes=30), True),  # protest absent: kept
        ("list-r3", "closed", START + timedelta(minutes=75), False),  # start time moved, status not back
    ]
    assert await scalar(db, "SELECT status FROM meetings WHERE meeting_id = 'list-m1'") == "active"
    again = await stubs.writer.UpsertMeetings(later, timeout=10)
    assert (again.meetings_upserted, again.races_upserted) == (0, 0)  # nothing changed, nothing rewritten


async def test_upsert_meetings_rejects_bad_items(stubs: Stubs) -> None:
    request = writer_pb2.UpsertMeetingsRequest(meetings=[_meeting("bad", _race("r", 1, "running", START))])
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.writer.UpsertMeetings(request, timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (failure.value.details() or "").startswith("meetings[0]: race.status")


async def test_schedulable_races_window_and_statuses(stubs: Stubs) -> None:
    now = datetime(2025, 7, 17, 1, 0, tzinfo=UTC)
    races = [
        _race("s-early", 1, "closed", now - timedelta(minutes=121)),  # beyond POST_START_MAX
        _race("s-post", 2, "interim", now - timedelta(minutes=119)),
        _race("s-final", 3, "final", now - timedelta(minutes=5)),
        _race("s-now", 4, "open", now + timedelta(minutes=1)),
        _race("s-abandoned", 5, "abandoned", now + timedelta(minutes=10)),
        _race("s-edge", 6, "unknown", now + timedelta(minutes=90)),
        _race("s-late", 7, "open", now + timedelta(minutes=91)),
    ]
    await stubs.writer.UpsertMeetings(
        writer_pb2.UpsertMeetingsRequest(meetings=[_meeting("sched", *races)]), timeout=10
    )
    request = writer_pb2.ListSchedulableRacesRequest(
        lookahead_minutes=90, post_start_max_minutes=120, now=timestamp_from_ms(to_epoch_ms(now))
    )
    response = await stubs.writer.ListSchedulableRaces(request, timeout=10)
    assert [(r.race_id, r.status) for r in response.races] == [
        ("s-post", "interim"),
        ("s-now", "open"),
        ("s-edge", "unknown"),
    ]
    assert response.races[1].meeting_name == "List Park"
    assert response.races[1].start_time_ms == to_epoch_ms(now + timedelta(minutes=1))
    # Zero look-ahead (the evening backfill): started races only.
    request.lookahead_minutes = 0
    started = await stubs.writer.ListSchedulableRaces(request, timeout=10)
    assert [r.race_id for r in started.races] == ["s-post"]


async def test_job_runs_are_recorded_and_read_back(stubs: Stubs) -> None:
    assert not (
        await stubs.writer.GetJobRun(writer_pb2.GetJobRunRequest(job="baseline", run_key="2025-07-17"))
    ).found
    started = to_epoch_ms(datetime(2025, 7, 16, 18, 0, tzinfo=UTC))
    await stubs.writer.RecordJobRun(
        writer_pb2.RecordJobRunRequest(
            job="baseline", run_key="2025-07-17", status="running", started_at_ms=started
        )
    )
    await stubs.writer.RecordJobRun(
        writer_pb2.RecordJobRunRequest(
            job="baseline",
            run_key="2025-07-17",
            status="succeeded",
            started_at_ms=started,
            finished_at_ms=started + 4200,
            stats_json='{"meetings": 12}',
        )
    )
    run = await stubs.writer.GetJobRun(writer_pb2.GetJobRunRequest(job="baseline", run_key="2025-07-17"))
    assert (run.found, run.status, run.started_at_ms, run.finished_at_ms) == (
        True,
        "succeeded",
        started,
        started + 4200,
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.writer.RecordJobRun(
            writer_pb2.RecordJobRunRequest(job="baseline", run_key="k", status="done", started_at_ms=started)
        )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
