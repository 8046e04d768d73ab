"""Catch-up: writes the spooled polls once the commit path is back, each race's in poll order.

One poll at a time, the race with the oldest waiting poll first: each is transformed against
the committed state of the poll before it (RacePipeline.commit_spooled) and removed from the
spool once committed, or found committed already (never twice). While the commit breaker is
open nothing is tried; when it half-opens, one spooled poll is the trial. A payload the
transformer refuses can never be written: it is dropped and counted, the rest go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.common.clock import Clock
from services.common.logs import log_event
from services.fetcher import spool as spool_metrics
from services.fetcher.pipeline import PollResult, RacePipeline
from services.fetcher.spool import PollSpool

logger = logging.getLogger(__name__)

IDLE_CHECK_S = 0.5


class SpoolDrainer:
    """The background task that empties the spool."""

    def __init__(self, pipeline: RacePipeline, spool: PollSpool, clock: Clock) -> None:
        self._pipeline = pipeline
        self._spool = spool
        self._clock = clock
        self._stopping = asyncio.Event()
        self.committed = 0

    def stop(self) -> None:
        """Finish the poll in hand, then stop."""
        self._stopping.set()

    async def run(self) -> None:
        """Drain until stopped."""
        while not self._stopping.is_set():
            if not await self.drain_one():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._pause_s())

    def _pause_s(self) -> float:
        retry_in = self._pipeline.commit_breaker.retry_in_s
        return min(max(retry_in, 0.05), IDLE_CHECK_S) if retry_in else IDLE_CHECK_S

    async def drain_one(self) -> bool:
        """Try the oldest waiting poll; True when one was committed (so go on at once)."""
        self._spool.enforce_bounds(self._clock.now_ms())
        races = self._spool.races()
        if not races:
            return False
        breaker = self._pipeline.commit_breaker
        if not breaker.allow():
            return False
        entry = self._spool.first(races[0])
        if entry is None:
            breaker.release()
            return False
        result = await self._pipeline.commit_spooled(entry)
        if result.outcome == "ok":
            breaker.record_success()
            await asyncio.to_thread(self._spool.remove, entry)
            spool_metrics.CAUGHT_UP.inc()
            self.committed += 1
            _log(result, "caught_up")
            return True
        if result.transient:
            breaker.record_failure(result.failure_kind)
            return False
        # Refused for good (a payload the transformer cannot use): it would block its race forever.
        breaker.release()
        await asyncio.to_thread(self._spool.drop, entry, "invalid")
        _log(result, "refused")
        return True


def _log(result: PollResult, what: str) -> None:
    log_event(
        logger,
        "spooled_poll",
        logging.INFO if what == "caught_up" else logging.WARNING,
        race_id=result.race_id,
        polled_at_ms=result.polled_at_ms,
        result=what,
        failed_stage=result.failed_stage,
        failure_kind=result.failure_kind or None,
        detail=result.message or None,
        rows=result.rows,
        total_ms=round(result.timings_ms.get("total", 0.0), 2),
    )
