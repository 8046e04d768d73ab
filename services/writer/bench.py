"""`raceday bench write`: per-update write latency and throughput, COPY vs multi-row INSERT.

Writes realistic race updates (12-16 runners, every money-flow and odds row) through the
real write path into a scratch database on the configured server (RACEDAY_DATABASE_URL
or the embedded PostgreSQL), migrated by the real migrations. Two scenarios:

- first_poll: a race seen for the first time (meeting, race, all entrants inserted, one
  money-flow row and four odds rows per runner, pools);
- next_poll: the following poll of the same race (entrants updated, new money-flow rows,
  the odds that changed).

Both series paths run interleaved in the same run. Besides latency and throughput it reports
where the time goes: the benchmark process's CPU per write (the writer's Python side) and,
when the server runs on this machine, the PostgreSQL backends' CPU per write. Exits 1 when
any write fails or the first-poll COPY median exceeds --max-median-ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
import uvloop
from psycopg import sql

from services.common.config import Env, exit_on_config_error
from services.common.database import database_url
from services.common.logs import configure_logging
from services.common.nztime import nz_date, to_epoch_ms, utc_now
from services.common.proto.raceday.v1 import race_pb2
from services.writer.db import Database, connect, with_database
from services.writer.migrate import apply_migrations
from services.writer.partitions import ensure_partitions
from services.writer.settings import WriterSettings
from services.writer.synthetic import SyntheticRace, synthetic_update
from services.writer.write_path import SeriesMode, WriteResult, write_race_update

MODES: tuple[SeriesMode, ...] = ("copy", "insert")


def add_bench_parser(bench_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `raceday bench write`."""
    parser = bench_subparsers.add_parser(
        "write",
        help="race write latency and rows/s, COPY vs multi-row INSERT",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--updates", type=int, default=200, help="measured updates per path and scenario")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured updates per path first")
    parser.add_argument("--runners", type=int, default=16, help="runners per race (realistic: 12-16)")
    parser.add_argument(
        "--max-median-ms",
        type=float,
        default=5.0,
        help="fail when the first-poll COPY median exceeds this (0 disables; default 5)",
    )
    parser.add_argument("--keep-database", action="store_true", help="keep the scratch database")
    parser.set_defaults(handler=run)


@dataclass(slots=True)
class Series:
    """Latencies and rows of one (scenario, path)."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    rows: int = 0
    failures: int = 0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        ordered = sorted(self.seconds)
        index = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
        return ordered[index] * 1000


def _rows(result: WriteResult) -> int:
    return (
        result.races_written
        + result.entrants_written
        + result.money_flow_rows
        + result.odds_rows
        + int(result.pools_written)
        + int(result.results_written)
    )


async def _write(db: Database, update: race_pb2.RaceUpdate, mode: SeriesMode, series: Series | None) -> None:
    async def no_ensure(days: object) -> None:
        raise RuntimeError("partition missing during the benchmark")

    cpu_started = time.process_time()
    started = time.perf_counter()
    try:
        result = await write_race_update(db, update, baseline=False, ensure_days=no_ensure, series_mode=mode)
    except Exception as exc:
        if series is not None:
            series.failures += 1
        print(f"write failed ({mode}): {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
        return
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    if series is None:
        return
    if not result.written:
        series.failures += 1
        return
    series.seconds.append(elapsed)
    series.cpu_seconds += cpu
    series.rows += _rows(result)


def _backend_cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU of these server processes, or None when they are not on this machine."""
    total = 0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as stat:
                # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


async def _bench(args: argparse.Namespace, server_url: str) -> int:
    settings = WriterSettings(write_pool_size=2, read_pool_size=1)
    scratch = f"raceday_bench_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        version = admin.info.server_version
    url = with_database(server_url, scratch)
    db = Database(settings)
    try:
        conn = await connect(url, settings)
        now = utc_now()
        try:
            await apply_migrations(conn)
            await ensure_partitions(conn, {nz_date(now), nz_date(now) + timedelta(days=1)})
        finally:
            await conn.close()
        await db.open(url)
        async with db.read_connection() as conn:
            cur = await conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            pids = [row[0] for row in await cur.fetchall()]
        cpu_before = _backend_cpu_seconds(pids)
        results = await _measure(db, args, now_ms=to_epoch_ms(now))
        cpu_after = _backend_cpu_seconds(pids)
        server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    finally:
        await db.close()
        if not args.keep_database:
            async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as admin:
                await admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch))
                )
    return _report(args, results, version, server_cpu)


