"""WriteRaceUpdate: one race poll, one pooled connection, one transaction, one round trip (storage §6).

The request arrives as bytes and never becomes a Python message: the Rust core checks the
update and renders each section as a JSON document (`raceday_core.write_document`), and
PostgreSQL runs the steps of §6.1, in order, inside `raceday_write_poll`
(migrations/0002_write_poll.sql, with the poll's alerts since 0004_race_alerts.sql: the moves
at or above the indicator threshold go to race_alerts in the same transaction, once per race,
runner, kind and bucket). The call is the transaction (the connection is in
autocommit mode), so a poll costs one round trip and one statement whose plans the server has
cached. The
update's identity (race_id, polled_at) is recorded in race_polls in the same transaction:
a second delivery finds it, the function raises RDDUP and the poll is rolled back, writing
nothing. Any error rolls back the whole poll. A missing partition (SQLSTATE 23514) is
recovered outside the transaction: the connection is released, the partition is created on
the maintenance connection and the write retried once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import psycopg

import raceday_core
from services.common.clock import Clock
from services.common.logs import log_event
from services.common.nztime import from_epoch_ms, nz_date, to_epoch_ms
from services.writer import metrics
from services.writer.db import Database
from services.writer.errors import InvalidArgumentError
from services.writer.settings import WriterSettings

logger = logging.getLogger(__name__)

EnsureDays = Callable[[Iterable[date]], Awaitable[object]]

WRITE_POLL: Final = """
SELECT races_written, entrants_written, money_flow_rows, odds_rows, pools_written, results_written,
       change_id, committed_at, alert_kinds
FROM raceday_write_poll(%s, %s::timestamptz, %s::timestamptz, %s, %s, %s::json, %s::json, %s::json,
                        %s::json, %s::json, %s::json, %s::json, %s::json)
