"""WriterService: the write path, prior state, meetings list, schedulable races and job runs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from datetime import date

import grpc

from services.common.clock import Clock
from services.common.nztime import from_epoch_ms, to_epoch_ms, utc_now
from services.common.proto.raceday.v1 import writer_pb2
from services.common.protofields import opt_ts
from services.common.servicers import add_servicer
from services.common.timestamps import datetime_to_ts
from services.writer import jobs
from services.writer.archive import archive_polls
from services.writer.changes import ChangeFeed
from services.writer.db import Database
from services.writer.errors import InvalidArgumentError
from services.writer.maintenance import PartitionMaintainer
from services.writer.rpc import Context, handled
from services.writer.schedule import list_schedulable_races, upsert_meetings
from services.writer.state import get_race_state
from services.writer.write_path import write_race_update

logger = logging.getLogger(__name__)


def _require_job_key(job: str, run_key: str) -> None:
    """INVALID_ARGUMENT unless both halves of a job run's key are given."""
    if not job or not run_key:
        raise InvalidArgumentError("job and run_key are required")


WRITER_SERVICE = writer_pb2.DESCRIPTOR.services_by_name["WriterService"]


def add_writer_servicer(servicer: WriterServicer, server: grpc.aio.Server) -> None:
    """Register WriterService; WriteRaceUpdate receives the serialised request (no Python message)."""
    add_servicer(server, WRITER_SERVICE, servicer, raw_requests={"WriteRaceUpdate"})


class WriterServicer:
    """gRPC front of the writer's storage operations (WriterService, registered by WriterApp)."""

    def __init__(
        self,
        db: Database,
        maintainer: PartitionMaintainer,
        feed: ChangeFeed | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._clock = clock or Clock()
        self._maintainer = maintainer
        # A feed that is never started announces nothing (tests that do not need the push).
        self._feed = feed or ChangeFeed(db)

    async def _ensure_days(self, days: Iterable[date]) -> object:
        return await self._maintainer.ensure_days(days, reason="missing_partition")

    @handled("WriteRaceUpdate")
    async def WriteRaceUpdate(self, request: bytes, context: Context) -> writer_pb2.WriteRaceUpdateResponse:
        """Write one poll in one transaction; a repeated (race_id, polled_at) writes nothing.

        Registered with raw requests (see WriterApp.register): `request` is a serialised
        WriteRaceUpdateRequest, rendered by the Rust core without a Python message.
        """
        result = await write_race_update(self._db, request, ensure_days=self._ensure_days, clock=self._clock)
        response = writer_pb2.WriteRaceUpdateResponse(
            written=result.written,
            entrants_written=result.entrants_written,
            money_flow_rows=result.money_flow_rows,
            odds_rows=result.odds_rows,
            pools_written=result.pools_written,
            results_written=result.results_written,
        )
        if result.change_id is not None:
            response.change_id = result.change_id
        if result.committed_at is not None:
            datetime_to_ts(result.committed_at, response.committed_at)
        return response

    @handled("GetRaceState")
    async def GetRaceState(
        self, request: writer_pb2.GetRaceStateRequest, context: Context
    ) -> writer_pb2.GetRaceStateResponse:
        """The committed prior state of a race; found=false for an unknown race."""
        if not request.race_id:
            raise InvalidArgumentError("race_id is required")
        found, state = await get_race_state(self._db, request.race_id)
        return writer_pb2.GetRaceStateResponse(found=found, state=state)

    @handled("UpsertMeetings")
    async def UpsertMeetings(
        self, request: writer_pb2.UpsertMeetingsRequest, context: Context
    ) -> writer_pb2.UpsertMeetingsResponse:
        """Meetings and race summaries from the meetings list; never entrants or time series."""
        meetings, races = await upsert_meetings(self._db, request)
        return writer_pb2.UpsertMeetingsResponse(meetings_upserted=meetings, races_upserted=races)

    @handled("ListSchedulableRaces")
    async def ListSchedulableRaces(
        self, request: writer_pb2.ListSchedulableRacesRequest, context: Context
    ) -> writer_pb2.ListSchedulableRacesResponse:
        """Races not final/abandoned starting within the scheduler's window."""
        now = opt_ts(request, "now") or utc_now()
        races = await list_schedulable_races(
            self._db, now, request.lookahead_minutes, request.post_start_max_minutes
        )
        response = writer_pb2.ListSchedulableRacesResponse()
        for race in races:
            response.races.add(
                race_id=race.race_id,
                meeting_id=race.meeting_id,
                meeting_name=race.meeting_name,
                race_number=race.race_number,
                status=race.status,
                start_time_ms=to_epoch_ms(race.start_time),
            )
        return response

    @handled("RecordJobRun")
    async def RecordJobRun(
        self, request: writer_pb2.RecordJobRunRequest, context: Context
    ) -> writer_pb2.RecordJobRunResponse:
        """Insert or update a day-level job run keyed by (job, started_at)."""
        _require_job_key(request.job, request.run_key)
        if request.status not in jobs.JOB_STATUSES:
            raise InvalidArgumentError(f"status must be one of {', '.join(jobs.JOB_STATUSES)}")
        try:
            stats = jobs.parse_stats(request.stats_json)
        except ValueError:
            raise InvalidArgumentError("stats_json is not valid JSON") from None
        finished = from_epoch_ms(request.finished_at_ms) if request.HasField("finished_at_ms") else None
        async with self._db.read_connection() as conn:
            await jobs.record_job_run(
                conn,
                job=request.job,
                run_key=request.run_key,
                status=request.status,
                started_at=from_epoch_ms(request.started_at_ms),
                finished_at=finished,
                stats=stats,
            )
        return writer_pb2.RecordJobRunResponse()

    @handled("GetJobRun")
    async def GetJobRun(
        self, request: writer_pb2.GetJobRunRequest, context: Context
    ) -> writer_pb2.GetJobRunResponse:
        """The latest run of a job for a key."""
        _require_job_key(request.job, request.run_key)
        async with self._db.read_connection() as conn:
            run = await jobs.latest_job_run(conn, request.job, request.run_key)
        if run is None:
            return writer_pb2.GetJobRunResponse(found=False)
        response = writer_pb2.GetJobRunResponse(
            found=True, status=run.status, started_at_ms=to_epoch_ms(run.started_at)
        )
        if run.finished_at is not None:
            response.finished_at_ms = to_epoch_ms(run.finished_at)
        return response

    @handled("ArchivePolls")
    async def ArchivePolls(
        self, request: writer_pb2.ArchivePollsRequest, context: Context
    ) -> writer_pb2.ArchivePollsResponse:
        """Keep a batch of raw payloads with their poll identities; idempotent."""
        archived, stored = await archive_polls(self._db, request, ensure_days=self._ensure_days)
        return writer_pb2.ArchivePollsResponse(polls_archived=archived, payloads_stored=stored)

    async def WatchRaceChanges(
        self, request: writer_pb2.WatchRaceChangesRequest, context: Context
    ) -> AsyncIterator[writer_pb2.RaceChange]:
        """Every race write committed from now on, until the client goes (or falls behind)."""
        async with self._feed.subscribe() as subscription:
            # Tells the client at once that its subscription is in place.
            await context.send_initial_metadata(())
            async for change in subscription:
                yield change
