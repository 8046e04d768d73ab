"""Day-level jobs of replica 0 (spec/scheduling.md §5, §6, §8).

- the daily baseline at BASELINE_AT (06:00 NZ), and at start-up when today's has not run;
- the meetings refresh every MEETINGS_REFRESH_EVERY_MIN from 06:30 to 23:30 NZ;
- the optional evening backfill at EVENING_BACKFILL_AT (21:00 NZ).
Each run is recorded in job_runs through the writer and ends with one summary line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc

from services.common.clock import Clock
from services.common.logs import log_event
from services.common.nztime import NZ, from_epoch_ms, nz_date, nz_local_time
from services.common.proto.raceday.v1 import writer_pb2
from services.common.timestamps import timestamp_from_ms
from services.fetcher import metrics
from services.fetcher.meetings import meeting_with_races
from services.fetcher.pipeline import RacePipeline
from services.fetcher.scheduler import Scheduler
from services.fetcher.settings import FetcherSettings
from services.fetcher.tab_client import TabClient
from services.fetcher.tab_results import FetchFailure

if TYPE_CHECKING:
    from services.common.proto.raceday.v1.writer_pb2_grpc import WriterServiceAsyncStub

logger = logging.getLogger(__name__)

BASELINE_EVENT_CONCURRENCY = 4
BASELINE_FETCH_BUDGET_S = 10.0
REFRESH_FIRST = (6, 30)
REFRESH_LAST = (23, 30)


@dataclass(slots=True)
class JobStats:
    """Counts reported by a baseline or refresh run."""

    meetings_fetched: int = 0
    meetings_kept: int = 0
    by_country: Counter[str] = field(default_factory=Counter)
    races: int = 0
    races_written: int = 0
    entrants: int = 0
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for logs and job_runs.stats."""
        success_rate = self.races_written / self.races if self.races else None
        return {
            "meetings_fetched": self.meetings_fetched,
            "meetings_kept": self.meetings_kept,
            "meetings_by_country": dict(self.by_country),
            "races": self.races,
            "races_written": self.races_written,
            "entrants": self.entrants,
            "failures": self.failures[:50],
            "failure_count": len(self.failures),
            "success_rate": success_rate,
        }


def next_job(now: datetime, settings: FetcherSettings) -> tuple[str, datetime, date]:
    """The next (job, instant, NZ day) strictly after `now`, from NZ wall-clock times."""
    today = nz_date(now)
    candidates: list[tuple[datetime, str, date]] = []
    for day in (today, today + timedelta(days=1)):
        baseline = settings.baseline_at
        candidates.append((nz_local_time(day, baseline.hour, baseline.minute), "baseline", day))
        every = settings.meetings_refresh_every_min
        if every > 0:
            slot = nz_local_time(day, *REFRESH_FIRST)
            last = nz_local_time(day, *REFRESH_LAST)
            while slot <= last:
                candidates.append((slot, "refresh", day))
                slot += timedelta(minutes=every)
        if settings.evening_backfill_enabled:
            backfill = settings.evening_backfill_at
            candidates.append((nz_local_time(day, backfill.hour, backfill.minute), "backfill", day))
    instant, job, day = min(c for c in candidates if c[0] > now)
    return job, instant, day


