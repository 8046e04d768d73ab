"""ListAlerts: stored race_alerts rows, newest first, with their race, meeting and runner, filtered
by poll time, race and alert id, through a real gRPC server on loopback.

The alerts are inserted with SQL (the write path that stores them is tested with the writer's
write tests); the races and runners they reference are written through the real write path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from services.common.nztime import to_epoch_ms
from services.common.proto.raceday.v1 import query_pb2
from services.common.timestamps import timestamp_from_ms
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from services.writer.queries.alert_feed import LIMIT_DEFAULT, LIMIT_MAX
from services.writer.synthetic import SyntheticRace
from tests.writer.builder import START, ensure, minutes_before, new_race, poll, write
from tests.writer.conftest import Stubs

INSERT_SQL = """
INSERT INTO race_alerts (race_id, entrant_id, kind, time_interval, previous_interval, value, polled_at)
VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING alert_id
"""


async def insert_alert(
    db: Database, race: SyntheticRace, runner: int, kind: str, interval: int, value: float, at: datetime
) -> int:
    """One race_alerts row; returns its alert_id."""
    async with db.read_connection() as conn:
        cur = await conn.execute(
            INSERT_SQL, (race.race_id, race.entrant_id(runner), kind, interval, interval + 5, value, at)
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def seeded(
    db: Database, maintainer: PartitionMaintainer
) -> tuple[SyntheticRace, SyntheticRace, list[int]]:
    """Two races of one meeting, written once each, and five alerts: three in race one (one of them
    polled the day before), two in race two."""
    await ensure(maintainer, START.date(), (START - timedelta(days=1)).date())
    one = new_race(runners=8, meeting_name="Ellerslie")
    two = new_race(runners=6, meeting_id=one.meeting_id, meeting_name="Ellerslie", race_number=2)
    for race in (one, two):
        await write(db, maintainer, poll(race, minutes_before(START, 10)))
    ids = [
        await insert_alert(db, one, 3, "win_money", 10, 7.5, START - timedelta(days=1)),
        await insert_alert(db, one, 7, "win_price", 5, 12.25, minutes_before(START, 6)),
        await insert_alert(db, two, 1, "place_money", 4, 55.0, minutes_before(START, 4)),
        await insert_alert(db, one, 7, "win_money", 4, 5.0, minutes_before(START, 4)),
        await insert_alert(db, two, 2, "win_money", 3, 22.0, minutes_before(START, 3)),
    ]
    return one, two, ids


def ts(instant: datetime) -> Any:
    return timestamp_from_ms(to_epoch_ms(instant))


async def test_alerts_newest_first_with_their_race_meeting_and_runner(
    stubs: Stubs, db: Database, maintainer: PartitionMaintainer
) -> None:
    one, two, ids = await seeded(db, maintainer)
    response = await stubs.query.ListAlerts(query_pb2.ListAlertsRequest(), timeout=10)
    assert [alert.alert_id for alert in response.alerts] == sorted(ids, reverse=True)
    newest = response.alerts[0]
    assert (newest.race_id, newest.race_number, newest.meeting_id, newest.meeting_name) == (
        two.race_id,
        2,
        one.meeting_id,
        "Ellerslie",
    )
    assert newest.race_name  # the race's stored name
    assert (newest.entrant_id, newest.runner_number) == (two.entrant_id(2), 2)
    assert newest.runner_name == "Runner 2"
    assert (newest.kind, newest.time_interval, newest.previous_interval, newest.value) == (
        "win_money",
        3,
        8,
        22.0,
    )
    assert newest.polled_at.ToDatetime(UTC) == minutes_before(START, 3)
    assert newest.created_at.seconds > 0


async def test_alert_filters_and_paging(stubs: Stubs, db: Database, maintainer: PartitionMaintainer) -> None:
    one, _, ids = await seeded(db, maintainer)
    query = stubs.query

    async def listed(**fields: Any) -> list[int]:
        response = await query.ListAlerts(query_pb2.ListAlertsRequest(**fields), timeout=10)
        return [alert.alert_id for alert in response.alerts]

    today = ts(START - timedelta(hours=2))
    assert await listed(since=today) == sorted(ids[1:], reverse=True)  # yesterday's alert is out
    # `since` is inclusive: an alert polled exactly then is in.
    assert await listed(since=ts(minutes_before(START, 4))) == [ids[4], ids[3], ids[2]]
    assert await listed(race_id=one.race_id) == [ids[3], ids[1], ids[0]]
    assert await listed(race_id=one.race_id, since=today) == [ids[3], ids[1]]
    assert await listed(race_id="no-such-race") == []
    # Paging newest first: limit, then cursor = the last alert of the page.
    first = await listed(since=today, limit=2)
    assert first == [ids[4], ids[3]]
    assert await listed(since=today, limit=2, cursor=first[-1]) == [ids[2], ids[1]]
    assert await listed(since=today, limit=2, cursor=ids[1]) == []
    # The live push: what was stored after an alert already seen (with paging, newest first).
    assert await listed(after_id=ids[2]) == [ids[4], ids[3]]
    assert await listed(after_id=ids[0], cursor=ids[3]) == [ids[2], ids[1]]
    assert await listed(after_id=ids[4]) == []
    assert await listed(limit=1) == [ids[4]]


async def test_limit_is_clamped_and_empty_race_id_refused(stubs: Stubs, db: Database) -> None:
    # No alerts at all: an empty answer, whatever the limit.
    for limit in (0, -3, LIMIT_MAX + 1):
        response = await stubs.query.ListAlerts(query_pb2.ListAlertsRequest(limit=limit), timeout=10)
        assert list(response.alerts) == []
    assert (LIMIT_DEFAULT, LIMIT_MAX) == (100, 500)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.ListAlerts(query_pb2.ListAlertsRequest(race_id=""), timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_limit_bounds_the_page(stubs: Stubs, db: Database, maintainer: PartitionMaintainer) -> None:
    await ensure(maintainer, START.date())
    race = new_race(runners=4)
    await write(db, maintainer, poll(race, minutes_before(START, 10)))
    at = minutes_before(START, 5)
    for interval in range(60, -61, -1):
        await insert_alert(db, race, 1 + interval % 4, "win_money", interval, 6.0, at)
    request = query_pb2.ListAlertsRequest(race_id=race.race_id)
    assert len((await stubs.query.ListAlerts(request, timeout=10)).alerts) == LIMIT_DEFAULT
    request.limit = 1000
    assert len((await stubs.query.ListAlerts(request, timeout=10)).alerts) == 121
