"""Acceptance of issue 15: a simulated race day polled live is archived, and its replay into an
empty database rebuilds every series row exactly.

The live run is the real fetcher (FetcherApp: baseline day job, scheduler, pipeline, archive)
on an accelerated clock against the simulated TAB (two meetings of two races, each event served
from a 15 s snapshot), with `raceday serve writer` and `raceday serve transformer` processes on
a database of its own. When every race is final or abandoned the fetcher stops (the archive
drains on stop), and the archive is replayed into an empty database. Every column of both
series tables is compared (tests/stored_rows.py reads them), but the written-when instants and
the surrogate row id, whose place is taken by the row's rank among its entrant's rows.
A second replay into the same database writes nothing (resumable), and `raceday replay`
without --into finds the live series equal to their replay.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.common.clock import Clock, real_now_ms
from services.common.config import Env
from services.common.database import scratch_database
from services.fetcher.app import FetcherApp
from services.tabsim.server import TabSimProcess, start_tabsim_process
from services.writer.db import Database, connect
from services.writer.migrate import apply_migrations
from services.writer.replay import replay
from services.writer.settings import WriterSettings
from tests.stored_rows import read_tables, services

ROOT = Path(__file__).resolve().parent.parent
SPEED = 120.0
SETTINGS = WriterSettings(write_pool_size=4, read_pool_size=2, acquire_timeout_s=10.0)
SERIES_ORDER = {"money_flow_history": ("entrant_id",), "odds_history": ("entrant_id", "type")}


@pytest.fixture
def clock(live_services: tuple[str, str]) -> Clock:
    """The accelerated clock shared by the simulated TAB and the fetcher, from when the services serve.

    (Anchored after their start-up, however long it takes, so that the day begins in the future.)
    """
    return Clock(speed=SPEED, anchor_ms=real_now_ms())


@pytest.fixture
def tabsim(clock: Clock) -> Iterator[TabSimProcess]:
    """Two meetings of two races starting within the simulated half hour, 15 s snapshots."""
    process = start_tabsim_process(
        [
            *("--scenario", "day", "--meetings", "2", "--races", "2", "--seed", "15"),
            *("--first-start-offset-s", "900", "--race-spacing-s", "360", "--meeting-stagger-s", "180"),
            *("--snapshot-s", "15", "--log-level", "WARNING"),
        ],
        env={**os.environ, **clock.env()},
    )
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def live_services(fresh_database_url: str) -> AsyncIterator[tuple[str, str]]:
    """The writer and transformer processes over the live database."""
    with tempfile.TemporaryDirectory(prefix="raceday-replay-") as logs:
        async with services(ROOT, Path(sys.executable), fresh_database_url, Path(logs)) as targets:
            yield targets


async def _race_statuses(url: str) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT race_id, status FROM races")
        return {str(race): str(status) for race, status in await cur.fetchall()}


async def _poll_the_day_live(
    clock: Clock, tab_url: str, writer: str, transformer: str, database_url: str, spool: Path
) -> None:
    env = Env(
        {
            **clock.env(),
            "NZTAB_BASE_URL": tab_url,
            "NZTAB_FROM": "replay-test@localhost",
            "NZTAB_PARTNER": "Raceday tests",
            "NZTAB_PARTNER_ID": "tests",
            "RACEDAY_WRITER_ADDR": writer,
            "RACEDAY_TRANSFORMER_ADDR": transformer,
            "RACEDAY_SPOOL_DIR": str(spool),
            "RACEDAY_LOG_LEVEL": "WARNING",
        }
    )
    app = FetcherApp(env)
    await app.start()
    try:
        # Wait for the condition: the baseline stored the day's races and every one has finished.
        while True:
            statuses = await _race_statuses(database_url)
            if statuses and all(s in ("final", "abandoned") for s in statuses.values()):
                break
            await asyncio.sleep(0.2)
    finally:
        await app.stop()
    assert app.archive is not None and app.archive.dropped == 0


def _series(url: str) -> dict[str, list[dict[str, Any]]]:
    """Both series tables, every column but the bookkeeping ones; `id` replaced by its entrant rank."""
    tables = read_tables(url)
    result: dict[str, list[dict[str, Any]]] = {}
    for table, keys in SERIES_ORDER.items():
        rows = sorted(tables[table], key=lambda row: row["id"])
        seen: dict[tuple[Any, ...], int] = {}
        ranked = []
        for row in rows:
            key = tuple(row[k] for k in keys)
            seen[key] = seen.get(key, 0) + 1
            ranked.append({**{k: v for k, v in row.items() if k != "id"}, "entrant_rank": seen[key]})
        result[table] = sorted(ranked, key=lambda row: repr(sorted(row.items())))
    return result


async def _archive_days(url: str) -> tuple[date, date, int, int, int]:
    """First and last NZ racing day archived, polls, distinct payloads, baseline polls."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT min(racing_day), max(racing_day), count(*), count(DISTINCT payload_hash), "
            "count(*) FILTER (WHERE baseline) FROM archive_polls"
        )
        row = await cur.fetchone()
    assert row is not None and row[2] > 0
    return row[0], row[1], row[2], row[3], row[4]


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """A second database, empty, for the replay."""
    with scratch_database(pg_server_url, "raceday_replay_target") as url:
        yield url


