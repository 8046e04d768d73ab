"""`raceday bench write`: per-update write latency, throughput and CPU of the race write path.

Writes realistic race updates (12-16 runners, every money-flow and odds row) through the
real write path into a scratch database on the configured server (RACEDAY_DATABASE_URL
or the embedded PostgreSQL), migrated by the real migrations. Two scenarios:

- first_poll: a race seen for the first time (meeting, race, all entrants inserted, one
  money-flow row and four odds rows per runner, pools);
- next_poll: the following poll of the same race (entrants updated, new money-flow rows,
  the odds that changed).

With --moves, a third measurement prices move detection (issue 14): races whose poll of column 55
has moves against column 60 that create alerts, each written with its moves and, interleaved
(alternating which goes first), an identical race's same poll with the moves field cleared; it
reports both medians, their difference (the acceptance: at most 0.3 ms where the yardstick takes
2.1 ms) and the time the Rust core takes to compute one poll's moves.

Each update is written from its serialised request, as the writer receives it. Besides
latency and throughput it reports where the time goes: the benchmark process's CPU per write
(the writer's side: the Rust rendering and the driver) and, when the server runs on this
machine, the PostgreSQL backends' CPU per write. The first-poll target (--max-median-ms, set
where `raceday bench transform`'s Python reference took 2.1 ms) is scaled by this machine's
speed now: the reference is timed in the same run, before, between and after the writes.
Exits 1 when any write fails or the first-poll median misses the scaled target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
import uvloop
from psycopg import sql

import raceday_core
from services.common.config import Env, exit_on_config_error
from services.common.cpuclock import processes_cpu_ns
from services.common.database import database_url
from services.common.logs import configure_logging
from services.common.nztime import nz_date, to_epoch_ms, utc_now
from services.common.proto.raceday.v1 import race_pb2, writer_pb2
from services.transformer.bench import YARDSTICK_MS, reference_yardstick_ms
from services.transformer.records import MoveCell, MoveRunner
from services.writer.db import Database, connect, with_database
from services.writer.migrate import apply_migrations
from services.writer.partitions import ensure_partitions
from services.writer.settings import WriterSettings
from services.writer.synthetic import SyntheticRace, synthetic_update
from services.writer.write_path import WriteResult, write_race_update

SCENARIOS = ("first_poll", "next_poll")
# raceday_core.moves calls timed together per round (one takes microseconds).
COMPUTE_REPEATS = 20


def add_bench_parser(bench_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `raceday bench write`."""
    parser = bench_subparsers.add_parser(
        "write",
        help="race write latency, rows/s and CPU (process and PostgreSQL)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--updates", type=int, default=300, help="measured updates per scenario")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured updates per scenario first")
    parser.add_argument("--runners", type=int, default=16, help="runners per race (realistic: 12-16)")
    parser.add_argument(
        "--max-median-ms",
        type=float,
        default=5.0,
        help=(
            f"fail when the first-poll median exceeds this where the reference takes {YARDSTICK_MS} ms, "
            "scaled by the reference measured in this run (0 disables; default 5)"
        ),
    )
    parser.add_argument(
        "--moves",
        action="store_true",
        help="also measure polls that create alerts with and without their moves, interleaved",
    )
    parser.add_argument(
        "--max-moves-cost-ms",
        type=float,
        default=0.3,
        help=(
            "with --moves, fail when the difference of medians exceeds this where the reference takes "
            f"{YARDSTICK_MS} ms, scaled like --max-median-ms (0 disables; default 0.3)"
        ),
    )
    parser.add_argument("--keep-database", action="store_true", help="keep the scratch database")
    parser.set_defaults(handler=run)


@dataclass(slots=True)
class Series:
    """Latencies and rows of one scenario."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    rows: int = 0
    failures: int = 0
    alerts: int = 0

    def merge(self, other: Series) -> None:
        """Add another run's measurements of the same scenario."""
        self.seconds += other.seconds
        self.cpu_seconds += other.cpu_seconds
        self.rows += other.rows
        self.failures += other.failures

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


