"""Day-level job bookkeeping in job_runs (baseline, backfill, partition maintenance)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

JOB_STATUSES: Final = ("running", "succeeded", "partial", "failed")


@dataclass(frozen=True, slots=True)
class JobRun:
    """One recorded run."""

    job: str
    run_key: str
    status: str
    started_at: datetime
    finished_at: datetime | None


def parse_stats(stats_json: str) -> Any:
    """The stats document from JSON text ('' means none); ValueError when it is not JSON."""
    if not stats_json.strip():
        return None
    return json.loads(stats_json)


async def record_job_run(
    conn: AsyncConnection[Any],
    *,
    job: str,
    run_key: str,
    status: str,
    started_at: datetime,
    finished_at: datetime | None,
    stats: Any,
) -> None:
    """Insert or update the run identified by (job, started_at)."""
    if status not in JOB_STATUSES:
        raise ValueError(f"job status must be one of {', '.join(JOB_STATUSES)}")
    await conn.execute(
        """
        INSERT INTO job_runs (job, run_key, started_at, finished_at, status, stats)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (job, started_at) DO UPDATE
        SET run_key = EXCLUDED.run_key, finished_at = EXCLUDED.finished_at,
            status = EXCLUDED.status, stats = EXCLUDED.stats
        """,
        (job, run_key, started_at, finished_at, status, None if stats is None else Jsonb(stats)),
    )


async def latest_job_run(conn: AsyncConnection[Any], job: str, run_key: str) -> JobRun | None:
    """The most recently started run of `job` for `run_key`, if any."""
    cur = await conn.execute(
        """
        SELECT status, started_at, finished_at FROM job_runs
        WHERE job = %s AND run_key = %s
        ORDER BY started_at DESC LIMIT 1
        """,
        (job, run_key),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    status, started_at, finished_at = row
    return JobRun(job=job, run_key=run_key, status=status, started_at=started_at, finished_at=finished_at)