async def test_a_day_polled_live_replays_into_identical_series(
    live_services: tuple[str, str],
    clock: Clock,
    tabsim: TabSimProcess,
    fresh_database_url: str,
    empty_database_url: str,
    tmp_path: Path,
) -> None:
    writer, transformer = live_services
    await _poll_the_day_live(clock, tabsim.url, writer, transformer, fresh_database_url, tmp_path / "spool")
    first, last, archived, distinct, baselines = await _archive_days(fresh_database_url)
    live = _series(fresh_database_url)
    assert len(live["money_flow_history"]) > 100 and live["odds_history"]

    conn = await connect(empty_database_url, SETTINGS)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    source = await connect(fresh_database_url, SETTINGS)
    target = Database(SETTINGS)
    await target.open(empty_database_url)
    try:
        report = await replay(source, target, first, last)
        assert report.polls == archived and report.rejected == 0 and report.skipped == 0
        # Every race's first poll is the day job's baseline; when the simulated day runs past
        # BASELINE_AT (06:00 NZ) the job polls each race again as a baseline.
        races = len(report.race_ids)
        assert races >= 2 and baselines >= races
        assert report.baselines == baselines and report.written == archived - baselines
        assert _series(empty_database_url) == live
        # Resumable: everything is there already, nothing is written twice.
        again = await replay(source, target, first, last)
        assert again.skipped == archived and again.written == 0
        assert _series(empty_database_url) == live
    finally:
        await target.close()
        await source.close()
    assert distinct <= archived

    # Against the live database: compared, not written.
    code, output = await _compare_with_live(fresh_database_url, first, last)
    assert code == 0, output
    assert "equal their replay" in output
    assert _series(fresh_database_url) == live
    # A stored cent that the archive does not explain is reported.
    async with await psycopg.AsyncConnection.connect(fresh_database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE money_flow_history SET win_pool_amount = win_pool_amount + 1 "
            "WHERE id = (SELECT max(id) FROM money_flow_history)"
        )
    code, output = await _compare_with_live(fresh_database_url, first, last)
    assert code == 1, output
    assert "1 only live, 1 only replayed" in output


async def _compare_with_live(url: str, first: date, last: date) -> tuple[int | None, str]:
    """`raceday replay --from --to` without --into: exit code and output."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "services.cli", "replay", "--from", str(first), "--to", str(last), "--quiet"),
        env={**os.environ, "RACEDAY_DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await process.communicate())[0].decode()
    return process.returncode, output
