"""`raceday bench archive`: what the raw-payload archive stores for a simulated day, and replay speed.

A simulated race day (the day scenario, each event served from a 15 s snapshot as the TAB's
data refreshes) is polled live by the real fetcher (FetcherApp: baseline, scheduler, pipeline,
archive) on an accelerated clock, with the writer and transformer as `raceday serve` processes,
until every race is final or abandoned. Then it reports, per archived poll: the uncompressed
payload bytes (raw), the bytes as received (gzip on the wire), the zstd bytes stored (each
distinct payload once per NZ day), and the archive tables' whole footprint on disk (heap,
TOAST and indexes); and replays the archive into an empty database, reporting polls/s.
Exit 1 when the stored bytes exceed 10% of the raw bytes or any poll failed to archive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, Final

import psycopg
import uvloop

from services.common.clock import Clock, real_now_ms
from services.common.config import Env
from services.common.database import configured_database_url, scratch_database, start_embedded_postgres
from services.fetcher.app import FetcherApp
from services.fetcher.bench import service_processes
from services.fetcher.bench_driver import BENCH_IDENTIFICATION
from services.tabsim.server import start_tabsim_process
from services.writer.db import Database, connect
from services.writer.migrate import apply_migrations
from services.writer.replay import replay
from services.writer.settings import WriterSettings

TARGET_SHARE: Final = 0.10
SETTINGS: Final = WriterSettings(write_pool_size=4, read_pool_size=2, acquire_timeout_s=10.0)


def add_bench_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `raceday bench archive`."""
    parser = subparsers.add_parser(
        "archive",
        help="archive bytes per poll on a simulated day (15 s snapshots) and replay polls/s",
        description=__doc__,
    )
    parser.add_argument("--meetings", type=int, default=3, help="meetings in the simulated day (default 3)")
    parser.add_argument("--races", type=int, default=4, help="races per meeting (default 4)")
    parser.add_argument("--speed", type=float, default=20.0, help="simulated clock speed (default 20)")
    parser.add_argument("--seed", type=int, default=15, help="seed of the simulated day (default 15)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for the JSON")
    parser.set_defaults(handler=run)


FIGURES: Final = """
SELECT count(*),
       count(DISTINCT (p.racing_day, p.payload_hash)),
       sum(a.raw_bytes)::bigint,
       sum(p.received_bytes)::bigint,
       (SELECT sum(octet_length(zstd_payload))::bigint FROM archive_payloads),
       pg_total_relation_size('archive_payloads') + pg_total_relation_size('archive_polls')
       + (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint FROM pg_inherits
          WHERE inhparent IN ('archive_payloads'::regclass, 'archive_polls'::regclass))
FROM archive_polls p
JOIN archive_payloads a USING (racing_day, payload_hash)
"""


async def _race_statuses(url: str) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT race_id, status FROM races")
        return {str(race): str(status) for race, status in await cur.fetchall()}


async def _live_day(args: argparse.Namespace, database_url: str, logs: Path, spool: Path) -> None:
    async with service_processes(database_url, logs) as services:
        writer, transformer = services.writer, services.transformer
        clock = Clock(speed=args.speed, anchor_ms=real_now_ms())
        tabsim = start_tabsim_process(
            [
                *("--scenario", "day", "--meetings", str(args.meetings), "--races", str(args.races)),
                *("--seed", str(args.seed), "--first-start-offset-s", "900", "--snapshot-s", "15"),
                *("--race-spacing-s", "600", "--meeting-stagger-s", "150", "--log-level", "WARNING"),
            ],
            env={**os.environ, **clock.env()},
        )
        try:
            env = Env(
                {
                    **clock.env(),
                    **BENCH_IDENTIFICATION,
                    "NZTAB_BASE_URL": tabsim.url,
                    "RACEDAY_WRITER_ADDR": writer,
                    "RACEDAY_TRANSFORMER_ADDR": transformer,
                    "RACEDAY_SPOOL_DIR": str(spool),
                }
            )
            app = FetcherApp(env)
            await app.start()
            started = time.monotonic()
            try:
                last_report = 0.0
                while True:
                    statuses = await _race_statuses(database_url)
                    done = sum(status in ("final", "abandoned") for status in statuses.values())
                    if statuses and done == len(statuses):
                        break
                    if time.monotonic() - last_report > 10:
                        last_report = time.monotonic()
                        print(
                            f"bench archive: {done}/{len(statuses)} races finished, "
                            f"{time.monotonic() - started:.0f} s",
                            flush=True,
                        )
                    await asyncio.sleep(1.0)
            finally:
                await app.stop()
            if app.archive is not None and app.archive.dropped:
                raise RuntimeError(f"{app.archive.dropped} payloads were not archived")
        finally:
            tabsim.stop()


