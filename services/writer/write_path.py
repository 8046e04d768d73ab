"""WriteRaceUpdate: one race poll, one pooled connection, one transaction (storage §6).

Order inside the transaction (§6.1): timeouts, meeting, race, the poll's identity,
entrants, money-flow COPY, odds COPY, pools, results, meeting status, COMMIT. The
statements before and after the COPYs are pipelined, so a poll costs a handful of round
trips, and the series are rendered while the server works through the first pipeline.
(The multi-row INSERT alternative, for `raceday bench write`, keeps the same order in one
pipeline.) The update's identity (race_id, polled_at) is recorded in race_polls in the same
transaction: a second delivery finds it and rolls back, writing nothing. Any error rolls
back the whole poll. A missing partition (SQLSTATE 23514) is recovered outside the
transaction: the connection is released, the partition is created on the maintenance
connection and the write retried once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import psycopg
from psycopg import AsyncConnection, AsyncCursor

from services.common.logs import log_event
from services.common.proto.raceday.v1 import race_pb2
from services.common.protofields import opt, opt_ts
from services.common.status import RACE_STATUSES
from services.common.timestamps import ts_to_datetime
from services.writer import metrics, series, statements
from services.writer.db import Database, safe_rollback
from services.writer.errors import InvalidArgumentError
from services.writer.settings import WriterSettings
from services.writer.upsert import chunks, dedupe

logger = logging.getLogger(__name__)

SeriesMode = Literal["copy", "insert"]
CATEGORIES = frozenset({"T", "H", "G"})
EnsureDays = Callable[[Iterable[date]], Awaitable[object]]


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


@dataclass(slots=True)
class PreparedWrite:
    """Validated parameters of one update, built before any connection is taken."""

    race_id: str
    polled_at: datetime
    baseline: bool
    meeting: dict[str, Any]
    race: dict[str, Any]
    race_has_protest: bool
    entrants_with_flow: list[dict[str, Any]]
    entrants_without_flow: list[dict[str, Any]]
    money_flow: Sequence[race_pb2.MoneyFlowRow]
    odds: Sequence[race_pb2.OddsChange]
    pools: dict[str, Any] | None
    results: dict[str, Any] | None
    series_days: set[date] = field(default_factory=set)


class _AlreadyWrittenError(Exception):
    """Internal: the update's identity exists; roll back."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidArgumentError(message)


def _valid_date(text: str, what: str) -> str:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise InvalidArgumentError(f"{what} must be YYYY-MM-DD, got {text[:20]!r}") from None
    return text


def _json_text(text: str | None) -> str | None:
    return text if text else None


def race_params(race: race_pb2.Race, race_id: str) -> tuple[dict[str, Any], bool]:
    """Column values of a Race message (absent optionals are None) and whether it carries `protest`."""
    _require(race.meeting_id != "", "race.meeting_id is required")
    _require(race.name != "", "race.name is required")
    _require(race.status in RACE_STATUSES, f"race.status must be one of {', '.join(RACE_STATUSES)}")
    _require(race.race_number >= 0, "race.race_number must be >= 0")
    _require(race.HasField("start_time"), "race.start_time is required")
    type_ = opt(race, "type")
    _require(type_ is None or type_ in CATEGORIES, "race.type must be T, H or G")
    params: dict[str, Any] = {
        "race_id": race_id,
        "meeting_id": race.meeting_id,
        "race_number": race.race_number,
        "name": race.name,
        "status": race.status,
        "status_raw": opt(race, "status_raw"),
        "start_time": ts_to_datetime(race.start_time),
        "actual_start": opt_ts(race, "actual_start"),
        "race_date_nz": _valid_date(race.race_date_nz, "race.race_date_nz"),
        "start_time_nz": opt(race, "start_time_nz"),
        "tote_start_time": opt(race, "tote_start_time"),
        "type": type_,
        "country": opt(race, "country"),
        "state": opt(race, "state"),
        "distance": opt(race, "distance"),
        "track_condition": opt(race, "track_condition"),
        "track_surface": opt(race, "track_surface"),
        "track_direction": opt(race, "track_direction"),
        "weather": opt(race, "weather"),
        "rail_position": opt(race, "rail_position"),
        "race_class": opt(race, "race_class"),
        "entrant_count": opt(race, "entrant_count"),
        "field_size": opt(race, "field_size"),
        "positions_paid": opt(race, "positions_paid"),
        "total_prize_money": opt(race, "total_prize_money"),
        "silk_url": opt(race, "silk_url"),
        "silk_base_url": opt(race, "silk_base_url"),
        "video_channels": json.dumps(list(race.video_channels)) if race.video_channels else None,
        "protest_reason": opt(race, "protest_reason"),
        "protest": opt(race, "protest"),
    }
    return params, race.HasField("protest")


