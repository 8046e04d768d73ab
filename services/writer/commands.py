"""`raceday migrate`, `raceday partitions` and `raceday replay`: the writer's operator commands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from services.common.config import Env, exit_on_config_error
from services.common.database import database_url, scratch_database
from services.common.logs import configure_logging
from services.common.nztime import nz_today
from services.writer.db import Database, connect
from services.writer.migrate import MigrationError, applied_versions, apply_migrations
from services.writer.partitions import (
    ARCHIVE_TABLES,
    PARTITIONED_TABLES,
    SERIES_TABLES,
    PartitionError,
    apply_retention,
    bound_literal,
    ensure_partitions,
    list_partitions,
)
from services.writer.settings import WriterSettings

# done, total, seconds (services/writer/replay.py print_progress).
Progress = Callable[[int, int, float], None]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrate` and `partitions`."""
    migrate = subparsers.add_parser(
        "migrate",
        help="apply pending database migrations and report",
        description="Apply the writer's versioned SQL migrations (idempotent; concurrent runs wait).",
    )
    migrate.set_defaults(handler=run_migrate)
    partitions = subparsers.add_parser(
        "partitions",
        help="list time-series partitions and ensure the upcoming ones",
        description=(
            "Ensure today's and the next NZ days' partitions of money_flow_history, odds_history and "
            "the raw-payload archive (archive_polls, archive_payloads), then list every partition "
            "(NZ date, bounds, estimated rows)."
        ),
    )
    partitions.add_argument(
        "--days-ahead", type=int, default=1, help="ensure today and this many following NZ days (default 1)"
    )
    partitions.add_argument("--list-only", action="store_true", help="only list; create nothing")
    partitions.add_argument(
        "--retention",
        action="store_true",
        help=(
            "also detach and drop series partitions older than RETENTION_DAYS NZ days and archive "
            "partitions older than ARCHIVE_RETENTION_DAYS"
        ),
    )
    partitions.set_defaults(handler=run_partitions)
    replay = subparsers.add_parser(
        "replay",
        help="re-run the transform over the raw-payload archive and rebuild the series",
        description=(
            "Replay the archived polls of NZ days FROM..TO in poll order through the transform and the "
            "write path. With --into, write the rebuilt series into that database (resumable: polls "
            "already there are skipped). Without it, nothing is written to the live database: the "
            "replay goes to a scratch database on the same server and every series row of the "
            "replayed races is compared with the live rows; exit 1 when any differs."
        ),
    )
    replay.add_argument("--from", dest="first", type=_nz_date, required=True, help="first NZ day, YYYY-MM-DD")
    replay.add_argument("--to", dest="last", type=_nz_date, required=True, help="last NZ day, YYYY-MM-DD")
    replay.add_argument("--into", metavar="DATABASE_URL", help="write the rebuilt series into this database")
    replay.add_argument("--quiet", action="store_true", help="no progress bar")
    replay.add_argument(
        "--concurrency", type=int, default=4, help="races replayed at a time, each in poll order (default 4)"
    )
    replay.set_defaults(handler=run_replay)
    export = subparsers.add_parser(
        "export",
        help="one NZ racing day's races, entrants, money flow, odds, pools and results as files",
        description=(
            "Write the races of NZ day --date and their entrants, money flow, odds, pools and results "
            "as six Parquet or CSV files (money in integer cents). Needs pyarrow: "
            "pip install 'raceday[export]'."
        ),
    )
    export.add_argument("--date", dest="day", type=_nz_date, required=True, help="NZ day, YYYY-MM-DD")
    export.add_argument("--format", dest="fmt", choices=("parquet", "csv"), default="parquet")
    export.add_argument("--out", type=Path, default=Path("export"), help="directory (default ./export)")
    export.set_defaults(handler=run_export)
    backtest = subparsers.add_parser(
        "backtest",
        help="how the runners with the most late Win money finished (strike rates, returns)",
        description=(
            "For the final races of NZ days FROM..TO: the runner with the most Win money in the last "
            "5, 2 and 1 minutes before betting closed, its win and place strike rates with 95%% "
            "Wilson intervals, and the mean return of $1 at the final tote dividends."
        ),
    )
    backtest.add_argument("--from", dest="first", type=_nz_date, required=True, help="first NZ day")
    backtest.add_argument("--to", dest="last", type=_nz_date, required=True, help="last NZ day")
    backtest.set_defaults(handler=run_backtest)


