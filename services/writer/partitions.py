"""NZ-racing-day partitions of the time-series tables (storage §3) and of the raw-payload archive.

One partition per table per Pacific/Auckland date D, named `<table>_YYYY_MM_DD`. The series
are ranged on `event_timestamp`, bounded by the NZ midnights of D and D+1 written with
explicit UTC offsets; the archive tables (migrations/0003_poll_archive.sql) are ranged on
their `racing_day` date column, bounded by the dates D and D+1. Creation is
create-then-ATTACH under an advisory lock on the maintenance connection, idempotent
when several writers race; retention detaches (concurrently) and drops old days, each set
of tables with its own retention.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import AsyncConnection, sql

from services.common.logs import log_event
from services.common.nztime import NZ, nz_day_bounds
from services.writer import metrics

logger = logging.getLogger(__name__)

SERIES_TABLES: Final = ("money_flow_history", "odds_history")
# Ranged on their `racing_day` date (the NZ date of the poll) rather than an instant.
ARCHIVE_TABLES: Final = ("archive_payloads", "archive_polls")
PARTITIONED_TABLES: Final = SERIES_TABLES + ARCHIVE_TABLES
# pg_advisory_lock key reserved for partition maintenance ("RDPARTIT" as 8 bytes).
PARTITION_LOCK_KEY = int.from_bytes(b"RDPARTIT", "big") & 0x7FFF_FFFF_FFFF_FFFF
LOCK_WAIT_S = 120.0
STEP_ATTEMPTS = 4
_NAME = re.compile(
    r"^(money_flow_history|odds_history|archive_payloads|archive_polls)_(\d{4})_(\d{2})_(\d{2})$"
)


class PartitionError(Exception):
    """A partition is in a state the routine must not guess about (rows in a detached table, other bounds)."""


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One attached partition."""

    table: str
    name: str
    day: date
    lower: datetime
    upper: datetime
    row_estimate: int | None
    detach_pending: bool


def partition_name(table: str, day: date) -> str:
    """`<table>_YYYY_MM_DD` from the NZ date."""
    if table not in PARTITIONED_TABLES:
        raise ValueError(f"not a partitioned table: {table}")
    return f"{table}_{day:%Y_%m_%d}"


def parse_partition_day(name: str) -> date | None:
    """The NZ date a partition name encodes, or None if the name is not a partition's."""
    match = _NAME.match(name)
    if match is None:
        return None
    return date(int(match.group(2)), int(match.group(3)), int(match.group(4)))


def bound_literal(instant: datetime) -> str:
    """An NZ-local timestamp literal with its explicit offset, e.g. `2025-09-29 00:00:00+13`."""
    local = instant.astimezone(NZ)
    offset = local.utcoffset()
    if offset is None:  # pragma: no cover - NZ always has an offset
        raise ValueError("no UTC offset")
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    suffix = f"{sign}{hours:02d}" if mins == 0 else f"{sign}{hours:02d}:{mins:02d}"
    return f"{local:%Y-%m-%d %H:%M:%S}{suffix}"


def partition_bounds(day: date) -> tuple[str, str]:
    """Lower (inclusive) and upper (exclusive) bound literals of the NZ day's series partition."""
    lower, upper = nz_day_bounds(day)
    return bound_literal(lower), bound_literal(upper)


def _date_keyed(table: str) -> bool:
    return table in ARCHIVE_TABLES


def _partition_key(table: str) -> tuple[str, str]:
    """(column, SQL type) the table is ranged on."""
    if _date_keyed(table):
        return "racing_day", "date"
    return "event_timestamp", "timestamptz"


def table_bounds(table: str, day: date) -> tuple[str, str]:
    """Bound literals of `table`'s partition for the NZ day: instants with offsets, or dates."""
    if _date_keyed(table):
        return day.isoformat(), (day + timedelta(days=1)).isoformat()
    return partition_bounds(day)


@dataclass(slots=True)
class EnsureReport:
    """What an ensure run did."""

    created: list[str]
    existing: list[str]
    seconds: float


async def _with_advisory_lock(conn: AsyncConnection[Any], wait_s: float) -> None:
    """Take the partition-maintenance advisory lock, waiting up to `wait_s` with backoff."""
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (PARTITION_LOCK_KEY,))
        row = await cur.fetchone()
        if row is not None and row[0]:
            return
        if time.monotonic() >= deadline:
            raise PartitionError("timed out waiting for the partition maintenance lock")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def _unlock(conn: AsyncConnection[Any]) -> None:
    await conn.execute("SELECT pg_advisory_unlock(%s)", (PARTITION_LOCK_KEY,))


