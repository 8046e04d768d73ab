"""The race scheduler (spec/scheduling.md §2-4).

Every `evaluate_every_s` it asks the writer which races are candidates and keeps
the ones its shard owns. A dispatcher wakes several times a second, finds due
races and starts their polls through a bounded pool, 15 s tier first. Polls of
one race never overlap: a slot that falls due while the previous poll is still
in flight is skipped and counted as missed, and so is a poll that starts more
than one interval late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

from services.common.clock import Clock
from services.common.logs import log_event
from services.common.proto.raceday.v1 import writer_pb2
from services.common.status import is_terminal
from services.common.timestamps import timestamp_from_ms
from services.fetcher import metrics
from services.fetcher.alignment import RefreshPhase
from services.fetcher.cadence import TIER_SECONDS, TIERS, Tier, poll_tier
from services.fetcher.pipeline import PollResult, RacePipeline, log_poll
from services.fetcher.settings import FetcherSettings

if TYPE_CHECKING:
    from services.common.proto.raceday.v1.writer_pb2_grpc import WriterServiceAsyncStub

logger = logging.getLogger(__name__)

# Consecutive 404s after which a race is dropped (scheduling §4.1).
MAX_NOT_FOUND = 3
# The fetch must end before the next poll is due: at most this share of the interval, and 10 s.
FETCH_BUDGET_SHARE = 0.75
FETCH_BUDGET_MAX_S = 10.0
# The TAB client starts no attempt with less than 1 s of budget; keep accelerated clocks workable.
FETCH_BUDGET_MIN_REAL_S = 1.2
DISPATCH_EVERY_REAL_S = 0.25


@dataclass(slots=True)
class TrackedRace:
    """The scheduler's view of one race."""

    race_id: str
    meeting_name: str
    race_number: int
    status: str
    start_time_ms: int
    next_due_ms: int
    last_started_ms: int | None = None
    in_flight: bool = False
    not_found_streak: int = 0
    polls: int = 0
    first_polled_ms: int | None = None
    # Slots skipped (and counted missed) while the previous poll was in flight, up to this due time.
    skipped_until_ms: int | None = None
    # The TAB's refresh phase of this race, and how far the next poll is moved to follow it.
    phase: RefreshPhase | None = None
    align_ms: int = 0

    def tier(self, now_ms: int) -> Tier | None:
        """The current cadence tier (None once terminal)."""
        return poll_tier(self.status, (self.start_time_ms - now_ms) / 1000)


@dataclass(slots=True)
class TickStats:
    """Counts since the last scheduler tick."""

    started: int = 0
    succeeded: int = 0
    spooled: int = 0
    failed: int = 0
    missed: Counter[str] = field(default_factory=Counter)
    max_lateness_ms: float = 0.0
    max_total_ms_15s: float = 0.0