"""
# Raised by raceday_write_poll when (race_id, polled_at) is already in race_polls.
ALREADY_WRITTEN_SQLSTATE: Final = "RDDUP"
REAL_CLOCK: Final = Clock()


@dataclass(slots=True)
class WriteResult:
    """What one write did (all zero when the update had already been written)."""

    written: bool
    entrants_written: int = 0
    money_flow_rows: int = 0
    odds_rows: int = 0
    pools_written: bool = False
    results_written: bool = False
    races_written: int = 0
    # The announced change (services/writer/changes.py) and the commit time.
    change_id: int | None = None
    committed_at: datetime | None = None
    # The kind of each race_alerts row this write created (none for a move already alerted).
    alert_kinds: list[str] = field(default_factory=list)

    @property
    def alerts(self) -> int:
        """Alerts this write created."""
        return len(self.alert_kinds)


def render(request: bytes) -> raceday_core.WriteDocument:
    """Check and render a serialised WriteRaceUpdateRequest (InvalidArgumentError when it is bad)."""
    try:
        document = raceday_core.write_document(request)
    except ValueError as exc:
        raise InvalidArgumentError(str(exc)) from None
    if document.entrants_without_id:
        # Never invent ids (pitfall 32): a runner without one is skipped.
        log_event(
            logger,
            "entrant_without_id_skipped",
            logging.WARNING,
            race_id=document.race_id,
            count=document.entrants_without_id,
        )
    for entrant_id in document.duplicate_entrant_ids:
        log_event(logger, "duplicate_key_in_batch", logging.WARNING, what="entrants", key=entrant_id)
    return document


def series_days(document: raceday_core.WriteDocument) -> set[date]:
    """The NZ racing days whose partitions the update's series rows go to."""
    return {nz_date(from_epoch_ms(micros // 1000)) for micros in document.series_instants_us}


def is_missing_partition(exc: BaseException) -> bool:
    """True for "no partition of relation ... found for row" (SQLSTATE 23514)."""
    if not isinstance(exc, psycopg.errors.CheckViolation):
        return False
    message = exc.diag.message_primary or ""
    return message.startswith("no partition of relation")


async def write_race_update(
    db: Database, request: bytes, *, ensure_days: EnsureDays, clock: Clock = REAL_CLOCK
) -> WriteResult:
    """Write one serialised WriteRaceUpdateRequest; recovers a missing partition once.

    `ensure_days` creates partitions on the maintenance path.
    """
    try:
        document = render(request)
    except InvalidArgumentError as exc:
        metrics.WRITES.labels("failed").inc()
        log_event(logger, "race_write_failed", logging.WARNING, error="InvalidArgumentError", detail=str(exc))
        raise
    kind = "baseline" if document.baseline else "poll"
    started = time.perf_counter()
    try:
        try:
            result = await _write_once(db, document)
        except psycopg.errors.CheckViolation as exc:
            if not is_missing_partition(exc):
                raise
            # The connection is back in the pool here; DDL runs on the maintenance connection.
            days = series_days(document)
            log_event(
                logger,
                "missing_partition",
                logging.ERROR,
                race_id=document.race_id,
                dates=sorted(d.isoformat() for d in days),
                detail=(exc.diag.message_primary or "")[:200],
            )
            metrics.MISSING_PARTITIONS.inc()
            await ensure_days(days)
            result = await _write_once(db, document)
    except Exception as exc:
        metrics.WRITES.labels("failed").inc()
        log_event(
            logger,
            "race_write_failed",
            logging.WARNING,
            race_id=document.race_id,
            error=type(exc).__name__,
            sqlstate=getattr(exc, "sqlstate", None),
        )
        raise
    metrics.WRITE_SECONDS.labels(kind).observe(time.perf_counter() - started)
    metrics.WRITES.labels("written" if result.written else "duplicate").inc()
    if result.written:
        _count_rows(result)
        if document.generated_at is not None and result.committed_at is not None:
            # generated_time is on the TAB's clock (the simulated one under --sim-speed); so is the
            # commit, read on the same clock.
            generated_ms = to_epoch_ms(datetime.fromisoformat(document.generated_at))
            committed_ms = clock.at_real_ms(to_epoch_ms(result.committed_at))
            metrics.DATA_AGE_AT_COMMIT.observe((committed_ms - generated_ms) / 1000)
    return result


def _count_rows(result: WriteResult) -> None:
    rows = metrics.ROWS_WRITTEN
    if result.races_written:
        rows.labels("races").inc(result.races_written)
    if result.entrants_written:
        rows.labels("entrants").inc(result.entrants_written)
    if result.money_flow_rows:
        rows.labels("money_flow_history").inc(result.money_flow_rows)
    if result.odds_rows:
        rows.labels("odds_history").inc(result.odds_rows)
    if result.pools_written:
        rows.labels("race_pools").inc()
    if result.results_written:
        rows.labels("race_results").inc()
    for kind, created in Counter(result.alert_kinds).items():
        metrics.ALERTS_CREATED.labels(kind).inc(created)


def _params(document: raceday_core.WriteDocument, settings: WriterSettings) -> tuple[Any, ...]:
    return (
        document.race_id,
        document.polled_at,
        document.generated_at,
        document.baseline,
        str(settings.lock_timeout_ms),
        document.meeting,
        document.race,
        document.entrants,
        document.money_flow,
        document.odds,
        document.pools,
        document.results,
        document.alerts,
    )


async def _write_once(db: Database, document: raceday_core.WriteDocument) -> WriteResult:
    async with db.write_connection() as conn:
        try:
            # An autocommit connection: the one statement is the poll's whole transaction.
            cursor = await conn.execute(WRITE_POLL, _params(document, db.settings), prepare=True)
        except psycopg.Error as exc:
            if exc.sqlstate == ALREADY_WRITTEN_SQLSTATE:
                return WriteResult(written=False)
            raise
        row = await cursor.fetchone()
    if row is None:
        raise RuntimeError("raceday_write_poll returned no row")
    races, entrants, money_flow, odds, pools, results, change_id, committed_at, alert_kinds = row
    return WriteResult(
        written=True,
        races_written=races,
        entrants_written=entrants,
        money_flow_rows=money_flow,
        odds_rows=odds,
        pools_written=pools,
        results_written=results,
        change_id=change_id,
        committed_at=committed_at,
        alert_kinds=list(alert_kinds),
    )