async def ensure_partitions(
    conn: AsyncConnection[Any], days: Iterable[date], tables: Sequence[str] = SERIES_TABLES
) -> EnsureReport:
    """Make sure each table has an attached partition for each NZ date (storage §3.2).

    `conn` must be an autocommit connection that is not used for anything else meanwhile
    (the maintenance connection); no race write runs on it.
    """
    started = time.perf_counter()
    report = EnsureReport(created=[], existing=[], seconds=0.0)
    wanted = sorted(set(days))
    await _with_advisory_lock(conn, LOCK_WAIT_S)
    try:
        for day in wanted:
            for table in tables:
                created = await _ensure_one_with_retry(conn, table, day)
                name = partition_name(table, day)
                (report.created if created else report.existing).append(name)
                if created:
                    metrics.PARTITIONS_CREATED.labels(table).inc()
    finally:
        await _unlock(conn)
    report.seconds = time.perf_counter() - started
    return report


async def _ensure_one_with_retry(conn: AsyncConnection[Any], table: str, day: date) -> bool:
    delay = 0.2
    for attempt in range(1, STEP_ATTEMPTS + 1):
        try:
            return await _ensure_one(conn, table, day)
        except (
            psycopg.errors.LockNotAvailable,
            psycopg.errors.DuplicateTable,
            psycopg.errors.DuplicateObject,
        ):
            # A lock held by a long query, or a creator outside our lock: re-check from step 2.
            if attempt == STEP_ATTEMPTS:
                raise
            log_event(
                logger,
                "partition_step_retry",
                logging.WARNING,
                partition=partition_name(table, day),
                attempt=attempt,
            )
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


async def _relation_state(
    conn: AsyncConnection[Any], name: str
) -> tuple[bool, str | None, str | None] | None:
    """(exists-as-table, parent, bound expression) of a relation in the current schema, or None."""
    cur = await conn.execute(
        """
        SELECT c.relkind, p.relname, pg_get_expr(c.relpartbound, c.oid)
        FROM pg_class c
        LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
        LEFT JOIN pg_class p ON p.oid = i.inhparent
        WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace
        """,
        (name,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    relkind, parent, bound = row
    return relkind == "r", parent, bound


async def _expected_bound_text(conn: AsyncConnection[Any], table: str, lower: str, upper: str) -> str:
    """The bound expression as PostgreSQL renders it in this session (for exact comparison)."""
    _, kind = _partition_key(table)
    cur = await conn.execute(
        sql.SQL("SELECT format('FOR VALUES FROM (%%L) TO (%%L)', %s::{kind}, %s::{kind})").format(
            kind=sql.SQL(kind)
        ),
        (lower, upper),
    )
    row = await cur.fetchone()
    if row is None:  # pragma: no cover
        raise PartitionError("cannot render partition bounds")
    return str(row[0])


async def _ensure_one(conn: AsyncConnection[Any], table: str, day: date) -> bool:
    """Steps 2-6 of storage §3.2 for one partition; True when this call attached it."""
    name = partition_name(table, day)
    lower, upper = table_bounds(table, day)
    column, kind = _partition_key(table)
    state = await _relation_state(conn, name)
    child = sql.Identifier(name)
    parent = sql.Identifier(table)
    check_name = sql.Identifier(f"{name}_bounds")
    if state is not None:
        is_table, attached_to, bound = state
        if not is_table:
            raise PartitionError(f"{name} exists but is not a plain table")
        if attached_to is not None:
            if attached_to != table:
                raise PartitionError(f"{name} is attached to {attached_to}, not {table}")
            expected = await _expected_bound_text(conn, table, lower, upper)
            if bound != expected:
                raise PartitionError(f"{name} is attached with bounds {bound}, expected {expected}")
            return False
        cur = await conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(child))
        row = await cur.fetchone()
        if row is not None and row[0]:
            raise PartitionError(f"{name} exists detached and holds rows; refusing to attach it")
        # An empty leftover of an interrupted run: continue at the attach step.
    async with conn.transaction():
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ).format(child, parent)
        )
        cur = await conn.execute(
            "SELECT 1 FROM pg_constraint WHERE conname = %s AND conrelid = %s::regclass",
            (f"{name}_bounds", name),
        )
        if await cur.fetchone() is None:
            # A CHECK equal to the bounds lets ATTACH skip its validation scan.
            await conn.execute(
                sql.SQL(
                    "ALTER TABLE {child} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL "
                    "AND {column} >= {lower}::{kind} AND {column} < {upper}::{kind})"
                ).format(
                    child=child,
                    check=check_name,
                    column=sql.Identifier(column),
                    lower=sql.Literal(lower),
                    upper=sql.Literal(upper),
                    kind=sql.SQL(kind),
                )
            )
    # Attach in its own statement: SHARE UPDATE EXCLUSIVE on the parent, readers and writers continue.
    await conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            parent, child, sql.Literal(lower), sql.Literal(upper)
        )
    )
    await conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(child, check_name))
    log_event(logger, "partition_created", partition=name, lower=lower, upper=upper)
    return True