def _nz_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {value!r}") from None


def _settings() -> tuple[str, WriterSettings]:
    env = Env()
    with exit_on_config_error():
        settings = WriterSettings.from_env(env)
        configure_logging("writer", "WARNING")
        url = database_url(env)
    return url, settings


def run_migrate(args: argparse.Namespace) -> int:
    """Apply migrations; exit 1 with a message when that is impossible."""
    url, settings = _settings()
    try:
        return asyncio.run(_migrate(url, settings))
    except (MigrationError, psycopg.Error) as exc:
        print(f"raceday migrate: {exc}", file=sys.stderr)
        return 1


async def _migrate(url: str, settings: WriterSettings) -> int:
    conn = await connect(url, settings)
    try:
        report = await apply_migrations(conn)
    finally:
        await conn.close()
    for migration, seconds in report.applied:
        print(f"applied {migration.version:04d}_{migration.name} in {seconds * 1000:.1f} ms")
    if report.unknown_applied:
        print(f"warning: the database has migrations this code does not know: {list(report.unknown_applied)}")
    if not report.applied:
        print(f"schema up to date at version {report.version}")
    else:
        print(f"schema now at version {report.version}")
    return 0


def run_partitions(args: argparse.Namespace) -> int:
    """Ensure, optionally apply retention, then list."""
    if args.days_ahead < 0 or args.days_ahead > 60:
        print("raceday partitions: --days-ahead must be 0..60", file=sys.stderr)
        return 2
    url, settings = _settings()
    try:
        return asyncio.run(_partitions(url, settings, args.days_ahead, args.list_only, args.retention))
    except (PartitionError, psycopg.Error) as exc:
        print(f"raceday partitions: {exc}", file=sys.stderr)
        return 1


async def _partitions(
    url: str, settings: WriterSettings, days_ahead: int, list_only: bool, retention: bool
) -> int:
    conn = await connect(url, settings, lock_timeout_ms=3000)
    try:
        if not await applied_versions(conn):
            print(
                "raceday partitions: the schema is not migrated; run `raceday migrate` first", file=sys.stderr
            )
            return 1
        today = nz_today()
        if not list_only:
            report = await ensure_partitions(
                conn, [today + timedelta(days=i) for i in range(days_ahead + 1)], PARTITIONED_TABLES
            )
            for name in report.created:
                print(f"created {name}")
        if retention:
            for what, tables, days in (
                ("series", SERIES_TABLES, settings.retention_days),
                ("archive", ARCHIVE_TABLES, settings.archive_retention_days),
            ):
                dropped = await apply_retention(conn, today, days, tables)
                for name in dropped.dropped:
                    print(f"dropped {name}")
                print(f"{what} retention: kept NZ dates from {dropped.cutoff.isoformat()} ({days} days)")
        infos = await list_partitions(conn, PARTITIONED_TABLES)
    finally:
        await conn.close()
    header = f"{'partition':<34} {'nz_date':<10}  {'lower (NZ)':<22}  {'upper (NZ)':<22}  {'rows (est.)':>11}"
    print(header)
    for info in infos:
        rows = "unknown" if info.row_estimate is None else str(info.row_estimate)
        flag = "  (detach pending)" if info.detach_pending else ""
        print(
            f"{info.name:<34} {info.day.isoformat():<10}  {bound_literal(info.lower):<22}  "
            f"{bound_literal(info.upper):<22}  {rows:>11}{flag}"
        )
    print(f"{len(infos)} partitions")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """Replay the archive into --into, or compare a replay with the live database."""
    if args.last < args.first:
        print("raceday replay: --to is before --from", file=sys.stderr)
        return 2
    if not 1 <= args.concurrency <= 64:
        print("raceday replay: --concurrency must be 1..64", file=sys.stderr)
        return 2
    url, settings = _settings()
    try:
        return asyncio.run(
            _replay(
                url,
                settings,
                args.first,
                args.last,
                args.into,
                quiet=args.quiet,
                concurrency=args.concurrency,
            )
        )
    except (MigrationError, PartitionError, psycopg.Error, LookupError, ValueError) as exc:
        print(f"raceday replay: {exc}", file=sys.stderr)
        return 1