def meeting_params(meeting: race_pb2.Meeting) -> dict[str, Any]:
    """Column values of a Meeting message (absent optionals are None)."""
    _require(meeting.meeting_id != "", "meeting.meeting_id is required")
    _require(meeting.meeting_name != "", "meeting.meeting_name is required")
    _require(meeting.category in CATEGORIES, "meeting.category must be T, H or G")
    return {
        "meeting_id": meeting.meeting_id,
        "meeting_name": meeting.meeting_name,
        "date": _valid_date(meeting.date, "meeting.date"),
        "country": meeting.country,
        "state": opt(meeting, "state"),
        "category": meeting.category,
        "category_name": opt(meeting, "category_name"),
        "track_condition": opt(meeting, "track_condition"),
        "weather": opt(meeting, "weather"),
        "tote_status": opt(meeting, "tote_status"),
        "tote_meeting_number": opt(meeting, "tote_meeting_number"),
    }


def _entrant_params(entrant: race_pb2.Entrant, race_id: str, polled_at: datetime) -> dict[str, Any]:
    return {
        "entrant_id": entrant.entrant_id,
        "race_id": race_id,
        "runner_number": entrant.runner_number,
        "name": entrant.name,
        "barrier": opt(entrant, "barrier"),
        "barrier_position": opt(entrant, "barrier_position"),
        "jockey": opt(entrant, "jockey"),
        "trainer_name": opt(entrant, "trainer_name"),
        "silk_colours": opt(entrant, "silk_colours"),
        "silk_url_64x64": opt(entrant, "silk_url_64x64"),
        "silk_url_128x128": opt(entrant, "silk_url_128x128"),
        "is_scratched": entrant.is_scratched,
        "is_late_scratched": entrant.is_late_scratched,
        "scratch_time": opt_ts(entrant, "scratch_time"),
        "favourite": entrant.favourite,
        "mover": entrant.mover,
        "runner_change": _json_text(opt(entrant, "runner_change_json")),
        "fixed_win_odds": opt(entrant, "fixed_win_odds"),
        "fixed_place_odds": opt(entrant, "fixed_place_odds"),
        "pool_win_odds": opt(entrant, "pool_win_odds"),
        "pool_place_odds": opt(entrant, "pool_place_odds"),
        "hold_percentage": opt(entrant, "hold_percentage"),
        "bet_percentage": opt(entrant, "bet_percentage"),
        "win_pool_percentage": opt(entrant, "win_pool_percentage"),
        "place_pool_percentage": opt(entrant, "place_pool_percentage"),
        "win_pool_amount": opt(entrant, "win_pool_amount"),
        "place_pool_amount": opt(entrant, "place_pool_amount"),
        "money_flow_at": opt_ts(entrant, "money_flow_at") or polled_at,
    }


def _pools_params(pools: race_pb2.RacePools, race_id: str, polled_at: datetime) -> dict[str, Any]:
    return {
        "race_id": race_id,
        "win_pool_total": pools.win_pool_total,
        "place_pool_total": pools.place_pool_total,
        "quinella_pool_total": pools.quinella_pool_total,
        "trifecta_pool_total": pools.trifecta_pool_total,
        "exacta_pool_total": pools.exacta_pool_total,
        "first4_pool_total": pools.first4_pool_total,
        "total_race_pool": pools.total_race_pool,
        "currency": pools.currency or "$",
        "extracted_pools": pools.extracted_pools,
        "data_quality_score": pools.data_quality_score,
        "source": pools.source,
        "last_updated": opt_ts(pools, "last_updated") or polled_at,
    }


def _results_params(results: race_pb2.RaceResults, race_id: str) -> dict[str, Any]:
    status = opt(results, "result_status")
    _require(status is None or status in ("interim", "final", "protest"), "results.result_status is invalid")
    return {
        "race_id": race_id,
        "results_available": results.results_available,
        "results_data": _json_text(results.results_data_json),
        "dividends_data": _json_text(results.dividends_data_json),
        "fixed_odds_data": _json_text(results.fixed_odds_data_json),
        "result_status": status,
        "photo_finish": results.photo_finish,
        "stewards_inquiry": results.stewards_inquiry,
        "protest_lodged": results.protest_lodged,
        "result_time": opt_ts(results, "result_time"),
    }


