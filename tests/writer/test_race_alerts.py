"""Alerts (issue 14): the moves of a written poll at or above the indicator threshold go to
race_alerts in the poll's transaction, once per (race, runner, kind, bucket); the count is
announced with the change and counted per kind."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

import raceday_core
from services.common.proto.raceday.v1 import race_pb2, writer_pb2
from services.common.timestamps import ts_to_datetime
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from tests.writer.builder import START, ensure, fetch, minutes_before, new_race, poll, scalar, write
from tests.writer.test_changes import writer_server


@pytest.fixture(autouse=True)
async def _partitions(maintainer: PartitionMaintainer) -> None:
    await ensure(maintainer, START.date())


def _created_per_kind() -> dict[str, float]:
    return {
        kind: REGISTRY.get_sample_value("raceday_alerts_created_total", {"kind": kind}) or 0.0
        for kind in raceday_core.MOVE_KINDS
    }


def _alerting(update: race_pb2.RaceUpdate) -> list[race_pb2.Move]:
    return [move for move in update.moves if move.value >= raceday_core.ALERT_THRESHOLD]


async def _stored(db: Database, race_id: str) -> list[tuple[object, ...]]:
    return await fetch(
        db,
        """SELECT entrant_id, kind, time_interval, previous_interval, value, polled_at
           FROM race_alerts WHERE race_id = %s ORDER BY alert_id""",
        race_id,
    )


async def test_a_poll_stores_its_alerts_once(db: Database, maintainer: PartitionMaintainer) -> None:
    race = new_race()
    first = poll(race, minutes_before(START, 62), index=0)  # column 60: no moves
    second = poll(race, minutes_before(START, 57), index=1, previous=first, with_moves=True)  # 55 vs 60
    alerting = _alerting(second)
    # The synthetic race's money shifts enough to alert, and smaller (and negative) moves exist too.
    assert alerting and len(alerting) < len(second.moves)
    assert any(move.value < 0 for move in second.moves)

    counted = _created_per_kind()
    assert (await write(db, maintainer, first)).alerts == 0
    result = await write(db, maintainer, second)
    assert result.alerts == len(alerting)
    assert sorted(result.alert_kinds) == sorted(move.kind for move in alerting)
    after = _created_per_kind()
    for kind in raceday_core.MOVE_KINDS:
        assert after[kind] - counted[kind] == sum(move.kind == kind for move in alerting), kind
    stored = await _stored(db, race.race_id)
    polled_at = ts_to_datetime(second.polled_at)
    assert stored == [
        (move.entrant_id, move.kind, 55, 60, move.value, polled_at) for move in alerting
    ]  # the doubles as computed, to the last bit

    # Delivered again: the poll is refused as a duplicate and creates nothing.
    again = await write(db, maintainer, second)
    assert not again.written and again.alerts == 0
    assert await _stored(db, race.race_id) == stored
    assert _created_per_kind() == after


async def test_a_later_poll_of_the_bucket_keeps_the_first_alert(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    race = new_race()
    first = poll(race, minutes_before(START, 62), index=0)
    second = poll(race, minutes_before(START, 57), index=1, previous=first, with_moves=True)
    await write(db, maintainer, first)
    await write(db, maintainer, second)
    kept = await _stored(db, race.race_id)
    # A later poll in the same bucket (55) with the same moves, larger, and one new one.
    later = poll(race, minutes_before(START, 56), index=2, previous=second)
    alerted = {(m.entrant_id, m.kind) for m in _alerting(second)}
    quiet = next(m for m in second.moves if (m.entrant_id, m.kind) not in alerted)
    for move in [*_alerting(second), quiet]:
        later.moves.add(
            entrant_id=move.entrant_id,
            kind=move.kind,
            time_interval=55,
            previous_interval=60,
            value=max(move.value, 0) + 40,
        )
    result = await write(db, maintainer, later)
    assert result.written and result.alert_kinds == [quiet.kind]
    stored = await _stored(db, race.race_id)
    assert stored[: len(kept)] == kept
    assert stored[len(kept) :] == [
        (quiet.entrant_id, quiet.kind, 55, 60, max(quiet.value, 0) + 40, ts_to_datetime(later.polled_at))
    ]


async def test_a_baseline_stores_no_alert(db: Database, maintainer: PartitionMaintainer) -> None:
    race = new_race()
    first = poll(race, minutes_before(START, 62), index=0)
    second = poll(race, minutes_before(START, 57), index=1, previous=first, with_moves=True)
    assert _alerting(second)
    result = await write(db, maintainer, second, baseline=True)
    assert result.written and result.alerts == 0
    assert await scalar(db, "SELECT count(*) FROM race_alerts WHERE race_id = %s", race.race_id) == 0


async def test_the_change_announces_the_alerts(
    migrated_database_url: str, db: Database, maintainer: PartitionMaintainer
) -> None:
    race = new_race()
    first = poll(race, minutes_before(START, 62), index=0)
    second = poll(race, minutes_before(START, 57), index=1, previous=first, with_moves=True)
    async with writer_server(migrated_database_url) as (stub, feed):
        stream = stub.WatchRaceChanges(writer_pb2.WatchRaceChangesRequest())
        await asyncio.wait_for(feed.listening.wait(), timeout=30)
        changes: list[writer_pb2.RaceChange] = []

        async def collect() -> None:
            async for change in stream:
                if change.race_id == race.race_id:
                    changes.append(change)
                    if len(changes) == 2:
                        return

        watcher = asyncio.create_task(collect())
        await asyncio.wait_for(feed.subscribed.wait(), timeout=30)
        await write(db, maintainer, first)
        await write(db, maintainer, second)
        await asyncio.wait_for(watcher, timeout=30)
        stream.cancel()
    assert [change.alerts for change in changes] == [0, len(_alerting(second))]