class Scheduler:
    """Owns the polling schedule of one fetcher replica."""

    def __init__(
        self,
        settings: FetcherSettings,
        pipeline: RacePipeline,
        writer: WriterServiceAsyncStub,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._writer = writer
        self._clock = clock
        self._races: dict[str, TrackedRace] = {}
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._evaluate_soon = asyncio.Event()
        self._tick = TickStats()
        self.totals: Counter[str] = Counter()
        self.missed_by_tier: Counter[str] = Counter()
        self.polls_by_tier: Counter[str] = Counter()

    @property
    def races(self) -> dict[str, TrackedRace]:
        """Races currently scheduled, by id."""
        return self._races

    @property
    def inflight(self) -> int:
        """Polls in flight."""
        # `_running` moves with every race's `in_flight` flag (set and cleared together).
        return self._running

    async def run(self) -> None:
        """Evaluate and dispatch until `stop()`."""
        self.adopt_spooled()
        evaluator = asyncio.create_task(self._evaluate_loop())
        try:
            await self._dispatch_loop()
        finally:
            evaluator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await evaluator

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop dispatching and let in-flight polls finish (up to `grace_s`)."""
        self._stopping.set()
        self._wake.set()
        self._evaluate_soon.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                task.cancel()

    def request_evaluation(self) -> None:
        """Select races now rather than at the next tick (e.g. the baseline has just stored the day)."""
        self._evaluate_soon.set()

    # --- selection --------------------------------------------------------------------------------

    def adopt_spooled(self) -> None:
        """Schedule the races whose polls wait in the spool, as their last payload showed them.

        After a restart during an outage storage cannot say which races to poll; the races
        this replica was polling can still be polled at their cadence and spooled.
        """
        spool = self._pipeline.spool
        if spool is None:
            return
        now_ms = self._clock.now_ms()
        for race_id in spool.races():
            latest = spool.latest(race_id)
            if latest is None or latest.start_time_ms is None or race_id in self._races:
                continue
            if is_terminal(latest.status) or not self._settings.shard.owns(race_id):
                continue
            self._races[race_id] = TrackedRace(
                race_id=race_id,
                meeting_name="",
                race_number=0,
                status=latest.status,
                start_time_ms=latest.start_time_ms,
                next_due_ms=now_ms,
            )
            log_event(
                logger, "race_scheduled", race_id=race_id, source="spool", start_time_ms=latest.start_time_ms
            )

    async def evaluate(self) -> None:
        """Ask storage for candidate races and add the ones this shard owns (first poll at once)."""
        now_ms = self._clock.now_ms()
        request = writer_pb2.ListSchedulableRacesRequest(
            lookahead_minutes=self._settings.lookahead_min,
            post_start_max_minutes=self._settings.post_start_max_min,
            now=timestamp_from_ms(now_ms),
        )
        response: writer_pb2.ListSchedulableRacesResponse = await self._writer.ListSchedulableRaces(
            request, timeout=5.0
        )
        added = 0
        for candidate in response.races:
            if not self._settings.shard.owns(candidate.race_id):
                continue
            known = self._races.get(candidate.race_id)
            if known is not None:
                if known.start_time_ms != candidate.start_time_ms and not known.in_flight:
                    self._start_changed(known, candidate.start_time_ms)
                if not known.meeting_name:  # adopted from the spool
                    known.meeting_name, known.race_number = candidate.meeting_name, candidate.race_number
                continue
            race = TrackedRace(
                race_id=candidate.race_id,
                meeting_name=candidate.meeting_name,
                race_number=candidate.race_number,
                status=candidate.status,
                start_time_ms=candidate.start_time_ms,
                next_due_ms=now_ms,
            )
            self._races[race.race_id] = race
            added += 1
            tier = race.tier(now_ms)
            log_event(
                logger,
                "race_scheduled",
                race_id=race.race_id,
                meeting_name=race.meeting_name,
                race_number=race.race_number,
                start_time_ms=race.start_time_ms,
                tts_s=(race.start_time_ms - now_ms) / 1000,
                interval_s=TIER_SECONDS[tier] if tier else None,
            )
        dropped = self._drop_stale(now_ms)
        self._log_tick(now_ms, added, dropped)
        self._wake.set()

    async def _evaluate_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.evaluate()
            except grpc.aio.AioRpcError as exc:
                log_event(
                    logger,
                    "scheduler_evaluate_failed",
                    logging.WARNING,
                    code=exc.code().name,
                    details=exc.details(),
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._evaluate_soon.wait(), self._clock.to_real_seconds(self._settings.evaluate_every_s)
                )
            self._evaluate_soon.clear()

    def _drop_stale(self, now_ms: int) -> int:
        limit_ms = self._settings.post_start_max_min * 60_000
        stale = [
            race
            for race in self._races.values()
            if not race.in_flight and now_ms > race.start_time_ms + limit_ms and not is_terminal(race.status)
        ]
        for race in stale:
            self._drop(race, "stale", logging.WARNING)
        return len(stale)

    def _untrack(self, race: TrackedRace) -> None:
        # A race leaves the schedule together with its cached state: a re-added race re-reads storage.
        self._races.pop(race.race_id, None)
        self._pipeline.forget(race.race_id)

    def _drop(self, race: TrackedRace, reason: str, level: int = logging.INFO) -> None:
        self._untrack(race)
        log_event(logger, "race_dropped", level, race_id=race.race_id, reason=reason, polls=race.polls)

    def _start_changed(self, race: TrackedRace, new_start_ms: int) -> None:
        log_event(
            logger,
            "race_start_changed",
            race_id=race.race_id,
            old_start_ms=race.start_time_ms,
            new_start_ms=new_start_ms,
        )
        race.start_time_ms = new_start_ms

    # --- dispatch ---------------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        wake_s = min(DISPATCH_EVERY_REAL_S, self._clock.to_real_seconds(DISPATCH_EVERY_REAL_S))
        while not self._stopping.is_set():
            self.dispatch_due()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wake_s)

    def dispatch_due(self) -> None:
        """Start every due poll a worker is free for, 15 s tier first, earliest start first."""
        now_ms = self._clock.now_ms()
        due: list[tuple[int, int, TrackedRace, Tier]] = []
        # Counted here so the gauges need no second tier pass over every race on each dispatch.
        active: Counter[Tier | None] = Counter()
        for race in self._races.values():
            tier = race.tier(now_ms)
            active[tier] += 1
            if tier is None:
                continue
            interval_ms = TIER_SECONDS[tier] * 1000
            if race.last_started_ms is not None:
                # A tighter tier applies from the next slot: as the start nears (60 s -> 30 s -> 15 s),
                # the race is due one new interval after its last poll started, not one old interval.
                tighter_ms = race.last_started_ms + interval_ms + race.align_ms
                if race.skipped_until_ms is not None:
                    # Not back before slots already counted missed (each slot is counted once).
                    tighter_ms = max(tighter_ms, race.skipped_until_ms)
                race.next_due_ms = min(race.next_due_ms, tighter_ms)
            if race.in_flight:
                # Skip the slots that fell due while the previous poll was still running.
                while now_ms >= race.next_due_ms + interval_ms:
                    self._missed(race, tier, "poll_in_flight")
                    race.next_due_ms += interval_ms
                    race.skipped_until_ms = race.next_due_ms
                continue
            if now_ms >= race.next_due_ms:
                due.append((TIERS.index(tier), race.start_time_ms, race, tier))
        due.sort(key=lambda item: (item[0], item[1]))
        free = self._settings.max_concurrent_polls - self._running
        for _, _, race, tier in due[: max(free, 0)]:
            self._start_poll(race, tier, now_ms)
        self._update_gauges(now_ms, active)

    def _missed(self, race: TrackedRace, tier: Tier, reason: str) -> None:
        metrics.MISSED_POLLS.labels(tier).inc()
        self.missed_by_tier[tier] += 1
        self._tick.missed[tier] += 1
        log_event(
            logger, "race_poll_skipped", logging.WARNING, race_id=race.race_id, tier=tier, reason=reason
        )

    def _start_poll(self, race: TrackedRace, tier: Tier, now_ms: int) -> None:
        interval_ms = TIER_SECONDS[tier] * 1000
        lateness_ms = now_ms - race.next_due_ms
        if lateness_ms > interval_ms:
            self._missed(race, tier, "started_late")
        race.skipped_until_ms = None
        metrics.POLL_LATENESS_SECONDS.observe(max(lateness_ms, 0) / 1000)
        self._tick.max_lateness_ms = max(self._tick.max_lateness_ms, lateness_ms)
        race.in_flight = True
        self._running += 1
        race.last_started_ms = now_ms
        race.next_due_ms = now_ms + interval_ms
        budget_s = max(
            FETCH_BUDGET_MIN_REAL_S,
            self._clock.to_real_seconds(min(FETCH_BUDGET_MAX_S, FETCH_BUDGET_SHARE * TIER_SECONDS[tier])),
        )
        task = asyncio.create_task(self._run_poll(race, tier, budget_s, lateness_ms))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_poll(self, race: TrackedRace, tier: Tier, budget_s: float, lateness_ms: int) -> None:
        metrics.INFLIGHT_POLLS.inc()
        self._tick.started += 1
        status_before = race.status
        try:
            result = await self._pipeline.poll(race.race_id, fetch_budget_s=budget_s)
        except Exception:  # a bug must not stop the scheduler; the race stays scheduled
            logger.exception("race_poll_crashed", extra={"race_id": race.race_id})
            result = PollResult(race_id=race.race_id, outcome="failed", failure_kind="crash")
        finally:
            metrics.INFLIGHT_POLLS.dec()
            race.in_flight = False
            self._running -= 1
        self._after_poll(race, tier, result, status_before, lateness_ms)
        self._wake.set()

    def _after_poll(
        self, race: TrackedRace, tier: Tier, result: PollResult, status_before: str, lateness_ms: int
    ) -> None:
        race.polls += 1
        self.polls_by_tier[tier] += 1
        self.totals[result.outcome] += 1
        metrics.POLLS.labels(result.outcome, tier).inc()
        race.align_ms = self._alignment(race, result)
        if result.outcome in ("ok", "spooled"):
            # A spooled poll is not missed: the TAB answered and the poll is kept.
            if result.outcome == "ok":
                self._tick.succeeded += 1
            else:
                self._tick.spooled += 1
            race.not_found_streak = 0
            if result.start_time_ms is not None and result.start_time_ms != race.start_time_ms:
                self._start_changed(race, result.start_time_ms)
            if result.status is not None:
                race.status = result.status
        else:
            self._tick.failed += 1
            race.not_found_streak = race.not_found_streak + 1 if result.not_found else 0
        if tier == "15s":
            self._tick.max_total_ms_15s = max(
                self._tick.max_total_ms_15s, result.timings_ms.get("total", 0.0)
            )
        log_poll(
            result,
            meeting_name=race.meeting_name,
            race_number=race.race_number,
            replica=str(self._settings.shard),
            tier=tier,
            interval_s=TIER_SECONDS[tier],
            tts_s=round((race.start_time_ms - (race.last_started_ms or 0)) / 1000, 1),
            status_before=status_before,
            lateness_ms=lateness_ms,
        )
        # The interval follows the new status and start: next due = last start + new interval.
        new_tier = race.tier(self._clock.now_ms())
        if new_tier is not None and race.last_started_ms is not None:
            if new_tier != tier:
                log_event(
                    logger,
                    "race_interval_changed",
                    race_id=race.race_id,
                    old_interval_s=TIER_SECONDS[tier],
                    new_interval_s=TIER_SECONDS[new_tier],
                )
            next_due_ms = race.last_started_ms + TIER_SECONDS[new_tier] * 1000 + race.align_ms
            # Slots already counted as missed while the poll was in flight are not due again
            # (each slot is counted at most once).
            if race.skipped_until_ms is not None:
                next_due_ms = max(next_due_ms, race.skipped_until_ms)
            race.next_due_ms = next_due_ms
        if is_terminal(race.status):
            self._untrack(race)
            log_event(
                logger,
                "race_polling_completed",
                race_id=race.race_id,
                final_status=race.status,
                polls=race.polls,
            )
        elif race.not_found_streak >= MAX_NOT_FOUND:
            self._drop(race, "not_found", logging.WARNING)

    def _alignment(self, race: TrackedRace, result: PollResult) -> int:
        """How far to move the race's next poll to come just after the TAB's next refresh."""
        if not self._settings.cache_align or result.polled_at_ms is None:
            return 0
        if race.phase is None:
            race.phase = RefreshPhase(margin_ms=round(self._settings.cache_align_margin_s * 1000))
        delay_ms = race.phase.observe(result.polled_at_ms, result.generated_at_ms)
        if delay_ms:
            log_event(
                logger,
                "race_poll_aligned",
                race_id=race.race_id,
                delay_ms=delay_ms,
                data_age_ms=result.polled_at_ms - (result.generated_at_ms or 0),
            )
        return delay_ms

    # --- reporting --------------------------------------------------------------------------------

    def active_by_tier(self, now_ms: int) -> dict[Tier, int]:
        """How many scheduled races are in each cadence tier now."""
        return _by_tier(Counter(race.tier(now_ms) for race in self._races.values()))

    def _update_gauges(self, now_ms: int, active: Counter[Tier | None]) -> None:
        for tier, count in _by_tier(active).items():
            metrics.ACTIVE_RACES.labels(tier).set(count)
        if self._pipeline.last_success_ms is not None:
            metrics.DATA_AGE_SECONDS.set(max(0, now_ms - self._pipeline.last_success_ms) / 1000)

    def _log_tick(self, now_ms: int, added: int, dropped: int) -> None:
        tick, self._tick = self._tick, TickStats()
        log_event(
            logger,
            "scheduler_tick",
            active=self.active_by_tier(now_ms),
            added=added,
            dropped=dropped,
            polls_started=tick.started,
            polls_succeeded=tick.succeeded,
            polls_spooled=tick.spooled,
            polls_failed=tick.failed,
            missed=dict(tick.missed),
            max_lateness_ms=tick.max_lateness_ms,
            max_total_ms_15s=round(tick.max_total_ms_15s, 2),
            inflight=self.inflight,
            breaker=self._pipeline.breaker_state,
        )


def _by_tier(counts: Counter[Tier | None]) -> dict[Tier, int]:
    """Per-tier counts in TIERS order (terminal races, tier None, left out)."""
    return {tier: counts.get(tier, 0) for tier in TIERS}
