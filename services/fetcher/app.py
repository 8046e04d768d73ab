"""The fetcher service: scheduler, pipeline and day-level jobs behind a small gRPC API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import grpc

from services.common.channels import create_channel
from services.common.clock import Clock
from services.common.config import Env
from services.common.health import SERVING, check_health
from services.common.logs import log_event
from services.common.proto.raceday.v1 import (
    fetcher_pb2,
    fetcher_pb2_grpc,
    writer_pb2_grpc,
)
from services.common.settings import ClientSettings
from services.fetcher.archive import ArchiveSettings, PollArchiver
from services.fetcher.cadence import TIER_SECONDS, TIERS
from services.fetcher.catchup import SpoolDrainer
from services.fetcher.day_jobs import DayJobs
from services.fetcher.pipeline import RacePipeline, StageDeadlines, log_poll
from services.fetcher.scheduler import Scheduler
from services.fetcher.settings import FetcherSettings
from services.fetcher.spool import PollSpool
from services.fetcher.tab_client import TabClient
from services.fetcher.tab_settings import TabSettings

logger = logging.getLogger(__name__)

TRANSFORMER_SERVICE = "raceday.v1.TransformerService"
WRITER_SERVICE = "raceday.v1.WriterService"
DEPENDENCY_WAIT_MAX_S = 5.0


class FetcherServicer(fetcher_pb2_grpc.FetcherServiceServicer):
    """Operational RPCs: scheduler status and on-demand polls."""

    def __init__(self, app: FetcherApp) -> None:
        self._app = app

    async def GetSchedulerStatus(
        self, request: fetcher_pb2.GetSchedulerStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> fetcher_pb2.GetSchedulerStatusResponse:
        """A snapshot of the scheduler."""
        scheduler = self._app.scheduler
        counts = scheduler.active_by_tier(self._app.clock.now_ms())
        response = fetcher_pb2.GetSchedulerStatusResponse(
            shard=str(self._app.settings.shard),
            inflight_polls=scheduler.inflight,
            circuit_state=self._app.pipeline.breaker_state,
            spooled_polls=self._app.spool.depth,
            commit_circuit_state=self._app.pipeline.commit_breaker.state,
        )
        oldest = self._app.spool.oldest_ms()
        if oldest is not None:
            response.oldest_spooled_poll_ms = oldest
        for tier in TIERS:
            response.tiers.append(
                fetcher_pb2.TierCount(
                    tier=tier,
                    active_races=counts[tier],
                    polls=scheduler.polls_by_tier[tier],
                    missed_polls=scheduler.missed_by_tier[tier],
                )
            )
        if self._app.pipeline.last_success_ms is not None:
            response.last_successful_write_ms = self._app.pipeline.last_success_ms
        return response

    async def PollRace(
        self, request: fetcher_pb2.PollRaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> fetcher_pb2.PollRaceResponse:
        """Poll one race now through the normal pipeline."""
        if not request.race_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "race_id is required")
        tracked = self._app.scheduler.races.get(request.race_id)
        if tracked is not None and tracked.in_flight:
            return fetcher_pb2.PollRaceResponse(outcome="skipped", failure_kind="poll_in_flight")
        result = await self._app.pipeline.poll(request.race_id, fetch_budget_s=TIER_SECONDS["15s"] * 0.75)
        log_poll(result, trigger="rpc")
        return fetcher_pb2.PollRaceResponse(
            outcome=result.outcome,
            failed_stage=result.failed_stage or "",
            failure_kind=result.failure_kind,
            fetch_ms=result.timings_ms.get("fetch", 0.0),
            transform_ms=result.timings_ms.get("transform", 0.0),
            write_ms=result.timings_ms.get("write", 0.0),
            total_ms=result.timings_ms.get("total", 0.0),
        )


class FetcherApp:
    """Wires the TAB client, the gRPC clients, the pipeline, the scheduler and the day jobs."""

    def __init__(self, env: Env) -> None:
        self.settings = FetcherSettings.from_env(env)
        self.clock = Clock.from_env(env)
        clients = ClientSettings.from_env(env)
        self.tab = TabClient(TabSettings.from_env(env))
        self._transformer_channel = create_channel(
            clients.transformer_addr, lb_policy=clients.lb_policy, retry_services=(TRANSFORMER_SERVICE,)
        )
        self._writer_channel = create_channel(
            clients.writer_addr, lb_policy=clients.lb_policy, retry_services=(WRITER_SERVICE,)
        )
        self.writer = writer_pb2_grpc.WriterServiceStub(self._writer_channel)
        self.spool = PollSpool(
            self.settings.spool_dir,
            max_bytes=self.settings.spool_max_bytes,
            max_age_ms=self.settings.spool_max_age_s * 1000,
        )
        archive_settings = ArchiveSettings.from_env(env)
        self.archive = (
            PollArchiver(self._writer_channel, archive_settings) if archive_settings.enabled else None
        )
        self.pipeline = RacePipeline(
            self.tab,
            self._transformer_channel,
            self._writer_channel,
            clock=self.clock,
            deadlines=StageDeadlines(
                state_s=self.settings.state_deadline_s,
                transform_s=self.settings.transform_deadline_s,
                write_s=self.settings.write_deadline_s,
            ),
            spool=self.spool,
            archive=self.archive,
        )
        self.drainer = SpoolDrainer(self.pipeline, self.spool, self.clock)
        self.scheduler = Scheduler(self.settings, self.pipeline, self.writer, self.clock)
        self.day_jobs = DayJobs(
            settings=self.settings,
            tab=self.tab,
            pipeline=self.pipeline,
            writer=self.writer,
            clock=self.clock,
            scheduler=self.scheduler,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        """Add the FetcherService."""
        fetcher_pb2_grpc.add_FetcherServiceServicer_to_server(FetcherServicer(self), server)
        return (fetcher_pb2.DESCRIPTOR.services_by_name["FetcherService"].full_name,)

    async def _wait_for_dependencies(self) -> None:
        """Wait, with backoff, until the writer and the transformer report SERVING."""
        delay = 0.1
        for name, channel in (("writer", self._writer_channel), ("transformer", self._transformer_channel)):
            while True:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    if await check_health(channel) == SERVING:
                        break
                log_event(logger, "waiting_for_dependency", dependency=name, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, DEPENDENCY_WAIT_MAX_S)

    async def start(self) -> None:
        """Wait for the writer and transformer, then start scheduling and the day-level jobs."""
        if self.archive is not None:
            # Also for polls asked over the RPC when neither the scheduler nor the day jobs run.
            self.archive.start()
        if not self.settings.scheduler_enabled and not self.settings.day_jobs_enabled:
            return
        await self._wait_for_dependencies()
        if self.settings.scheduler_enabled:
            self._tasks.append(asyncio.create_task(self.scheduler.run()))
            self._tasks.append(asyncio.create_task(self.drainer.run()))
        if self.settings.day_jobs_enabled:
            self._tasks.append(asyncio.create_task(self.day_jobs.run()))

    async def stop(self) -> None:
        """Stop dispatching, let in-flight polls finish (up to 10 s), close clients."""
        await self.scheduler.stop(grace_s=10.0)
        self.drainer.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.archive is not None:
            await self.archive.stop()
        await self.tab.aclose()
        await self._transformer_channel.close()
        await self._writer_channel.close()


def create_app(env: Env) -> FetcherApp:
    """Build the fetcher app from the environment."""
    return FetcherApp(env)
