"""One race poll: fetch -> Transform -> WriteRaceUpdate, with deadlines and stage timings.

The prior state a transform needs is the state as committed in the database: it
is cached from the last successful write of this race and recovered from the
writer's GetRaceState otherwise (after a restart). A failed write drops the
cached state, so it is never advanced past what was committed.

A poll the TAB answered that cannot be committed now (the writer, its database or the
transformer unreachable or too slow) is spooled (services/fetcher/spool.py) instead of lost,
and so is every later poll of the race until its spooled polls are written, in order
(services/fetcher/catchup.py). A breaker on the commit path opens after consecutive such
failures: while it is open, polls are spooled at once, so the scheduler never waits on a
database that is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import grpc

from services.common.channels import TRANSIENT_CODES
from services.common.clock import Clock
from services.common.logs import log_event
from services.common.nztime import to_epoch_ms
from services.common.proto.raceday.v1 import (
    race_pb2,
    transformer_pb2,
    writer_pb2,
    writer_pb2_grpc,
)
from services.common.timestamps import ms_from_timestamp, timestamp_from_ms
from services.fetcher import metrics
from services.fetcher.archive import PollArchiver, ReceivedPayload
from services.fetcher.spool import PollSpool, SpooledPoll
from services.fetcher.tab_breaker import BreakerState, CircuitBreaker
from services.fetcher.tab_client import TabClient
from services.fetcher.tab_metrics import CIRCUIT_GAUGE_VALUE
from services.fetcher.tab_results import EventFetch, FetchFailure

if TYPE_CHECKING:
    from services.common.proto.raceday.v1.writer_pb2_grpc import WriterServiceAsyncStub

logger = logging.getLogger(__name__)

TRANSFORM_METHOD = "/{}/Transform".format(
    transformer_pb2.DESCRIPTOR.services_by_name["TransformerService"].full_name
)
WRITE_METHOD = "/{}/WriteRaceUpdate".format(writer_pb2.DESCRIPTOR.services_by_name["WriterService"].full_name)
# TransformResponse.update and WriteRaceUpdateRequest.update are both field 1 of the same message
# type, so a TransformResponse's bytes are a WriteRaceUpdateRequest's bytes: the update is
# forwarded without being decoded and encoded again (tests/fetcher/test_pipeline_wire.py holds the
# field numbers to it). A baseline write appends WriteRaceUpdateRequest.baseline (field 2, varint 1).
BASELINE_FIELD = b"\x10\x01"

Stage = Literal["fetch", "state", "transform", "write"]
Outcome = Literal["ok", "failed", "spooled"]

# Consecutive transient failures that open the commit breaker, and how long it stays open.
COMMIT_BREAKER_FAILURES = 2
COMMIT_BREAKER_OPEN_S = 2.0


@dataclass(frozen=True, slots=True)
class StageDeadlines:
    """Per-call deadlines of the gRPC stages, in seconds."""

    state_s: float = 2.0
    transform_s: float = 2.0
    write_s: float = 5.0


@dataclass(slots=True)
class PollResult:
    """What one poll did: outcome, timings, and what the scheduler needs next."""

    race_id: str
    outcome: Outcome
    failed_stage: Stage | None = None
    failure_kind: str = ""
    message: str = ""
    # The failure is the commit path's (down or too slow), not the poll's: worth retrying.
    transient: bool = False
    not_found: bool = False
    status: str | None = None
    start_time_ms: int | None = None
    polled_at_ms: int | None = None
    # header.generated_time of the payload read: when the TAB refreshed the data.
    generated_at_ms: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    quality_findings: int = 0
    attempts: int = 0
    payload_bytes: int = 0


class RacePipeline:
    """Runs polls of races through the transformer and the writer.

    The event payload goes to the transformer as the TAB sent it (compressed) and the
    transformer's answer goes to the writer as the transformer encoded it: the hot path
    carries bytes; only the small response is parsed here, for the state and the scheduler.
    """

    def __init__(
        self,
        tab: TabClient,
        transformer: grpc.aio.Channel,
        writer: grpc.aio.Channel,
        *,
        clock: Clock,
        deadlines: StageDeadlines,
        spool: PollSpool | None = None,
        archive: PollArchiver | None = None,
    ) -> None:
        self._tab = tab
        self.spool = spool
        # Every payload received is handed to the archive (a queue; the poll never waits on it).
        self.archive = archive
        self.commit_breaker = CircuitBreaker(
            failure_threshold=COMMIT_BREAKER_FAILURES,
            open_s=COMMIT_BREAKER_OPEN_S,
            on_change=_commit_breaker_changed,
        )
        # Identity (de)serialisers: bytes in, bytes out.
        self._transform: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = transformer.unary_unary(
            TRANSFORM_METHOD
        )
        self._write: grpc.aio.UnaryUnaryMultiCallable[bytes, writer_pb2.WriteRaceUpdateResponse] = (
            writer.unary_unary(
                WRITE_METHOD, response_deserializer=writer_pb2.WriteRaceUpdateResponse.FromString
            )
        )
        self._writer: WriterServiceAsyncStub = writer_pb2_grpc.WriterServiceStub(writer)
        self._clock = clock
        self._deadlines = deadlines
        self._states: dict[str, race_pb2.RaceState] = {}
        self.last_success_ms: int | None = None

    @classmethod
    def from_channels(
        cls,
        tab: TabClient,
        transformer_channel: grpc.aio.Channel,
        writer_channel: grpc.aio.Channel,
        *,
        clock: Clock,
        deadlines: StageDeadlines,
        spool: PollSpool | None = None,
        archive: PollArchiver | None = None,
    ) -> RacePipeline:
        """The pipeline over these channels (the name benchmark drivers look for across versions)."""
        return cls(
            tab,
            transformer_channel,
            writer_channel,
            clock=clock,
            deadlines=deadlines,
            spool=spool,
            archive=archive,
        )

    @property
    def breaker_state(self) -> str:
        """The TAB client's circuit-breaker state."""
        return str(self._tab.breaker_state)

    def forget(self, race_id: str) -> None:
        """Drop the cached state of a race (it is re-read from the writer next time)."""
        self._states.pop(race_id, None)

    async def _prior_state(self, race_id: str) -> race_pb2.RaceState:
        cached = self._states.get(race_id)
        if cached is not None:
            return cached
        response: writer_pb2.GetRaceStateResponse = await self._writer.GetRaceState(
            writer_pb2.GetRaceStateRequest(race_id=race_id), timeout=self._deadlines.state_s
        )
        if response.found:
            return response.state
        return race_pb2.RaceState(race_id=race_id)

    def must_queue(self, race_id: str) -> bool:
        """True when a new poll of the race goes to the spool: earlier polls of it wait there, or
        the commit path is down (its breaker is not closed)."""
        if self.spool is None:
            return False
        return self.spool.holds(race_id) or self.commit_breaker.state != "closed"

    async def poll(self, race_id: str, *, fetch_budget_s: float, baseline: bool = False) -> PollResult:
        """Poll one race end to end; never raises for a failed stage (the result says what failed).

        A baseline poll writes entities, pools and results only (no time series), so its
        update's state is not cached: the committed state did not change. Baselines are never
        spooled (the day job runs them again).
        """
        result = PollResult(race_id=race_id, outcome="failed")
        started = time.perf_counter()
        queue = not baseline and self.must_queue(race_id)
        state_task = None if queue else asyncio.create_task(self._timed_state(race_id, result))
        try:
            fetched = await self._tab.fetch_event(race_id, budget_s=fetch_budget_s)
            polled_at_ms = self._clock.now_ms()
            result.timings_ms["fetch"] = (time.perf_counter() - started) * 1000
            if isinstance(fetched, FetchFailure):
                result.failed_stage, result.failure_kind = "fetch", fetched.kind
                result.message = fetched.message
                result.attempts = fetched.attempts
                result.not_found = fetched.http_status == 404
                return result
            result.attempts = fetched.attempts
            result.payload_bytes = len(fetched.payload)
            result.polled_at_ms = polled_at_ms
            result.generated_at_ms = _epoch_ms(fetched.summary["generated_time"])
            if self.archive is not None:
                self.archive.offer(
                    ReceivedPayload(race_id, polled_at_ms, fetched.payload, fetched.encoding, baseline)
                )
            if state_task is None:
                await self._spool(fetched, polled_at_ms, result)
                return result
            try:
                prior = await state_task
            except grpc.aio.AioRpcError as exc:
                await self._failed(result, "state", exc, fetched, polled_at_ms, baseline=baseline)
                return result
            await self._transform_and_write(fetched, polled_at_ms, prior, result, baseline=baseline)
            return result
        finally:
            if state_task is not None and not state_task.done():
                state_task.cancel()
            result.timings_ms["total"] = (time.perf_counter() - started) * 1000
            for stage, ms in result.timings_ms.items():
                metrics.POLL_STAGE_SECONDS.labels(stage).observe(ms / 1000)

    async def _timed_state(self, race_id: str, result: PollResult) -> race_pb2.RaceState:
        started = time.perf_counter()
        try:
            return await self._prior_state(race_id)
        finally:
            result.timings_ms["state"] = (time.perf_counter() - started) * 1000

    async def _failed(
        self,
        result: PollResult,
        stage: Stage,
        exc: grpc.aio.AioRpcError,
        fetched: EventFetch,
        polled_at_ms: int,
        *,
        baseline: bool,
    ) -> None:
        """A stage after the fetch failed: spool the poll when the commit path is the cause."""
        result.failed_stage, result.failure_kind = stage, exc.code().name.lower()
        result.message = (exc.details() or "")[:200]
        result.transient = exc.code() in TRANSIENT_CODES
        if not result.transient:
            return
        self.commit_breaker.record_failure(result.failure_kind)
        if self.spool is not None and not baseline:
            await self._spool(fetched, polled_at_ms, result)

    async def _spool(self, fetched: EventFetch, polled_at_ms: int, result: PollResult) -> None:
        """Keep the poll for later; the scheduler sees the status the payload showed."""
        assert self.spool is not None
        summary = fetched.summary
        result.status = summary["status"]
        if summary["advertised_start"] is not None:
            result.start_time_ms = summary["advertised_start"] * 1000
        poll = SpooledPoll(
            race_id=result.race_id,
            polled_at_ms=polled_at_ms,
            encoding=fetched.encoding,
            path=Path(),
            size=0,
            status=result.status,
            start_time_ms=result.start_time_ms,
        )
        await asyncio.to_thread(self.spool.add, poll, fetched.payload, self._clock.now_ms())
        result.outcome = "spooled"

    async def _transform_and_write(
        self,
        fetched: EventFetch,
        polled_at_ms: int,
        prior: race_pb2.RaceState,
        result: PollResult,
        *,
        baseline: bool,
    ) -> None:
        started = time.perf_counter()
        try:
            committed = await self._commit(
                fetched.payload, fetched.encoding, polled_at_ms, prior, result, baseline=baseline
            )
        except _StageFailedError as failure:
            result.timings_ms[failure.stage] = (time.perf_counter() - started) * 1000
            await self._failed(result, failure.stage, failure.error, fetched, polled_at_ms, baseline=baseline)
            return
        if committed is not None:
            self.commit_breaker.record_success()

    async def _commit(
        self,
        payload: bytes,
        encoding: str,
        polled_at_ms: int,
        prior: race_pb2.RaceState,
        result: PollResult,
        *,
        baseline: bool,
    ) -> race_pb2.RaceUpdate | None:
        """Transform and write one poll; fills `result`; the update when it was written now.

        Raises _StageFailedError naming the stage when a call fails.
        """
        race_id = result.race_id
        started = time.perf_counter()
        request = transformer_pb2.TransformRequest(
            payload=payload,
            payload_encoding=encoding,
            polled_at=timestamp_from_ms(polled_at_ms),
            prior_state=prior,
        )
        try:
            transformed: bytes = await self._transform(
                request.SerializeToString(), timeout=self._deadlines.transform_s
            )
        except grpc.aio.AioRpcError as exc:
            raise _StageFailedError("transform", exc) from None
        result.timings_ms["transform"] = (time.perf_counter() - started) * 1000
        update = transformer_pb2.TransformResponse.FromString(transformed).update
        started = time.perf_counter()
        try:
            written: writer_pb2.WriteRaceUpdateResponse = await self._write(
                transformed + BASELINE_FIELD if baseline else transformed, timeout=self._deadlines.write_s
            )
        except grpc.aio.AioRpcError as exc:
            # What was committed is unknown: re-read the state from the database next time.
            self.forget(race_id)
            raise _StageFailedError("write", exc) from None
        result.timings_ms["write"] = (time.perf_counter() - started) * 1000
        result.outcome = "ok"
        result.polled_at_ms = polled_at_ms
        result.status = update.race.status
        result.start_time_ms = ms_from_timestamp(update.race.start_time)
        result.quality_findings = len(update.quality)
        for finding in update.quality:
            metrics.QUALITY_FINDINGS.labels(finding.check).inc()
        result.rows = {
            "entrants": written.entrants_written,
            "money_flow": written.money_flow_rows,
            "odds": written.odds_rows,
            "pools": int(written.pools_written),
            "results": int(written.results_written),
        }
        if baseline:
            return update
        if written.written:
            self._states[race_id] = update.state
            self.last_success_ms = polled_at_ms
        else:
            # Already committed before (a re-delivery): the committed state may be newer.
            self.forget(race_id)
        return update

    async def commit_spooled(self, entry: SpooledPoll) -> PollResult:
        """Transform and write one spooled poll against the committed state of the one before.

        Never raises for a failed stage; the result's outcome is ok (written, or found already
        written) or failed (the spool keeps it when the failure is transient).
        """
        result = PollResult(race_id=entry.race_id, outcome="failed", polled_at_ms=entry.polled_at_ms)
        started = time.perf_counter()
        try:
            try:
                prior = await self._timed_state(entry.race_id, result)
            except grpc.aio.AioRpcError as exc:
                raise _StageFailedError("state", exc) from None
            payload = await asyncio.to_thread(entry.payload)
            result.payload_bytes = len(payload)
            await self._commit(payload, entry.encoding, entry.polled_at_ms, prior, result, baseline=False)
            if self.archive is not None:
                # Offered at receipt too, when the writer may have been down; archiving is idempotent.
                archived = ReceivedPayload(entry.race_id, entry.polled_at_ms, payload, entry.encoding)
                self.archive.offer(archived)
        except _StageFailedError as failure:
            result.failed_stage, result.failure_kind = failure.stage, failure.error.code().name.lower()
            result.message = (failure.error.details() or "")[:200]
            result.transient = failure.error.code() in TRANSIENT_CODES
        finally:
            result.timings_ms["total"] = (time.perf_counter() - started) * 1000
        return result