async def _figures(database_url: str) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(FIGURES)
        row = await cur.fetchone()
        cur = await conn.execute("SELECT min(racing_day), max(racing_day) FROM archive_polls")
        days = await cur.fetchone()
    if row is None or not row[0] or days is None:
        raise RuntimeError("nothing was archived")
    polls, distinct, raw, received, zstd, on_disk = (int(value) for value in row)
    return {
        "polls": polls,
        "distinct_payloads": distinct,
        "raw_bytes_per_poll": raw / polls,
        "received_bytes_per_poll": received / polls,
        "zstd_bytes_per_poll": zstd / polls,
        "on_disk_bytes_per_poll": on_disk / polls,
        "zstd_share_of_raw": zstd / raw,
        "on_disk_share_of_raw": on_disk / raw,
        "first_day": days[0].isoformat(),
        "last_day": days[1].isoformat(),
    }


async def _replay_speed(source_url: str, target_url: str, figures: dict[str, Any]) -> dict[str, Any]:
    conn = await connect(target_url, SETTINGS)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    source = await connect(source_url, SETTINGS)
    target = Database(SETTINGS)
    await target.open(target_url)
    try:
        first, last = date.fromisoformat(figures["first_day"]), date.fromisoformat(figures["last_day"])
        report = await replay(source, target, first, last)
    finally:
        await target.close()
        await source.close()
    return {
        "replayed_polls": report.polls,
        "replay_written": report.written,
        "replay_rejected": report.rejected,
        "replay_seconds": round(report.seconds, 2),
        "replay_polls_per_s": round(report.polls_per_s, 1),
    }


async def _bench(args: argparse.Namespace) -> int:
    env = Env()
    with tempfile.TemporaryDirectory(prefix="raceday-bench-archive-") as scratch:
        scratch_path = Path(scratch)
        server = configured_database_url(env)
        if server is None:
            print("bench archive: starting an embedded PostgreSQL in a temporary directory", flush=True)
            server = await asyncio.to_thread(
                start_embedded_postgres, scratch_path / "postgres", cleanup_mode="delete"
            )
        with (
            scratch_database(server, "raceday_bench_archive") as live_url,
            scratch_database(server, "raceday_bench_replay") as replay_url,
        ):
            print(
                f"bench archive: polling a simulated day of {args.meetings} meetings x {args.races} races "
                f"at speed {args.speed} ...",
                flush=True,
            )
            await _live_day(args, live_url, scratch_path / "logs", scratch_path / "spool")
            figures = await _figures(live_url)
            print(f"bench archive: replaying {figures['polls']} polls into an empty database ...", flush=True)
            figures |= await _replay_speed(live_url, replay_url, figures)
    for key, value in figures.items():
        print(f"  {key:<26} {value:,.3f}" if isinstance(value, float) else f"  {key:<26} {value}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"archive-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps({"benchmark": "archive", "figures": figures}, indent=2))
    print(f"bench archive: report written to {path}")
    if figures["zstd_share_of_raw"] > TARGET_SHARE or figures["replay_rejected"]:
        print(
            f"bench archive: FAILED: stored {figures['zstd_share_of_raw']:.1%} of raw "
            f"(target {TARGET_SHARE:.0%}), {figures['replay_rejected']} polls rejected by replay",
            file=sys.stderr,
        )
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; exit 1 on a missed target or a failed run."""
    return uvloop.run(_bench(args))
