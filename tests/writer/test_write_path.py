"""The write path: exact rows, idempotence, concurrency, atomicity and per-source column sets."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from prometheus_client import REGISTRY

from services.common.proto.raceday.v1 import writer_pb2
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from tests.writer.builder import (
    START,
    ensure,
    fetch,
    minutes_before,
    new_race,
    poll,
    scalar,
    table_counts,
    write,
)
from tests.writer.conftest import Stubs

DAY = START.date()  # 2025-07-17 in UTC and in NZ (12:50 NZST start)


@pytest.fixture(autouse=True)
async def _partitions(maintainer: PartitionMaintainer) -> None:
    await ensure(maintainer, DAY)


async def test_pooled_sessions_run_in_utc_with_timeouts(db: Database) -> None:
    async with db.write_connection() as conn:
        cur = await conn.execute(
            "SELECT current_setting('TimeZone'), current_setting('idle_in_transaction_session_timeout'), "
            "current_setting('statement_timeout'), current_setting('application_name')"
        )
        assert await cur.fetchone() == ("UTC", "30s", "5s", "raceday-writer")
        await conn.rollback()


async def test_first_poll_writes_every_row_exactly(db: Database, maintainer: PartitionMaintainer) -> None:
    race = new_race()
    at = minutes_before(START, 62)
    update = poll(race, at)
    rows_before = REGISTRY.get_sample_value("raceday_rows_written_total", {"table": "odds_history"}) or 0.0
    result = await write(db, maintainer, update)
    rows_after = REGISTRY.get_sample_value("raceday_rows_written_total", {"table": "odds_history"})
    assert rows_after == rows_before + 64
    assert (result.written, result.entrants_written, result.money_flow_rows, result.odds_rows) == (
        True,
        16,
        16,
        64,
    )
    assert result.pools_written and not result.results_written
    assert await table_counts(db, race.race_id) == {
        "races": 1,
        "entrants": 16,
        "money_flow_history": 16,
        "odds_history": 64,
        "race_pools": 1,
        "race_results": 0,
        "race_polls": 1,
    }
    e1 = update.entrants[0]
    mf1 = update.money_flow[0]
    row = (
        await fetch(
            db,
            """SELECT runner_number, name, fixed_win_odds, hold_percentage, win_pool_amount,
                      place_pool_amount, money_flow_at, is_scratched, runner_change
               FROM entrants WHERE entrant_id = %s""",
            e1.entrant_id,
        )
    )[0]
    assert row == (
        1,
        "Runner 1",
        Decimal(str(e1.fixed_win_odds)),
        Decimal(str(e1.hold_percentage)),
        e1.win_pool_amount,
        e1.place_pool_amount,
        at,
        False,
        {"gear": None},
    )
    history = (
        await fetch(
            db,
            """SELECT event_timestamp, advertised_start, time_to_start, time_interval, interval_type,
                      win_pool_amount, incremental_win_amount, is_baseline, fixed_win_odds, win_pool_total
               FROM money_flow_history WHERE entrant_id = %s""",
            e1.entrant_id,
        )
    )[0]
    assert history == (
        at,
        START,
        62,
        60,
        "5m",
        mf1.win_pool_amount,
        mf1.win_pool_amount,
        True,
        Decimal(str(mf1.fixed_win_odds)),
        mf1.win_pool_total,
    )
    pools = (
        await fetch(
            db,
            "SELECT win_pool_total, total_race_pool, last_updated FROM race_pools WHERE race_id = %s",
            race.race_id,
        )
    )[0]
    assert pools == (update.pools.win_pool_total, update.pools.total_race_pool, at)
    meeting = (
        await fetch(
            db,
            "SELECT meeting_name, date, category, race_type, status FROM meetings WHERE meeting_id = %s",
            race.meeting_id,
        )
    )[0]
    assert meeting == ("Test Park", DAY, "T", "thoroughbred", "active")


async def test_ids_with_escapes_and_absent_optionals_are_stored_exactly(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    # Ids with tab, backslash, quote, CR and LF and non-ASCII text; absent optionals are NULLs.
    at = minutes_before(START, 4)
    race = new_race()
    race.race_id += '\t\\n"q"\r\nRāwhiti'
    update = poll(race, at)
    update.money_flow[0].ClearField("fixed_win_odds")
    update.money_flow[1].ClearField("win_pool_percentage")
    update.money_flow[2].source_generated_at.CopyFrom(update.polled_at)
    update.odds[3].ClearField("odds")
    result = await write(db, maintainer, update)
    assert (result.money_flow_rows, result.odds_rows) == (16, 64)
    money_flow = await fetch(
        db,
        """SELECT race_id, entrant_id, event_timestamp, source_generated_at, advertised_start,
                  time_to_start, time_interval, interval_type, hold_percentage, bet_percentage,
                  win_pool_total, place_pool_total, win_pool_amount, place_pool_amount,
                  total_pool_amount, win_pool_percentage, place_pool_percentage,
                  incremental_win_amount, incremental_place_amount, is_baseline, fixed_win_odds,
                  fixed_place_odds, pool_win_odds, pool_place_odds
           FROM money_flow_history WHERE race_id = %s ORDER BY id""",
        race.race_id,
    )
    odds = await fetch(
        db,
        """SELECT race_id, entrant_id, type, odds, event_timestamp FROM odds_history
           WHERE race_id = %s ORDER BY id""",
        race.race_id,
    )
    assert {row[0] for row in money_flow + odds} == {race.race_id}
    # In the update's order, every value as sent.
    assert [row[1] for row in money_flow] == [row.entrant_id for row in update.money_flow]
    for stored, sent in zip(money_flow, update.money_flow, strict=True):
        assert stored[2:8] == (
            at,
            at if sent.HasField("source_generated_at") else None,
            START,
            sent.time_to_start,
            sent.time_interval,
            sent.interval_type,
        )
        assert stored[10:15] == (
            sent.win_pool_total,
            sent.place_pool_total,
            sent.win_pool_amount,
            sent.place_pool_amount,
            sent.total_pool_amount,
        )
        assert stored[15] == (
            Decimal(str(sent.win_pool_percentage)).quantize(Decimal("0.01"))
            if sent.HasField("win_pool_percentage")
            else None
        )
        assert stored[20] == (
            Decimal(str(sent.fixed_win_odds)).quantize(Decimal("0.01"))
            if sent.HasField("fixed_win_odds")
            else None
        )
    assert (money_flow[0][20], money_flow[1][15], money_flow[2][3]) == (None, None, at)
    assert [(row[1], row[2]) for row in odds] == [(o.entrant_id, o.type) for o in update.odds]
    assert sum(row[3] is None for row in odds) == 1


async def test_the_same_update_twice_writes_nothing_the_second_time(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    race = new_race()
    update = poll(race, minutes_before(START, 30))
    assert (await write(db, maintainer, update)).written
    before = await table_counts(db, race.race_id)
    stamps = await fetch(
        db, "SELECT entrant_id, updated_at FROM entrants WHERE race_id = %s ORDER BY 1", race.race_id
    )
    again = await write(db, maintainer, update)
    assert not again.written
    assert (again.entrants_written, again.money_flow_rows, again.odds_rows) == (0, 0, 0)
    assert await table_counts(db, race.race_id) == before
    assert (
        await fetch(
            db, "SELECT entrant_id, updated_at FROM entrants WHERE race_id = %s ORDER BY 1", race.race_id
        )
        == stamps
    )


async def test_unchanged_entrants_are_not_rewritten(db: Database, maintainer: PartitionMaintainer) -> None:
    race = new_race()
    first = poll(race, minutes_before(START, 30), odds_rows="all")
    await write(db, maintainer, first)
    stamps = dict(
        await fetch(db, "SELECT entrant_id, updated_at FROM entrants WHERE race_id = %s", race.race_id)
    )
    # A later poll of the race after it closed: same runners and prices, no money flow.
    closed = poll(race, minutes_before(START, -1), status="closed", previous=first, odds_rows="changed")
    result = await write(db, maintainer, closed)
    assert result.written and result.entrants_written == 0 and result.money_flow_rows == 0
    assert result.odds_rows == 0
    assert (
        dict(await fetch(db, "SELECT entrant_id, updated_at FROM entrants WHERE race_id = %s", race.race_id))
        == stamps
    )
    assert await scalar(db, "SELECT status FROM races WHERE race_id = %s", race.race_id) == "closed"


async def test_five_concurrent_callers_for_five_races(stubs: Stubs, db: Database) -> None:
    races = [new_race(meeting_id="meeting-shared", race_number=n) for n in range(1, 6)]
    updates = [poll(r, minutes_before(START, 20)) for r in races]
    responses = await asyncio.gather(
        *(
            stubs.writer.WriteRaceUpdate(writer_pb2.WriteRaceUpdateRequest(update=u), timeout=30)
            for u in updates
        )
    )
    assert all(r.written and r.money_flow_rows == 16 and r.odds_rows == 64 for r in responses)
    for race in races:
        counts = await table_counts(db, race.race_id)
        assert (
            counts["entrants"],
            counts["money_flow_history"],
            counts["odds_history"],
            counts["race_polls"],
        ) == (16, 16, 64, 1)
    assert await scalar(db, "SELECT count(*) FROM races WHERE meeting_id = 'meeting-shared'") == 5
    assert await scalar(db, "SELECT count(*) FROM meetings WHERE meeting_id = 'meeting-shared'") == 1


async def test_five_concurrent_deliveries_of_one_update_write_once(stubs: Stubs, db: Database) -> None:
    race = new_race()
    update = poll(race, minutes_before(START, 10))
    responses = await asyncio.gather(
        *(
            stubs.writer.WriteRaceUpdate(writer_pb2.WriteRaceUpdateRequest(update=update), timeout=30)
            for _ in range(5)
        )
    )
    assert sorted(r.written for r in responses) == [False, False, False, False, True]
    counts = await table_counts(db, race.race_id)
    assert (counts["money_flow_history"], counts["odds_history"], counts["race_polls"]) == (16, 64, 1)


async def test_a_write_failing_midway_leaves_no_rows(stubs: Stubs, db: Database) -> None:
    race = new_race()
    update = poll(race, minutes_before(START, 15))
    update.pools.total_race_pool += 1  # violates race_pools_total_check at step 7, after the COPYs
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.writer.WriteRaceUpdate(writer_pb2.WriteRaceUpdateRequest(update=update), timeout=30)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "race_pools_total_check" in (failure.value.details() or "")
    assert set((await table_counts(db, race.race_id)).values()) == {0}
    assert await scalar(db, "SELECT count(*) FROM meetings WHERE meeting_id = %s", race.meeting_id) == 0
    # The same update, corrected, then writes normally (nothing half-written blocks it).
    update.pools.total_race_pool -= 1
    response = await stubs.writer.WriteRaceUpdate(
        writer_pb2.WriteRaceUpdateRequest(update=update), timeout=30
    )
    assert response.written and response.money_flow_rows == 16


async def test_invalid_updates_are_rejected_before_touching_the_database(stubs: Stubs) -> None:
    race = new_race()
    update = poll(race, minutes_before(START, 15))
    update.ClearField("polled_at")
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.writer.WriteRaceUpdate(writer_pb2.WriteRaceUpdateRequest(update=update), timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details() == "polled_at is required"
    bad = poll(race, minutes_before(START, 15))
    bad.odds[0].type = "fixed_show"
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.writer.WriteRaceUpdate(writer_pb2.WriteRaceUpdateRequest(update=bad), timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_absent_fields_and_polls_without_money_flow_keep_stored_values(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    race = new_race()
    first = poll(race, minutes_before(START, 5))
    await write(db, maintainer, first)
    entrant_id = first.entrants[2].entrant_id
    stored = await fetch(
        db,
        "SELECT jockey, hold_percentage, win_pool_amount, money_flow_at FROM entrants WHERE entrant_id = %s",
        entrant_id,
    )
    later = poll(race, minutes_before(START, -2), status="closed", previous=first, odds_rows="none")
    later.entrants[2].ClearField("jockey")  # absent from the payload
    assert not later.entrants[2].has_money_flow
    await write(db, maintainer, later)
    assert (
        await fetch(
            db,
            "SELECT jockey, hold_percentage, win_pool_amount, money_flow_at FROM entrants "
            "WHERE entrant_id = %s",
            entrant_id,
        )
        == stored
    )


async def test_a_poll_scratching_a_runner_clears_its_current_odds(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    race = new_race()
    first = poll(race, minutes_before(START, 8))
    await write(db, maintainer, first)
    scratched = new_race()
    scratched.race_id, scratched.meeting_id, scratched.scratched = (
        race.race_id,
        race.meeting_id,
        frozenset({3}),
    )
    second = poll(scratched, minutes_before(START, 7), previous=first, index=1)
    await write(db, maintainer, second)
    row = (
        await fetch(
            db,
            "SELECT is_scratched, fixed_win_odds, pool_win_odds, win_pool_amount FROM entrants "
            "WHERE entrant_id = %s",
            first.entrants[2].entrant_id,
        )
    )[0]
    assert row == (True, None, None, first.entrants[2].win_pool_amount)


async def test_baseline_writes_entities_only_and_never_overwrites_live_data(
    stubs: Stubs, db: Database, maintainer: PartitionMaintainer
) -> None:
    race = new_race()
    live = poll(race, minutes_before(START, 5), with_results=True)
    await write(db, maintainer, live)
    baseline = poll(race, minutes_before(START, 4), index=3, with_results=True)
    baseline.pools.win_pool_total += 100
    baseline.pools.total_race_pool += 100
    baseline.results.photo_finish = True
    response = await stubs.writer.WriteRaceUpdate(
        writer_pb2.WriteRaceUpdateRequest(update=baseline, baseline=True), timeout=30
    )
    assert response.written and response.money_flow_rows == 0 and response.odds_rows == 0
    assert not response.pools_written and not response.results_written
    counts = await table_counts(db, race.race_id)
    assert (counts["money_flow_history"], counts["odds_history"]) == (16, 64)
    entrant = live.entrants[0]
    assert await fetch(
        db, "SELECT win_pool_amount, money_flow_at FROM entrants WHERE entrant_id = %s", entrant.entrant_id
    ) == [(entrant.win_pool_amount, minutes_before(START, 5))]
    assert (
        await scalar(db, "SELECT win_pool_total FROM race_pools WHERE race_id = %s", race.race_id)
        == live.pools.win_pool_total
    )
    assert await scalar(db, "SELECT photo_finish FROM race_results WHERE race_id = %s", race.race_id) is False
    # A baseline of a race never polled fills its pools in.
    fresh = new_race()
    response = await stubs.writer.WriteRaceUpdate(
        writer_pb2.WriteRaceUpdateRequest(update=poll(fresh, minutes_before(START, 300)), baseline=True),
        timeout=30,
    )
    assert response.pools_written and response.entrants_written == 16
    counts = await table_counts(db, fresh.race_id)
    assert (counts["entrants"], counts["money_flow_history"], counts["race_pools"]) == (16, 0, 1)
    assert (
        await scalar(
            db,
            "SELECT count(*) FROM entrants WHERE race_id = %s AND money_flow_at IS NOT NULL",
            fresh.race_id,
        )
        == 0
    )


async def test_results_flags_are_sticky_and_meeting_status_follows_races(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    race = new_race()
    interim = poll(race, minutes_before(START, -3), status="interim", with_results=True)
    interim.results.photo_finish = True
    await write(db, maintainer, interim)
    assert await scalar(db, "SELECT status FROM meetings WHERE meeting_id = %s", race.meeting_id) == "active"
    final = poll(race, minutes_before(START, -6), status="final", with_results=True)
    assert not final.results.photo_finish
    result = await write(db, maintainer, final)
    assert result.results_written
    row = (
        await fetch(
            db,
            "SELECT result_status, photo_finish, result_time, results_data -> 0 ->> 'name' "
            "FROM race_results WHERE race_id = %s",
            race.race_id,
        )
    )[0]
    assert row == ("final", True, minutes_before(START, -6), "Runner 1")
    assert (
        await scalar(db, "SELECT status FROM meetings WHERE meeting_id = %s", race.meeting_id) == "completed"
    )
    other = new_race(meeting_id=race.meeting_id, race_number=2)
    await write(db, maintainer, poll(other, minutes_before(START, 1)))
    assert await scalar(db, "SELECT status FROM meetings WHERE meeting_id = %s", race.meeting_id) == "active"
    await write(db, maintainer, poll(other, minutes_before(START, 0), status="abandoned", odds_rows="none"))
    assert (
        await scalar(db, "SELECT status FROM meetings WHERE meeting_id = %s", race.meeting_id) == "completed"
    )


async def test_deleting_a_meeting_cascades_to_the_history(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    race = new_race()
    await write(db, maintainer, poll(race, minutes_before(START, 12), with_results=True))
    async with db.write_connection() as conn:
        await conn.execute("DELETE FROM meetings WHERE meeting_id = %s", (race.meeting_id,))
        await conn.commit()
    assert set((await table_counts(db, race.race_id)).values()) == {0}


async def test_timestamps_are_stored_exactly(db: Database, maintainer: PartitionMaintainer) -> None:
    race = new_race()
    at = datetime(2025, 7, 17, 0, 5, 9, 120999, tzinfo=UTC)
    update = poll(race, at)
    update.polled_at.nanos = 120_999_999  # sub-microsecond nanos are truncated, never rounded up
    for row in update.money_flow:
        row.event_timestamp.CopyFrom(update.polled_at)
    await write(db, maintainer, update)
    assert (
        await scalar(
            db, "SELECT max(event_timestamp) FROM money_flow_history WHERE race_id = %s", race.race_id
        )
        == at
    )
    assert await scalar(db, "SELECT polled_at FROM race_polls WHERE race_id = %s", race.race_id) == at
    assert json.loads(
        await scalar(db, "SELECT video_channels::text FROM races WHERE race_id = %s", race.race_id)
    ) == ["Trackside 1"]
    assert at - timedelta(microseconds=1) < at
