"""NZ-racing-day partitions: names, offset-explicit bounds, routing at midnight and on DST days,
concurrent creation, leftovers, retention, and recovery of a missing partition during a write."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest

from services.common.nztime import nz_today
from services.writer.db import Database, connect
from services.writer.maintenance import PartitionMaintainer, next_run_at
from services.writer.partitions import (
    PartitionError,
    apply_retention,
    ensure_partitions,
    list_partitions,
    partition_bounds,
    partition_name,
)
from services.writer.settings import WriterSettings
from tests.writer.builder import ensure, fetch, new_race, poll, scalar, write

SETTINGS = WriterSettings()


@pytest.mark.parametrize(
    ("day", "lower", "upper"),
    [
        (date(2025, 7, 17), "2025-07-17 00:00:00+12", "2025-07-18 00:00:00+12"),
        (date(2025, 9, 28), "2025-09-28 00:00:00+12", "2025-09-29 00:00:00+13"),
        (date(2026, 4, 5), "2026-04-05 00:00:00+13", "2026-04-06 00:00:00+12"),
        (date(2025, 12, 1), "2025-12-01 00:00:00+13", "2025-12-02 00:00:00+13"),
    ],
)
def test_bounds_are_nz_midnights_with_explicit_offsets(day: date, lower: str, upper: str) -> None:
    assert partition_bounds(day) == (lower, upper)
    assert partition_name("money_flow_history", day) == f"money_flow_history_{day:%Y_%m_%d}"


# (instant, NZ date of its partition): just before and after NZ midnight, and both DST days.
ROUTING = [
    (datetime(2025, 7, 17, 11, 59, 59, 999000, tzinfo=UTC), date(2025, 7, 17)),  # 23:59:59.999 NZST
    (datetime(2025, 7, 17, 12, 0, 0, tzinfo=UTC), date(2025, 7, 18)),  # 00:00 NZST
    (datetime(2025, 9, 27, 11, 59, 59, tzinfo=UTC), date(2025, 9, 27)),  # 23:59:59 NZST
    (datetime(2025, 9, 27, 12, 0, 0, tzinfo=UTC), date(2025, 9, 28)),  # 00:00 NZST, DST starts at 02:00
    (datetime(2025, 9, 27, 14, 30, 0, tzinfo=UTC), date(2025, 9, 28)),  # 03:30 NZDT
    (datetime(2025, 9, 28, 10, 59, 59, tzinfo=UTC), date(2025, 9, 28)),  # 23:59:59 NZDT (23 h day)
    (datetime(2025, 9, 28, 11, 0, 0, tzinfo=UTC), date(2025, 9, 29)),  # 00:00 NZDT
    (datetime(2026, 4, 4, 10, 59, 59, tzinfo=UTC), date(2026, 4, 4)),  # 23:59:59 NZDT
    (datetime(2026, 4, 4, 11, 0, 0, tzinfo=UTC), date(2026, 4, 5)),  # 00:00 NZDT, DST ends at 03:00
    (datetime(2026, 4, 4, 14, 30, 0, tzinfo=UTC), date(2026, 4, 5)),  # 02:30 NZST (second time round)
    (datetime(2026, 4, 5, 11, 59, 59, tzinfo=UTC), date(2026, 4, 5)),  # 23:59:59 NZST (25 h day)
    (datetime(2026, 4, 5, 12, 0, 0, tzinfo=UTC), date(2026, 4, 6)),  # 00:00 NZST
]


async def test_rows_land_in_the_partition_of_their_nz_date(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    await ensure(maintainer, *sorted({day for _, day in ROUTING}))
    races = []
    for instant, day in ROUTING:
        race = new_race(start=instant + timedelta(minutes=30), runners=2)
        result = await write(db, maintainer, poll(race, instant))
        assert result.written and result.money_flow_rows == 2 and result.odds_rows == 8
        races.append((race.race_id, day))
    for race_id, day in races:
        for table in ("money_flow_history", "odds_history"):
            rows = await fetch(
                db,
                f"SELECT DISTINCT tableoid::regclass::text FROM {table} WHERE race_id = %s",
                race_id,
            )
            assert rows == [(f"{table}_{day:%Y_%m_%d}",)], (race_id, table)


async def test_bounds_do_not_depend_on_the_session_time_zone(migrated_database_url: str) -> None:
    conn = await psycopg.AsyncConnection.connect(migrated_database_url, autocommit=True)
    try:
        await conn.execute("SET TimeZone = 'America/New_York'")
        await ensure_partitions(conn, [date(2025, 9, 28)])
        infos = await list_partitions(conn)
    finally:
        await conn.close()
    assert {(i.name, i.lower, i.upper) for i in infos} == {
        (
            f"{table}_2025_09_28",
            datetime(2025, 9, 27, 12, 0, tzinfo=UTC),
            datetime(2025, 9, 28, 11, 0, tzinfo=UTC),
        )
        for table in ("money_flow_history", "odds_history")
    }


async def test_two_writers_creating_the_same_partitions_both_succeed(migrated_database_url: str) -> None:
    days = [date(2025, 7, 17), date(2025, 7, 18)]
    conns = [await connect(migrated_database_url, SETTINGS, lock_timeout_ms=3000) for _ in range(2)]
    try:
        reports = await asyncio.gather(*(ensure_partitions(c, days) for c in conns))
        created = sorted(name for r in reports for name in r.created)
        expected = sorted(partition_name(t, d) for t in ("money_flow_history", "odds_history") for d in days)
        assert created == expected  # each created exactly once
        assert sorted(reports[0].created + reports[0].existing) == expected
        assert sorted(reports[1].created + reports[1].existing) == expected
        again = await ensure_partitions(conns[0], days)
        assert again.created == []
        assert sorted(i.name for i in await list_partitions(conns[0])) == expected
    finally:
        for c in conns:
            await c.close()


async def test_leftovers_are_attached_and_suspicious_tables_refused(migrated_database_url: str) -> None:
    conn = await connect(migrated_database_url, SETTINGS)
    try:
        # An empty table left by an interrupted run: attached.
        await conn.execute(
            "CREATE TABLE money_flow_history_2025_07_20 "
            "(LIKE money_flow_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        report = await ensure_partitions(conn, [date(2025, 7, 20)], tables=("money_flow_history",))
        assert report.created == ["money_flow_history_2025_07_20"]
        # A detached table that holds rows: never guessed about.
        await conn.execute("CREATE TABLE odds_history_2025_07_21 (LIKE odds_history INCLUDING DEFAULTS)")
        await conn.execute(
            "INSERT INTO odds_history_2025_07_21 (race_id, entrant_id, type, odds, event_timestamp) "
            "VALUES ('r', 'e', 'fixed_win', 2.5, '2025-07-21 12:00:00+12')"
        )
        with pytest.raises(PartitionError, match="holds rows"):
            await ensure_partitions(conn, [date(2025, 7, 21)], tables=("odds_history",))
        # Attached with other bounds: an error naming it.
        await conn.execute("DROP TABLE odds_history_2025_07_21")
        await conn.execute(
            "CREATE TABLE odds_history_2025_07_22 PARTITION OF odds_history "
            "FOR VALUES FROM ('2025-07-22 00:00:00+00') TO ('2025-07-23 00:00:00+00')"
        )
        with pytest.raises(PartitionError, match="odds_history_2025_07_22 is attached with bounds"):
            await ensure_partitions(conn, [date(2025, 7, 22)], tables=("odds_history",))
    finally:
        await conn.close()


async def test_retention_removes_exactly_the_old_partitions(migrated_database_url: str) -> None:
    today = date(2026, 4, 20)
    days = [today - timedelta(days=n) for n in (32, 31, 30, 29, 0)] + [today + timedelta(days=1)]
    conn = await connect(migrated_database_url, SETTINGS)
    try:
        await ensure_partitions(conn, days)
        # A stale poll identity older than the cutoff goes too (its race cascades nothing else).
        await conn.execute(
            "INSERT INTO meetings (meeting_id, meeting_name, date, country, category) "
            "VALUES ('m-old', 'Old', '2026-03-01', 'NZ', 'T')"
        )
        await conn.execute(
            "INSERT INTO races (race_id, meeting_id, race_number, name, status, start_time, race_date_nz) "
            "VALUES ('r-old', 'm-old', 1, 'Old', 'final', '2026-03-01 13:00:00+13', '2026-03-01')"
        )
        await conn.execute(
            "INSERT INTO race_polls (race_id, polled_at, written_at) VALUES "
            "('r-old', '2026-03-01 12:00:00+13', '2026-03-01 12:00:00+13'), "
            "('r-old', '2026-04-19 12:00:00+12', '2026-04-19 12:00:00+12')"
        )
        # Alerts age with the series rows they compare: one polled the day before the cutoff goes,
        # one polled in the cutoff's first NZ minute stays.
        await conn.execute(
            "INSERT INTO race_alerts (race_id, entrant_id, kind, time_interval, previous_interval, value, "
            "polled_at) VALUES ('r-old', 'e1', 'win_money', 5, 10, 7.5, '2026-03-20 23:59:00+13'), "
            "('r-old', 'e2', 'win_money', 5, 10, 9.0, '2026-03-21 00:00:00+13')"
        )
        report = await apply_retention(conn, today, 30)
        assert report.cutoff == date(2026, 3, 21)
        assert sorted(report.dropped) == sorted(
            partition_name(t, today - timedelta(days=n))
            for t in ("money_flow_history", "odds_history")
            for n in (32, 31)
        )
        remaining = sorted((i.table, i.day) for i in await list_partitions(conn))
        kept_days = [today - timedelta(days=n) for n in (30, 29, 0)] + [today + timedelta(days=1)]
        assert remaining == sorted((t, d) for t in ("money_flow_history", "odds_history") for d in kept_days)
        cur = await conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE %s", ("%2026_03_19",))
        assert await cur.fetchone() == (0,)  # dropped, not just detached
        cur = await conn.execute("SELECT count(*) FROM race_polls")
        assert await cur.fetchone() == (1,)
        cur = await conn.execute("SELECT entrant_id FROM race_alerts")
        assert await cur.fetchall() == [("e2",)]
    finally:
        await conn.close()


async def test_a_write_for_a_day_without_partition_still_succeeds(
    db: Database, maintainer: PartitionMaintainer, caplog: pytest.LogCaptureFixture
) -> None:
    instant = datetime(2025, 8, 2, 3, 0, tzinfo=UTC)  # 15:00 NZST on 2025-08-02
    race = new_race(start=instant + timedelta(minutes=20))
    assert await scalar(db, "SELECT count(*) FROM pg_inherits") == 0
    with caplog.at_level(logging.ERROR, logger="services.writer.write_path"):
        result = await write(db, maintainer, poll(race, instant))
    assert result.written and result.money_flow_rows == 16 and result.odds_rows == 64
    assert any(r.getMessage() == "missing_partition" for r in caplog.records)
    rows = await fetch(
        db,
        "SELECT tableoid::regclass::text, count(*) FROM money_flow_history WHERE race_id = %s GROUP BY 1",
        race.race_id,
    )
    assert rows == [("money_flow_history_2025_08_02", 16)]


async def test_maintenance_run_creates_today_and_tomorrow_and_records_the_job(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    await maintainer.run(retention=True)
    today = nz_today()
    names = {
        r[0]
        for r in await fetch(db, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid")
    }
    for day in (today, today + timedelta(days=1)):
        assert f"money_flow_history_{day:%Y_%m_%d}" in names
        assert f"odds_history_{day:%Y_%m_%d}" in names
    jobs = await fetch(db, "SELECT job, run_key, status FROM job_runs ORDER BY job")
    assert jobs == [
        ("archive_retention", today.isoformat(), "succeeded"),
        ("partitions", today.isoformat(), "succeeded"),
        ("retention", today.isoformat(), "succeeded"),
    ]


def test_nightly_run_time_is_the_next_nz_wall_clock_time() -> None:
    four = time(4, 0)
    # 2025-09-27 14:00Z is 03:00 NZDT on the DST start day (02:00 was skipped): 04:00 NZDT is 15:00Z.
    assert next_run_at(datetime(2025, 9, 27, 14, 0, tzinfo=UTC), four) == datetime(
        2025, 9, 27, 15, 0, tzinfo=UTC
    )
    # 04:59 NZDT: the next run is tomorrow's 04:00.
    assert next_run_at(datetime(2025, 9, 27, 15, 59, tzinfo=UTC), four) == datetime(
        2025, 9, 28, 15, 0, tzinfo=UTC
    )
    # DST end day: 04:00 NZST on 2026-04-05 is 16:00Z on the 4th.
    assert next_run_at(datetime(2026, 4, 4, 12, 0, tzinfo=UTC), four) == datetime(
        2026, 4, 4, 16, 0, tzinfo=UTC
    )
