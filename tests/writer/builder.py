"""A small builder of RaceUpdate messages for the writer tests (16 runners, every money-flow and
odds row by default), plus helpers to write them and read rows back."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.common.nztime import to_epoch_ms
from services.common.proto.raceday.v1 import race_pb2, writer_pb2
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from services.writer.synthetic import SyntheticRace, synthetic_update
from services.writer.write_path import WriteResult, write_race_update

# 2025-07-17 12:50 NZST, the recorded event's start.
START = datetime(2025, 7, 17, 0, 50, tzinfo=UTC)


def new_race(
    *,
    start: datetime = START,
    runners: int = 16,
    meeting_id: str | None = None,
    meeting_name: str = "Test Park",
    race_number: int = 1,
    category: str = "T",
    country: str = "NZ",
    scratched: Iterable[int] = (),
) -> SyntheticRace:
    """A race with unique ids (each test owns its data)."""
    suffix = uuid.uuid4().hex[:8]
    return SyntheticRace(
        race_id=f"race-{suffix}",
        start_ms=to_epoch_ms(start),
        meeting_id=meeting_id or f"meeting-{suffix}",
        meeting_name=meeting_name,
        race_number=race_number,
        runners=runners,
        category=category,
        country=country,
        scratched=frozenset(scratched),
    )


def poll(
    race: SyntheticRace,
    at: datetime,
    *,
    index: int = 0,
    status: str = "open",
    previous: race_pb2.RaceUpdate | None = None,
    odds_rows: str = "all",
    with_results: bool = False,
    with_moves: bool = False,
) -> race_pb2.RaceUpdate:
    """One poll of `race` observed at `at`."""
    return synthetic_update(
        race,
        to_epoch_ms(at),
        poll_index=index,
        status=status,
        previous=previous,
        odds_rows=odds_rows,
        with_results=with_results,
        with_moves=with_moves,
    )


def minutes_before(start: datetime, minutes: float) -> datetime:
    """The instant `minutes` before `start`."""
    return start - timedelta(minutes=minutes)


async def ensure(maintainer: PartitionMaintainer, *days: date) -> None:
    """Create the partitions the test's rows need."""
    await maintainer.ensure_days(days, reason="test")


async def write(
    db: Database,
    maintainer: PartitionMaintainer,
    update: race_pb2.RaceUpdate,
    *,
    baseline: bool = False,
) -> WriteResult:
    """Write through the real write path (missing partitions recovered on the maintenance path)."""

    async def ensure_days(days: Iterable[date]) -> object:
        return await maintainer.ensure_days(days, reason="missing_partition")

    request = writer_pb2.WriteRaceUpdateRequest(update=update, baseline=baseline)
    return await write_race_update(db, request.SerializeToString(), ensure_days=ensure_days)


async def fetch(db: Database, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a query on the read pool."""
    async with db.read_connection() as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall()


async def scalar(db: Database, query: str, *params: Any) -> Any:
    """The first column of the first row."""
    rows = await fetch(db, query, *params)
    return rows[0][0] if rows else None


async def table_counts(db: Database, race_id: str) -> dict[str, int]:
    """Rows per table for one race (meeting counted through the race)."""
    return {
        "races": await scalar(db, "SELECT count(*) FROM races WHERE race_id = %s", race_id),
        "entrants": await scalar(db, "SELECT count(*) FROM entrants WHERE race_id = %s", race_id),
        "money_flow_history": await scalar(
            db, "SELECT count(*) FROM money_flow_history WHERE race_id = %s", race_id
        ),
        "odds_history": await scalar(db, "SELECT count(*) FROM odds_history WHERE race_id = %s", race_id),
        "race_pools": await scalar(db, "SELECT count(*) FROM race_pools WHERE race_id = %s", race_id),
        "race_results": await scalar(db, "SELECT count(*) FROM race_results WHERE race_id = %s", race_id),
        "race_polls": await scalar(db, "SELECT count(*) FROM race_polls WHERE race_id = %s", race_id),
    }


async def raceday(args: list[str], database_url: str) -> tuple[int | None, str]:
    """Run `raceday ARGS` against the database: exit code and output (stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        env={**os.environ, "RACEDAY_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await process.communicate())[0].decode()
    return process.returncode, output