async def _replay(
    url: str,
    settings: WriterSettings,
    first: date,
    last: date,
    into: str | None,
    *,
    quiet: bool,
    concurrency: int,
) -> int:
    # Imported here: the transform and the fetcher's wire constants are only needed by replay.
    from services.writer.replay import print_progress, series_differences

    progress = None if quiet else print_progress
    source = await connect(url, settings)
    try:
        if into is not None:
            await _replay_into(
                source, into, settings, first, last, progress=progress, concurrency=concurrency
            )
            return 0
        with scratch_database(url, "raceday_replay") as scratch_url:
            races = await _replay_into(
                source, scratch_url, settings, first, last, progress=progress, concurrency=concurrency
            )
            target = await connect(scratch_url, settings)
            try:
                differences = await series_differences(source, target, races, first, last)
            finally:
                await target.close()
    finally:
        await source.close()
    for line in differences:
        print(line)
    if differences:
        print(f"replay: the live series differ from the replay of {len(races)} races")
        return 1
    print(f"replay: the live series of {len(races)} races equal their replay (nothing written to them)")
    return 0


async def _replay_into(
    source: psycopg.AsyncConnection[Any],
    target_url: str,
    settings: WriterSettings,
    first: date,
    last: date,
    *,
    progress: Progress | None,
    concurrency: int,
) -> list[str]:
    """Migrate the target, replay into it, print the figures; the replayed races."""
    from services.writer.replay import replay

    conn = await connect(target_url, settings)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    target = Database(settings)
    await target.open(target_url)
    try:
        report = await replay(source, target, first, last, progress=progress, concurrency=concurrency)
    finally:
        await target.close()
    print(
        f"replay: {report.polls} archived polls of {len(report.race_ids)} races, NZ days {first} to {last}: "
        f"{report.written} written, {report.baselines} baselines, {report.skipped} already there, "
        f"{report.rejected} rejected by the transform; {report.seconds:.1f} s, "
        f"{report.polls_per_s:,.1f} polls/s"
    )
    for line in report.rejections:
        print(f"  rejected: {line}")
    return sorted(report.race_ids)


def run_export(args: argparse.Namespace) -> int:
    """Export one NZ day as files; exit 2 without pyarrow, 1 on a database error."""
    from services.writer.export import ExportUnavailableError, export_day

    url, settings = _settings()

    async def export() -> int:
        conn = await connect(url, settings)
        try:
            files = await export_day(conn, args.day, args.fmt, args.out)
        finally:
            await conn.close()
        for exported in files:
            print(f"{exported.path}: {exported.rows} rows")
        return 0

    try:
        return asyncio.run(export())
    except ExportUnavailableError as exc:
        print(f"raceday export: {exc}", file=sys.stderr)
        return 2
    except psycopg.Error as exc:
        print(f"raceday export: {exc}", file=sys.stderr)
        return 1


def run_backtest(args: argparse.Namespace) -> int:
    """Print the backtest's figures per window."""
    from services.writer.backtest import backtest, format_figures

    if args.last < args.first:
        print("raceday backtest: --to is before --from", file=sys.stderr)
        return 2
    url, settings = _settings()

    async def run() -> int:
        conn = await connect(url, settings)
        try:
            figures, _ = await backtest(conn, args.first, args.last)
        finally:
            await conn.close()
        print(f"backtest: final races of NZ days {args.first} to {args.last}")
        for line in format_figures(figures):
            print(line)
        return 0

    try:
        return asyncio.run(run())
    except psycopg.Error as exc:
        print(f"raceday backtest: {exc}", file=sys.stderr)
        return 1