class DayJobs:
    """Runs the day-level jobs on their NZ wall-clock schedule."""

    def __init__(
        self,
        *,
        settings: FetcherSettings,
        tab: TabClient,
        pipeline: RacePipeline,
        writer: WriterServiceAsyncStub,
        clock: Clock,
        scheduler: Scheduler,
    ) -> None:
        self._settings = settings
        self._tab = tab
        self._pipeline = pipeline
        self._writer = writer
        self._clock = clock
        self._scheduler = scheduler

    def _now(self) -> datetime:
        return from_epoch_ms(self._clock.now_ms())

    def _schedulable_request(
        self, *, lookahead_minutes: int, post_start_max_minutes: int
    ) -> writer_pb2.ListSchedulableRacesRequest:
        now_ms = self._clock.now_ms()
        return writer_pb2.ListSchedulableRacesRequest(
            lookahead_minutes=lookahead_minutes,
            post_start_max_minutes=post_start_max_minutes,
            now=timestamp_from_ms(now_ms),
        )

    async def run(self) -> None:
        """Catch up on today's baseline if needed, then run jobs at their times until cancelled."""
        today = nz_date(self._now())
        if await self._baseline_needed(today):
            await self.baseline(today)
        while True:
            job, at, day = next_job(self._now(), self._settings)
            wait_s = max(0.0, (at - self._now()).total_seconds())
            await asyncio.sleep(self._clock.to_real_seconds(wait_s))
            try:
                if job == "baseline":
                    await self.baseline(day)
                elif job == "refresh":
                    await self.refresh_meetings(day)
                else:
                    await self.evening_backfill(day)
            except grpc.aio.AioRpcError as exc:
                log_event(
                    logger,
                    "day_job_failed",
                    logging.ERROR,
                    job=job,
                    code=exc.code().name,
                    details=exc.details(),
                )

    async def _baseline_needed(self, day: date) -> bool:
        """No successful baseline recorded for `day`, and it is past BASELINE_AT or nothing is stored."""
        run: writer_pb2.GetJobRunResponse = await self._writer.GetJobRun(
            writer_pb2.GetJobRunRequest(job="baseline", run_key=day.isoformat()), timeout=5.0
        )
        if run.found and run.status in ("succeeded", "partial"):
            return False
        at = self._settings.baseline_at
        past_baseline_time = self._now() >= nz_local_time(day, at.hour, at.minute)
        if past_baseline_time:
            return True
        schedulable: writer_pb2.ListSchedulableRacesResponse = await self._writer.ListSchedulableRaces(
            self._schedulable_request(lookahead_minutes=24 * 60, post_start_max_minutes=24 * 60), timeout=5.0
        )
        return len(schedulable.races) == 0

    async def _record(self, job: str, day: date, status: str, started_ms: int, stats: dict[str, Any]) -> None:
        request = writer_pb2.RecordJobRunRequest(
            job=job,
            run_key=day.isoformat(),
            status=status,
            started_at_ms=started_ms,
            stats_json=json.dumps(stats),
        )
        if status != "running":
            request.finished_at_ms = self._clock.now_ms()
        await self._writer.RecordJobRun(request, timeout=5.0)

    async def _fetch_and_upsert_meetings(self, day: date, stats: JobStats) -> list[str]:
        """Fetch the day's meetings, upsert them with their race summaries; returns the race ids."""
        fetched = await self._tab.fetch_meetings(day)
        if isinstance(fetched, FetchFailure):
            stats.failures.append(f"meetings:{fetched.kind}")
            return []
        stats.meetings_fetched = fetched.total_meetings
        request = writer_pb2.UpsertMeetingsRequest()
        for item in fetched.meetings:
            converted = meeting_with_races(item)
            if converted is None:
                stats.failures.append(f"meeting:{item.get('meeting', '?')}:invalid")
                continue
            request.meetings.append(converted)
            stats.by_country[converted.meeting.country] += 1
        stats.meetings_kept = len(request.meetings)
        await self._writer.UpsertMeetings(request, timeout=30.0)
        race_ids = [race.race_id for entry in request.meetings for race in entry.races]
        stats.races = len(race_ids)
        self._scheduler.request_evaluation()
        return race_ids

    async def baseline(self, day: date) -> JobStats:
        """The daily baseline: meetings, races and every race's details for NZ day `day`."""
        started_ms = self._clock.now_ms()
        started = time.monotonic()
        stats = JobStats()
        await self._record("baseline", day, "running", started_ms, {})
        log_event(logger, "baseline_started", nz_date=day.isoformat())
        race_ids = await self._fetch_and_upsert_meetings(day, stats)
        gate = asyncio.Semaphore(BASELINE_EVENT_CONCURRENCY)

        async def load(race_id: str) -> None:
            async with gate:
                result = await self._pipeline.poll(
                    race_id, fetch_budget_s=BASELINE_FETCH_BUDGET_S, baseline=True
                )
            if result.outcome == "ok":
                stats.races_written += 1
                stats.entrants += result.rows.get("entrants", 0)
            else:
                stats.failures.append(f"{race_id}:{result.failed_stage}:{result.failure_kind}")

        await asyncio.gather(*(load(race_id) for race_id in race_ids))
        duration_s = time.monotonic() - started
        ok = stats.races > 0 and not stats.failures
        status = "succeeded" if ok else ("partial" if stats.races_written else "failed")
        summary = {**stats.as_dict(), "duration_s": round(duration_s, 2)}
        await self._record("baseline", day, status, started_ms, summary)
        if status != "failed":
            metrics.JOB_LAST_SUCCESS.labels("baseline").set(time.time())
        level = logging.INFO if ok else logging.WARNING if stats.races_written else logging.ERROR
        success_rate = summary["success_rate"]
        if success_rate is not None and success_rate < 0.9:
            level = logging.ERROR
        end = self._now()
        log_event(
            logger,
            "baseline_finished",
            level,
            nz_date=day.isoformat(),
            status=status,
            started_utc=from_epoch_ms(started_ms).isoformat(),
            started_nz=from_epoch_ms(started_ms).astimezone(NZ).isoformat(),
            finished_utc=end.isoformat(),
            finished_nz=end.astimezone(NZ).isoformat(),
            **summary,
        )
        return stats

    async def refresh_meetings(self, day: date) -> JobStats:
        """Re-read today's meetings and upsert meetings and race summaries (never entrants or series)."""
        stats = JobStats()
        await self._fetch_and_upsert_meetings(day, stats)
        metrics.JOB_LAST_SUCCESS.labels("refresh").set(time.time())
        log_event(logger, "meetings_refreshed", nz_date=day.isoformat(), **stats.as_dict())
        return stats

    async def evening_backfill(self, day: date) -> JobStats:
        """Re-fetch today's races that started over 30 minutes ago and are not terminal in storage."""
        stats = JobStats()
        now_ms = self._clock.now_ms()
        candidates: writer_pb2.ListSchedulableRacesResponse = await self._writer.ListSchedulableRaces(
            self._schedulable_request(lookahead_minutes=0, post_start_max_minutes=24 * 60), timeout=5.0
        )
        for race in candidates.races:
            if nz_date(from_epoch_ms(race.start_time_ms)) != day or race.start_time_ms > now_ms - 30 * 60_000:
                continue
            stats.races += 1
            result = await self._pipeline.poll(race.race_id, fetch_budget_s=BASELINE_FETCH_BUDGET_S)
            if result.outcome == "ok":
                stats.races_written += 1
            else:
                stats.failures.append(f"{race.race_id}:{result.failed_stage}:{result.failure_kind}")
        log_event(logger, "evening_backfill_finished", nz_date=day.isoformat(), **stats.as_dict())
        return stats