class _StageFailedError(Exception):
    """A gRPC call of the commit path failed."""

    def __init__(self, stage: Stage, error: grpc.aio.AioRpcError) -> None:
        super().__init__(stage)
        self.stage: Stage = stage
        self.error = error


def _commit_breaker_changed(old: BreakerState, new: BreakerState, reason: str) -> None:
    metrics.COMMIT_BREAKER.set(CIRCUIT_GAUGE_VALUE[new])
    level = logging.WARNING if new == "open" else logging.INFO
    log_event(logger, "commit_circuit_state", level, old=old, new=new, reason=reason)


def log_poll(result: PollResult, **context: object) -> None:
    """The one structured `race_poll` line per poll (never the payload)."""
    level = logging.INFO if result.outcome == "ok" else logging.WARNING
    if result.timings_ms.get("total", 0.0) > 2000:
        level = logging.WARNING
    log_event(
        logger,
        "race_poll",
        level,
        race_id=result.race_id,
        outcome=result.outcome,
        failed_stage=result.failed_stage,
        failure_kind=result.failure_kind or None,
        detail=result.message or None,
        status=result.status,
        polled_at_ms=result.polled_at_ms,
        fetch_ms=_round(result.timings_ms.get("fetch")),
        state_ms=_round(result.timings_ms.get("state")),
        transform_ms=_round(result.timings_ms.get("transform")),
        write_ms=_round(result.timings_ms.get("write")),
        total_ms=_round(result.timings_ms.get("total")),
        attempts=result.attempts,
        payload_bytes=result.payload_bytes,
        rows=result.rows,
        quality_findings=result.quality_findings,
        **context,
    )


def _epoch_ms(rfc3339: str | None) -> int | None:
    """An RFC 3339 instant as epoch ms (None when absent or unreadable)."""
    if not rfc3339:
        return None
    try:
        instant = datetime.fromisoformat(rfc3339)
    except ValueError:
        return None
    return to_epoch_ms(instant) if instant.tzinfo is not None else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
