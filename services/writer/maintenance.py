"""Partition maintenance: at start-up, nightly at PARTITION_MAINTENANCE_AT NZ, and as recovery.

Every run ensures today's and tomorrow's partitions (NZ dates) of the series and of the
raw-payload archive; the nightly run then applies retention: RETENTION_DAYS to the series,
ARCHIVE_RETENTION_DAYS to the archive, each without touching the other. Runs are logged
(`partition_maintenance`), recorded in job_runs and exported as
`raceday_job_last_success_timestamp{job="partitions"|"retention"|"archive_retention"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time as wall_time
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from services.common.logs import log_event
from services.common.nztime import nz_date, nz_local_time, nz_today, utc_now
from services.writer import jobs, metrics
from services.writer.db import Database
from services.writer.partitions import (
    ARCHIVE_TABLES,
    PARTITIONED_TABLES,
    SERIES_TABLES,
    RetentionReport,
    apply_retention,
    ensure_partitions,
)

logger = logging.getLogger(__name__)


def next_run_at(now: datetime, at: time) -> datetime:
    """The next instant (strictly after `now`) at which the NZ wall clock reads `at`."""
    today = nz_date(now)
    candidate = nz_local_time(today, at.hour, at.minute)
    if candidate <= now:
        candidate = nz_local_time(today + timedelta(days=1), at.hour, at.minute)
    return candidate


class PartitionMaintainer:
    """Owns every partition routine of one writer process (all on the maintenance connection)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._task: asyncio.Task[None] | None = None

    async def ensure_days(self, days: Iterable[date], *, reason: str) -> list[str]:
        """Ensure partitions for the NZ dates; returns the names created."""
        wanted = sorted(set(days))
        async with self._db.maintenance_connection() as conn:
            report = await ensure_partitions(conn, wanted, PARTITIONED_TABLES)
        log_event(
            logger,
            "partition_maintenance",
            reason=reason,
            dates=[d.isoformat() for d in wanted],
            created_partitions=report.created,
            ms=round(report.seconds * 1000, 1),
        )
        return report.created

    async def run(self, *, retention: bool, now: datetime | None = None) -> None:
        """Today and tomorrow, then (optionally) retention; each recorded in job_runs."""
        today = nz_today(now or utc_now())
        started = utc_now()
        try:
            created = await self.ensure_days((today, today + timedelta(days=1)), reason="scheduled")
        except Exception as exc:
            await self._write_job_run("partitions", today, started, "failed", {"error": type(exc).__name__})
            raise
        await self._write_job_run("partitions", today, started, "succeeded", {"created": created})
        metrics.JOB_LAST_SUCCESS.labels("partitions").set(wall_time.time())
        if not retention:
            return
        settings = self._db.settings
        await self._retention("retention", today, SERIES_TABLES, settings.retention_days)
        await self._retention("archive_retention", today, ARCHIVE_TABLES, settings.archive_retention_days)

    async def _retention(self, job: str, today: date, tables: tuple[str, ...], days: int) -> RetentionReport:
        """Retention of one set of tables, recorded in job_runs as `job`."""
        started = utc_now()
        try:
            async with self._db.maintenance_connection() as conn:
                report = await apply_retention(conn, today, days, tables)
        except Exception as exc:
            await self._write_job_run(job, today, started, "failed", {"error": type(exc).__name__})
            raise
        await self._write_job_run(
            job,
            today,
            started,
            "succeeded",
            {"dropped": report.dropped, "cutoff": report.cutoff.isoformat()},
        )
        metrics.JOB_LAST_SUCCESS.labels(job).set(wall_time.time())
        log_event(
            logger,
            "partition_retention",
            job=job,
            cutoff=report.cutoff.isoformat(),
            dropped=report.dropped,
            ms=round(report.seconds * 1000, 1),
        )
        return report

    async def _write_job_run(
        self, job: str, today: date, started: datetime, status: str, stats: dict[str, Any]
    ) -> None:
        try:
            async with self._db.maintenance_connection() as conn:
                await jobs.record_job_run(
                    conn,
                    job=job,
                    run_key=today.isoformat(),
                    status=status,
                    started_at=started,
                    finished_at=utc_now(),
                    stats=stats,
                )
        except Exception:
            logger.exception("job_run_record_failed")

    def start_nightly(self) -> None:
        """Run maintenance every night at the configured NZ time, in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._nightly(), name="partition-maintenance")

    async def stop(self) -> None:
        """Cancel the nightly task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _nightly(self) -> None:
        at = self._db.settings.maintenance_at
        while True:
            now = utc_now()
            due = next_run_at(now, at)
            await asyncio.sleep(max(0.0, (due - now).total_seconds()))
            try:
                await self.run(retention=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The next night retries; the start-up and on-demand paths cover the gap.
                logger.exception("partition_maintenance_failed")