def prepare_write(update: race_pb2.RaceUpdate, *, baseline: bool) -> PreparedWrite:
    """Validate an update and build every statement's parameters (raises InvalidArgumentError)."""
    race_id = update.race_id or update.race.race_id
    _require(race_id != "", "race_id is required")
    _require(update.race.race_id in ("", race_id), "race.race_id differs from race_id")
    _require(update.HasField("polled_at"), "polled_at is required")
    polled_at = ts_to_datetime(update.polled_at)
    race, has_protest = race_params(update.race, race_id)
    meeting = meeting_params(update.meeting)
    _require(meeting["meeting_id"] == race["meeting_id"], "meeting.meeting_id differs from race.meeting_id")

    entrants: list[dict[str, Any]] = []
    flow_ids: set[str] = set()
    for entrant in update.entrants:
        if not entrant.entrant_id:
            # Never invent ids (pitfall 32): a runner without one is skipped.
            log_event(logger, "entrant_without_id_skipped", logging.WARNING, race_id=race_id)
            continue
        _require(entrant.race_id in ("", race_id), "entrant.race_id differs from race_id")
        entrants.append(_entrant_params(entrant, race_id, polled_at))
        if entrant.has_money_flow and not baseline:
            flow_ids.add(entrant.entrant_id)
    entrants = dedupe(entrants, lambda e: e["entrant_id"], what="entrants")

    prepared = PreparedWrite(
        race_id=race_id,
        polled_at=polled_at,
        baseline=baseline,
        meeting=meeting,
        race=race,
        race_has_protest=has_protest,
        entrants_with_flow=[e for e in entrants if e["entrant_id"] in flow_ids],
        entrants_without_flow=[e for e in entrants if e["entrant_id"] not in flow_ids],
        money_flow=(),
        odds=(),
        pools=_pools_params(update.pools, race_id, polled_at) if update.HasField("pools") else None,
        results=_results_params(update.results, race_id) if update.HasField("results") else None,
    )
    if prepared.pools is not None:
        _require(prepared.pools["source"] in ("tote_pools", "dividends"), "pools.source is invalid")
    if not baseline:
        prepared.money_flow = update.money_flow
        prepared.odds = update.odds
        prepared.series_days = series.check_money_flow(update.money_flow, race_id) | series.check_odds(
            update.odds, race_id
        )
    return prepared


def is_missing_partition(exc: BaseException) -> bool:
    """True for "no partition of relation ... found for row" (SQLSTATE 23514)."""
    if not isinstance(exc, psycopg.errors.CheckViolation):
        return False
    message = exc.diag.message_primary or ""
    return message.startswith("no partition of relation")


async def write_race_update(
    db: Database,
    update: race_pb2.RaceUpdate,
    *,
    baseline: bool,
    ensure_days: EnsureDays,
    series_mode: SeriesMode = "copy",
) -> WriteResult:
    """Write one update; recovers a missing partition once (`ensure_days` runs on the maintenance path)."""
    prepared = prepare_write(update, baseline=baseline)
    kind = "baseline" if baseline else "poll"
    started = time.perf_counter()
    try:
        try:
            result = await _write_once(db, prepared, series_mode)
        except psycopg.errors.CheckViolation as exc:
            if not is_missing_partition(exc):
                raise
            # The connection is back in the pool here; DDL runs on the maintenance connection.
            log_event(
                logger,
                "missing_partition",
                logging.ERROR,
                race_id=prepared.race_id,
                dates=sorted(d.isoformat() for d in prepared.series_days),
                detail=(exc.diag.message_primary or "")[:200],
            )
            metrics.MISSING_PARTITIONS.inc()
            await ensure_days(prepared.series_days)
            result = await _write_once(db, prepared, series_mode)
    except Exception:
        metrics.WRITES.labels("failed").inc()
        raise
    metrics.WRITE_SECONDS.labels(kind).observe(time.perf_counter() - started)
    metrics.WRITES.labels("written" if result.written else "duplicate").inc()
    if result.written:
        _count_rows(result)
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


async def _write_once(db: Database, prepared: PreparedWrite, series_mode: SeriesMode) -> WriteResult:
    async with db.write_connection() as conn:
        try:
            return await _transaction(conn, prepared, series_mode, db.settings)
        except _AlreadyWrittenError:
            await conn.rollback()
            return WriteResult(written=False)
        except BaseException:
            await safe_rollback(conn)
            raise