async def list_partitions(
    conn: AsyncConnection[Any], tables: Sequence[str] = SERIES_TABLES
) -> list[PartitionInfo]:
    """Every partition attached to `tables` (by default the series), by table then date."""
    cur = await conn.execute(
        """
        SELECT p.relname, c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint,
               i.inhdetachpending,
               CASE WHEN p.relname = ANY(%s) THEN NULL ELSE
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz
               END,
               CASE WHEN p.relname = ANY(%s) THEN NULL ELSE
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz
               END
        FROM pg_inherits i
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE p.relname = ANY(%s) AND p.relnamespace = current_schema()::regnamespace
        ORDER BY p.relname, c.relname
        """,
        (list(ARCHIVE_TABLES), list(ARCHIVE_TABLES), list(tables)),
    )
    result: list[PartitionInfo] = []
    for parent, name, _bound, tuples, pending, lower_bound, upper_bound in await cur.fetchall():
        day = parse_partition_day(name)
        if day is None:
            log_event(logger, "partition_unexpected_name", logging.WARNING, partition=name)
            continue
        # Ranged on dates: the instants those NZ dates stand for.
        lower, upper = nz_day_bounds(day) if _date_keyed(parent) else (lower_bound, upper_bound)
        result.append(
            PartitionInfo(
                table=parent,
                name=name,
                day=day,
                lower=lower,
                upper=upper,
                row_estimate=int(tuples) if tuples is not None and tuples >= 0 else None,
                detach_pending=bool(pending),
            )
        )
    return result


@dataclass(slots=True)
class RetentionReport:
    """Partitions removed by a retention run."""

    cutoff: date
    dropped: list[str]
    seconds: float


async def apply_retention(
    conn: AsyncConnection[Any], today: date, retention_days: int, tables: Sequence[str] = SERIES_TABLES
) -> RetentionReport:
    """Detach (concurrently) and drop every partition of `tables` for NZ dates before today - retention_days.

    With the series tables, also removes the poll identities (race_polls) and the alerts
    (race_alerts) older than the cutoff; the archive tables have their own retention and touch
    nothing else. `conn` must be an autocommit connection: DETACH ... CONCURRENTLY cannot run
    inside a transaction block.
    """
    started = time.perf_counter()
    cutoff = today - timedelta(days=retention_days)
    dropped: list[str] = []
    await _with_advisory_lock(conn, LOCK_WAIT_S)
    try:
        for info in await list_partitions(conn, tables):
            if info.day >= cutoff:
                continue
            parent = sql.Identifier(info.table)
            child = sql.Identifier(info.name)
            if info.detach_pending:
                # A previous detach was interrupted: finish it.
                await conn.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(parent, child)
                )
            else:
                await conn.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(parent, child)
                )
            log_event(logger, "partition_detached", partition=info.name, day=info.day.isoformat())
            await conn.execute(sql.SQL("DROP TABLE {}").format(child))
            log_event(logger, "partition_dropped", partition=info.name, day=info.day.isoformat())
            metrics.PARTITIONS_DROPPED.labels(info.table).inc()
            dropped.append(info.name)
        if set(tables) & set(SERIES_TABLES):
            lower, _ = nz_day_bounds(cutoff)
            await conn.execute("DELETE FROM race_polls WHERE written_at < %s", (lower,))
            # Alerts are moves between series rows: they go with the rows they were read from.
            await conn.execute("DELETE FROM race_alerts WHERE polled_at < %s", (lower,))
    finally:
        await _unlock(conn)
    return RetentionReport(cutoff=cutoff, dropped=dropped, seconds=time.perf_counter() - started)