async def _write(db: Database, request: bytes, series: Series | None) -> None:
    async def no_ensure(days: object) -> None:
        raise RuntimeError("partition missing during the benchmark")

    cpu_started = time.process_time()
    started = time.perf_counter()
    try:
        result = await write_race_update(db, request, ensure_days=no_ensure)
    except Exception as exc:
        if series is not None:
            series.failures += 1
        print(f"write failed: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
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
    series.alerts += result.alerts


def _backend_cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU of these server processes, or None when they are not on this machine."""
    readings = processes_cpu_ns(pids)
    if len(readings) != len(pids):
        return None
    return sum(readings.values()) / 1e9


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
        yardsticks = [reference_yardstick_ms()]
        cpu_before = _backend_cpu_seconds(pids)
        results = await _measure(db, args, to_epoch_ms(now), range(args.warmup + args.updates // 2))
        cpu_middle = _backend_cpu_seconds(pids)
        yardsticks.append(reference_yardstick_ms())
        cpu_resumed = _backend_cpu_seconds(pids)
        more = await _measure(
            db, args, to_epoch_ms(now), range(args.warmup + args.updates // 2, args.warmup + args.updates)
        )
        cpu_after = _backend_cpu_seconds(pids)
        yardsticks.append(reference_yardstick_ms())
        for scenario, series in more.items():
            results[scenario].merge(series)
        server_cpu = (
            None
            if cpu_before is None or cpu_middle is None or cpu_resumed is None or cpu_after is None
            else (cpu_middle - cpu_before) + (cpu_after - cpu_resumed)
        )
        moves = await _measure_moves(db, args, to_epoch_ms(now)) if args.moves else None
        if moves is not None:
            yardsticks.append(reference_yardstick_ms())
    finally:
        await db.close()
        if not args.keep_database:
            async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as admin:
                await admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch))
                )
    yardstick = statistics.median(yardsticks)
    status = _report(args, results, version, server_cpu, yardstick)
    if moves is not None:
        status = max(status, _report_moves(args, moves, yardstick / YARDSTICK_MS))
    return status


async def _measure(db: Database, args: argparse.Namespace, now_ms: int, races: range) -> dict[str, Series]:
    """Write a first and a next poll of each race; rounds before `args.warmup` are not measured."""
    results = {scenario: Series() for scenario in SCENARIOS}
    start_ms = now_ms + 61 * 60_000  # first polls land in the 60-minute bucket
    for i in races:
        measured = i >= args.warmup
        race = SyntheticRace(
            race_id=f"bench-{i}",
            start_ms=start_ms,
            meeting_id=f"bench-meeting-{i // 10}",
            meeting_name=f"Bench Park {i // 10}",
            race_number=i % 10 + 1,
            runners=args.runners,
        )
        first = synthetic_update(race, now_ms + i, poll_index=0)
        following = synthetic_update(
            race, now_ms + i + 15_000, poll_index=1, previous=first, odds_rows="changed"
        )
        for scenario, update in zip(SCENARIOS, (first, following), strict=True):
            request = writer_pb2.WriteRaceUpdateRequest(update=update).SerializeToString()
            await _write(db, request, results[scenario] if measured else None)
    return results


@dataclass(slots=True)
class MovesRun:
    """The interleaved polls with and without their moves, and the core's time per poll's moves."""

    with_moves: Series = field(default_factory=Series)
    without_moves: Series = field(default_factory=Series)
    # Per measured round, the write with moves minus the one without (written back to back).
    paired_seconds: list[float] = field(default_factory=list)
    # Seconds per raceday_core.moves call on one poll (arguments converted from Python included).
    compute_seconds: list[float] = field(default_factory=list)
    moves_per_poll: int = 0


def _move_inputs(
    first: race_pb2.RaceUpdate, following: race_pb2.RaceUpdate
) -> tuple[int, list[MoveRunner], dict[str, MoveCell], dict[str, MoveCell]]:
    """The arguments of raceday_core.moves for `following` against `first` (the column before)."""

    def cell(row: race_pb2.MoneyFlowRow) -> MoveCell:
        return {
            "incremental_win_amount": row.incremental_win_amount,
            "incremental_place_amount": row.incremental_place_amount,
            "fixed_win_odds": row.fixed_win_odds if row.HasField("fixed_win_odds") else None,
            "pool_win_odds": row.pool_win_odds if row.HasField("pool_win_odds") else None,
        }

    runners: list[MoveRunner] = [
        {"entrant_id": e.entrant_id, "scratched": e.is_scratched} for e in following.entrants
    ]
    bucket = following.money_flow[0].time_interval
    return (
        bucket,
        runners,
        {row.entrant_id: cell(row) for row in first.money_flow},
        {row.entrant_id: cell(row) for row in following.money_flow},
    )


async def _measure_moves(db: Database, args: argparse.Namespace, now_ms: int) -> MovesRun:
    """Per round, two identical races: both polls of column 60 (not measured), then the polls of
    column 55, one with its moves and one with them cleared, the order alternating per round."""
    run = MovesRun()
    start_ms = now_ms + 61 * 60_000  # the first polls land in 60, the next (3 minutes on) in 55
    for i in range(args.warmup + args.updates):
        measured = i >= args.warmup
        pair = []
        for side in ("with", "without"):
            race = SyntheticRace(
                race_id=f"bench-moves-{side}-{i}",
                start_ms=start_ms,
                meeting_id=f"bench-moves-meeting-{i // 10}",
                meeting_name=f"Bench Downs {i // 10}",
                race_number=i % 10 + 1,
                runners=args.runners,
            )
            first = synthetic_update(race, now_ms + i, poll_index=0)
            following = synthetic_update(
                race,
                now_ms + 3 * 60_000 + i,
                poll_index=1,
                previous=first,
                odds_rows="changed",
                with_moves=True,
            )
            if side == "without":
                following.ClearField("moves")
            else:
                run.moves_per_poll = len(following.moves)
                if measured:
                    inputs = _move_inputs(first, following)
                    started = time.perf_counter()
                    for _ in range(COMPUTE_REPEATS):
                        raceday_core.moves(*inputs)
                    run.compute_seconds.append((time.perf_counter() - started) / COMPUTE_REPEATS)
            await _write(db, writer_pb2.WriteRaceUpdateRequest(update=first).SerializeToString(), None)
            pair.append((following, run.with_moves if side == "with" else run.without_moves))
        for update, series in pair if i % 2 == 0 else reversed(pair):
            request = writer_pb2.WriteRaceUpdateRequest(update=update).SerializeToString()
            await _write(db, request, series if measured else None)
        if measured and len(run.with_moves.seconds) == len(run.without_moves.seconds) > 0:
            run.paired_seconds.append(run.with_moves.seconds[-1] - run.without_moves.seconds[-1])
    return run


def _report_moves(args: argparse.Namespace, run: MovesRun, scale: float) -> int:
    """Both medians, their difference (raw and at the yardstick) and the core's time per poll."""
    print(
        f"moves: polls of column 55 against 60 ({run.moves_per_poll} moves each), written with their moves "
        "and, interleaved, the same polls of an identical race with the moves cleared"
    )
    status = 0
    rows = (("with_moves", run.with_moves), ("without", run.without_moves))
    for name, series in rows:
        if not series.seconds:
            print(f"{name:<11} no successful writes")
            return 1
        per_write = series.alerts / len(series.seconds)
        print(
            f"{name:<11} median {statistics.median(series.seconds) * 1000:.3f} ms, "
            f"p99 {series.percentile(0.99):.3f} ms, alerts created per write {per_write:.1f}"
        )
        if series.failures:
            print(f"FAILED: {series.failures} write(s) failed")
            status = 1
    if run.with_moves.alerts == 0:
        print("FAILED: the polls with moves created no alert")
        status = 1
    with_ms = statistics.median(run.with_moves.seconds) * 1000
    difference = with_ms - statistics.median(run.without_moves.seconds) * 1000
    compute_us = statistics.median(run.compute_seconds) * 1e6 if run.compute_seconds else float("nan")
    paired = statistics.median(run.paired_seconds) * 1000 if run.paired_seconds else float("nan")
    print(
        f"move detection costs {difference:+.3f} ms per write (difference of medians), "
        f"{difference / scale:+.3f} ms at the {YARDSTICK_MS} ms yardstick; median of the "
        f"{len(run.paired_seconds)} paired differences (each round's two writes back to back) "
        f"{paired:+.3f} ms, {paired / scale:+.3f} ms at the yardstick"
    )
    print(
        f"move computation: raceday_core.moves takes {compute_us:.1f} us per poll ({args.runners} runners, "
        "median; its arguments converted from Python included, which the transform does not pay)"
    )
    if args.max_moves_cost_ms > 0:
        verdict = "OK" if difference / scale <= args.max_moves_cost_ms else "MISSED"
        print(
            f"target: move detection {difference / scale:+.3f} ms <= {args.max_moves_cost_ms:.2f} ms "
            f"at the yardstick: {verdict}"
        )
        if verdict != "OK":
            status = 1
    return status


def _report(
    args: argparse.Namespace,
    results: dict[str, Series],
    version: int,
    server_cpu: float | None,
    yardstick_ms: float,
) -> int:
    print(
        f"raceday bench write: {args.runners} runners, {args.updates} measured updates per scenario "
        f"after {args.warmup} warm-up, PostgreSQL {version // 10000}.{version % 10000}"
    )
    columns = ("median_ms", "p99_ms", "mean_ms", "cpu_ms", "rows/upd", "rows/s")
    print(f"{'scenario':<11} " + " ".join(f"{c:>9}" for c in columns))
    failures = 0
    for scenario, series in results.items():
        failures += series.failures
        if not series.seconds:
            print(f"{scenario:<11} no successful writes")
            continue
        median = statistics.median(series.seconds) * 1000
        mean = statistics.fmean(series.seconds) * 1000
        per_update = series.rows / len(series.seconds)
        rate = series.rows / sum(series.seconds)
        cpu = series.cpu_seconds / len(series.seconds) * 1000
        print(
            f"{scenario:<11} {median:>9.2f} {series.percentile(0.99):>9.2f} {mean:>9.2f} "
            f"{cpu:>9.2f} {per_update:>9.0f} {rate:>9.0f}"
        )
    print("cpu_ms: this process's CPU per write (the writer's side: Rust rendering, driver)")
    writes = len(SCENARIOS) * (args.warmup + args.updates)
    if server_cpu is None:
        print("PostgreSQL CPU per write: not measured (the server is not on this machine)")
    else:
        per_write = server_cpu / writes * 1000
        print(f"PostgreSQL CPU per write (both scenarios, warm-up included): {per_write:.2f} ms")
    scale = yardstick_ms / YARDSTICK_MS
    print(
        f"yardstick: the Python reference takes {yardstick_ms:.2f} ms on the recorded event now "
        f"({YARDSTICK_MS} ms where the targets were set): this machine runs at {scale:.2f}x that time"
    )
    first = results["first_poll"]
    status = 0
    if failures:
        print(f"FAILED: {failures} write(s) failed")
        status = 1
    if args.max_median_ms > 0:
        if not first.seconds:
            status = 1
        else:
            median = statistics.median(first.seconds) * 1000
            target = args.max_median_ms * scale
            verdict = "OK" if median <= target else "MISSED"
            print(
                f"target: first_poll median {median:.2f} ms <= {args.max_median_ms:.2f} ms x {scale:.2f} "
                f"= {target:.2f} ms: {verdict}"
            )
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