async def _transaction(
    conn: AsyncConnection[Any], p: PreparedWrite, series_mode: SeriesMode, settings: WriterSettings
) -> WriteResult:
    entrant_cursors: list[AsyncCursor[Any]] = []
    odds_owned = not p.baseline
    copies: list[tuple[bytes, bytes]] = []
    tail: list[AsyncCursor[Any] | None] = [None, None]  # pools, results
    async with conn.pipeline():
        await conn.execute(statements.SET_TIMEOUTS, statements.timeouts(settings))
        await conn.execute(statements.MEETING_INSERT_MINIMAL, p.meeting)
        if p.meeting["track_condition"] is not None or p.meeting["weather"] is not None:
            await conn.execute(statements.MEETING_REFRESH_CONDITIONS, p.meeting)
        previous = await conn.execute(statements.RACE_PREVIOUS_STATUS, p.race)
        race_stmt = statements.race_upsert("baseline" if p.baseline else "poll", p.race_has_protest)
        race_cur = await conn.execute(race_stmt.query, race_stmt.params([p.race]))
        poll = await conn.execute(
            statements.RACE_POLL_INSERT,
            {"race_id": p.race_id, "polled_at": p.polled_at, "baseline": p.baseline},
        )
        for rows, with_flow in ((p.entrants_with_flow, True), (p.entrants_without_flow, False)):
            stmt = statements.entrant_upsert(odds_owned, with_flow)
            for chunk in chunks(rows):
                entrant_cursors.append(await conn.execute(stmt.query, stmt.params(chunk)))
        if series_mode == "insert":
            # Everything up to the meeting status rides in this one pipeline.
            await _insert_series(conn, p)
            tail = await _pools_and_results(conn, p)
        else:
            # The statements above are on their way; the series are formatted while the server works.
            copies = _copy_payloads(p)
    if await poll.fetchone() is None:
        raise _AlreadyWrittenError
    previous_row = await previous.fetchone()
    status_changed = previous_row is None or previous_row[0] != p.race["status"]
    if copies:
        await _copy_series(conn, copies)
    async with conn.pipeline():
        if series_mode == "copy":
            tail = await _pools_and_results(conn, p)
        if status_changed:
            ids = {"meeting_ids": [p.race["meeting_id"]]}
            await conn.execute(statements.MEETING_STATUS_LOCK, ids)
            await conn.execute(statements.MEETING_STATUS_RECOMPUTE, ids)
        # COMMIT rides in the same pipeline: the steps after the COPYs cost one round trip.
        await conn.commit()
    pools_cur, results_cur = tail
    return WriteResult(
        written=True,
        races_written=max(race_cur.rowcount, 0),
        entrants_written=sum(max(c.rowcount, 0) for c in entrant_cursors),
        money_flow_rows=len(p.money_flow),
        odds_rows=len(p.odds),
        pools_written=pools_cur is not None and pools_cur.rowcount > 0,
        results_written=results_cur is not None and results_cur.rowcount > 0,
    )


async def _pools_and_results(conn: AsyncConnection[Any], p: PreparedWrite) -> list[AsyncCursor[Any] | None]:
    """Queue the pools and results upserts (inside a pipeline); their cursors, None when absent."""
    cursors: list[AsyncCursor[Any] | None] = [None, None]
    if p.pools is not None:
        query = statements.POOLS_INSERT_ONLY if p.baseline else statements.POOLS_UPSERT
        cursors[0] = await conn.execute(query, p.pools)
    if p.results is not None:
        query = statements.RESULTS_INSERT_ONLY if p.baseline else statements.RESULTS_UPSERT
        cursors[1] = await conn.execute(query, p.results)
    return cursors


def _series_rows(p: PreparedWrite) -> tuple[list[series.Row], list[series.Row]]:
    return series.money_flow_rows(p.money_flow, p.race_id), series.odds_rows(p.odds, p.race_id)


def _copy_payloads(p: PreparedWrite) -> list[tuple[bytes, bytes]]:
    """(COPY statement, data) of each non-empty series."""
    money_flow, odds = _series_rows(p)
    return [
        (statement, series.copy_text(rows))
        for rows, statement in ((money_flow, statements.MONEY_FLOW_COPY), (odds, statements.ODDS_COPY))
        if rows
    ]


async def _copy_series(conn: AsyncConnection[Any], payloads: list[tuple[bytes, bytes]]) -> None:
    cur = conn.cursor()
    for statement, data in payloads:
        async with cur.copy(statement) as copy:
            await copy.write(data)


async def _insert_series(conn: AsyncConnection[Any], p: PreparedWrite) -> None:
    """Queue the series as multi-row INSERTs (inside a pipeline)."""
    money_flow, odds = _series_rows(p)
    for rows, query, columns in (
        (money_flow, statements.MONEY_FLOW_INSERT, statements.MONEY_FLOW_COLUMNS),
        (odds, statements.ODDS_INSERT, statements.ODDS_COLUMNS),
    ):
        for chunk in chunks(rows):
            await conn.execute(query, (series.insert_document(chunk, columns),))