async def _measure(db: Database, args: argparse.Namespace, now_ms: int) -> dict[tuple[str, str], Series]:
    results: dict[tuple[str, str], Series] = {
        (scenario, mode): Series() for scenario in ("first_poll", "next_poll") for mode in MODES
    }
    start_ms = now_ms + 61 * 60_000  # first polls land in the 60-minute bucket
    total = args.warmup + args.updates
    for i in range(total):
        measured = i >= args.warmup
        # Alternate which path goes first so neither always follows the other.
        order = MODES if i % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            race = SyntheticRace(
                race_id=f"bench-{mode}-{i}",
                start_ms=start_ms,
                meeting_id=f"bench-meeting-{mode}-{i // 10}",
                meeting_name=f"Bench Park {mode} {i // 10}",
                race_number=i % 10 + 1,
                runners=args.runners,
            )
            first = synthetic_update(race, now_ms + i, poll_index=0)
            await _write(db, first, mode, results[("first_poll", mode)] if measured else None)
            following = synthetic_update(
                race, now_ms + i + 15_000, poll_index=1, previous=first, odds_rows="changed"
            )
            await _write(db, following, mode, results[("next_poll", mode)] if measured else None)
    return results


def _report(
    args: argparse.Namespace, results: dict[tuple[str, str], Series], version: int, server_cpu: float | None
) -> int:
    print(
        f"raceday bench write: {args.runners} runners, {args.updates} measured updates per path and "
        f"scenario after {args.warmup} warm-up, PostgreSQL {version // 10000}.{version % 10000}"
    )
    columns = ("median_ms", "p99_ms", "mean_ms", "cpu_ms", "rows/upd", "rows/s")
    print(f"{'scenario':<11} {'path':<7} " + " ".join(f"{c:>9}" for c in columns))
    failures = 0
    for (scenario, mode), series in results.items():
        failures += series.failures
        if not series.seconds:
            print(f"{scenario:<11} {mode:<7} no successful writes")
            continue
        median = statistics.median(series.seconds) * 1000
        mean = statistics.fmean(series.seconds) * 1000
        per_update = series.rows / len(series.seconds)
        rate = series.rows / sum(series.seconds)
        cpu = series.cpu_seconds / len(series.seconds) * 1000
        print(
            f"{scenario:<11} {mode:<7} {median:>9.2f} {series.percentile(0.99):>9.2f} {mean:>9.2f} "
            f"{cpu:>9.2f} {per_update:>9.0f} {rate:>9.0f}"
        )
    print("cpu_ms: this process's CPU per write (the writer's side: validation, rendering, driver)")
    writes = 4 * (args.warmup + args.updates)
    if server_cpu is None:
        print("PostgreSQL CPU per write: not measured (the server is not on this machine)")
    else:
        per_write = server_cpu / writes * 1000
        print(f"PostgreSQL CPU per write (every path and scenario, warm-up included): {per_write:.2f} ms")
    copy = results[("first_poll", "copy")]
    status = 0
    if failures:
        print(f"FAILED: {failures} write(s) failed")
        status = 1
    if args.max_median_ms > 0:
        if not copy.seconds:
            status = 1
        else:
            median = statistics.median(copy.seconds) * 1000
            verdict = "OK" if median <= args.max_median_ms else "MISSED"
            print(f"target: first_poll copy median {median:.2f} ms <= {args.max_median_ms:.2f} ms: {verdict}")
            if verdict != "OK":
                status = 1
    return status


def run(args: argparse.Namespace) -> int:
    """Validate arguments and configuration, run the benchmark, return the exit code."""
    if args.updates < 1 or args.warmup < 0 or not 1 <= args.runners <= 40:
        print("raceday bench write: --updates >= 1, --warmup >= 0, --runners 1..40", file=sys.stderr)
        return 2
    env = Env()
    with exit_on_config_error():
        configure_logging("bench", "WARNING")
        server_url = database_url(env)
    return uvloop.run(_bench(args, server_url))
