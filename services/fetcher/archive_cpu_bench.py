"""`raceday bench archive-cpu`: the CPU one archived poll costs the fetcher, the writer and PostgreSQL.

The archive works off the hot path (services/fetcher/archive.py): what it costs a poll is CPU that
the machine's cores also need for the polls, which `bench pipeline --archive both` can only see as a
difference of latencies within the noise of a shared machine. This benchmark counts that CPU.

Consecutive 15 s snapshots of a few races are taken from the simulated TAB (gzip, as the fetcher
receives them; the simulator's clock is moved by hand). They are handed, a few milliseconds apart,
to a PollArchiver whose writer is a `raceday serve writer` process over an embedded PostgreSQL. Two
phases: every snapshot once (distinct payloads, as a race's polls mostly are), then each race's last
snapshot again and again (unchanged payloads: polled again before the TAB refreshed). For each
phase it reports CPU ms per archived poll: the packing thread (inflate, SHA-256, zstd), the whole
fetcher process (packing, the batching task, the ArchivePolls calls), the writer process, and every
process of the PostgreSQL server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import uvloop

from services.common.channels import create_channel
from services.common.database import start_embedded_postgres
from services.fetcher.archive import ArchiveSettings, PollArchiver, ReceivedPayload
from services.fetcher.bench import service_processes
from services.fetcher.bench_driver import tab_settings
from services.fetcher.tab_client import TabClient
from services.fetcher.tab_results import FetchFailure
from services.tabsim.admin_client import TabSimAdmin
from services.tabsim.server import start_tabsim_process

SNAPSHOT_S: Final = 15
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
FETCH_BUDGET_S: Final = 10.0


def add_bench_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `raceday bench archive-cpu`."""
    parser = subparsers.add_parser(
        "archive-cpu",
        help="CPU per archived poll: fetcher (packing), writer and PostgreSQL",
        description=__doc__,
    )
    parser.add_argument("--races", type=int, default=4, help="races of the simulated day (default 4)")
    parser.add_argument(
        "--snapshots", type=int, default=150, help="consecutive 15 s snapshots per race (default 150)"
    )
    parser.add_argument(
        "--gap-ms", type=float, default=2.0, help="pause between two payloads handed over (default 2)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for the JSON")
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One race's event as the simulated TAB sent it."""

    race_id: str
    payload: bytes
    encoding: str


async def _snapshots(races: int, snapshots: int) -> list[Snapshot]:
    """`snapshots` consecutive 15 s snapshots of each of `races` races, in poll order."""
    # A clock that barely moves by itself: each snapshot is the next one because the clock is moved.
    tabsim = start_tabsim_process(
        [
            *("--scenario", "day", "--meetings", "1", "--races", str(races), "--speed", "0.0001"),
            *("--snapshot-s", str(SNAPSHOT_S), "--first-start-offset-s", "1800", "--log-level", "WARNING"),
        ]
    )
    try:
        async with TabSimAdmin(tabsim.url) as admin, TabClient(tab_settings(tabsim.url)) as tab:
            scenario = await admin.scenario()
            race_ids = [str(race["race_id"]) for meeting in scenario["meetings"] for race in meeting["races"]]
            taken: list[Snapshot] = []
            for _ in range(snapshots):
                for race_id in race_ids:
                    fetched = await tab.fetch_event(race_id, budget_s=FETCH_BUDGET_S)
                    if isinstance(fetched, FetchFailure):
                        raise RuntimeError(f"the simulated TAB failed: {fetched.kind} {fetched.message}")
                    taken.append(Snapshot(race_id, fetched.payload, fetched.encoding))
                await admin.set_clock(advance_s=SNAPSHOT_S)
            return taken
    finally:
        tabsim.stop()


def _process_cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _postgres_cpu_s(pgdata: Path) -> float:
    """CPU seconds of the server's postmaster and every process it started."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    total = _process_cpu_s(postmaster)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent == postmaster:
            total += _process_cpu_s(int(entry))
    return total


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _phase(
    archiver: PollArchiver,
    polls: Sequence[ReceivedPayload],
    gap_s: float,
    writer_pid: int,
    pgdata: Path,
) -> dict[str, Any]:
    """Hand `polls` to the archive and wait until they are stored; CPU ms per poll."""
    archived, pack_s = archiver.archived, archiver.pack_cpu_s
    fetcher_s, writer_s, postgres_s = _self_cpu_s(), _process_cpu_s(writer_pid), _postgres_cpu_s(pgdata)
    started = time.perf_counter()
    for poll in polls:
        if not archiver.offer(poll):
            raise RuntimeError("the archive's queue was full")
        await asyncio.sleep(gap_s)
    await archiver.drain()
    seconds = time.perf_counter() - started
    if archiver.archived - archived != len(polls):
        raise RuntimeError(f"{archiver.archived - archived} of {len(polls)} polls were archived")
    per_poll = 1000 / len(polls)
    figures = {
        "polls": len(polls),
        "seconds": round(seconds, 2),
        "pack_thread_ms": (archiver.pack_cpu_s - pack_s) * per_poll,
        "fetcher_ms": (_self_cpu_s() - fetcher_s) * per_poll,
        "writer_ms": (_process_cpu_s(writer_pid) - writer_s) * per_poll,
        "postgres_ms": (_postgres_cpu_s(pgdata) - postgres_s) * per_poll,
    }
    figures["total_ms"] = figures["fetcher_ms"] + figures["writer_ms"] + figures["postgres_ms"]
    return figures


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    print(f"bench archive-cpu: {args.snapshots} snapshots of {args.races} races ...", flush=True)
    snapshots = await _snapshots(args.races, args.snapshots)
    first_ms = int(time.time() * 1000) - 3_600_000
    distinct = [
        ReceivedPayload(s.race_id, first_ms + index, s.payload, s.encoding)
        for index, s in enumerate(snapshots)
    ]
    last = {s.race_id: s for s in snapshots}
    unchanged = [
        ReceivedPayload(s.race_id, first_ms + len(snapshots) + index, s.payload, s.encoding)
        for index, s in enumerate(list(last.values()) * (len(snapshots) // len(last)))
    ]
    with tempfile.TemporaryDirectory(prefix="raceday-bench-archive-cpu-") as scratch:
        pgdata = Path(scratch) / "postgres"
        print("bench archive-cpu: starting an embedded PostgreSQL in a temporary directory", flush=True)
        url = await asyncio.to_thread(start_embedded_postgres, pgdata, cleanup_mode="delete")
        async with service_processes(url, Path(scratch) / "logs") as services:
            channel = create_channel(services.writer)
            archiver = PollArchiver(channel, ArchiveSettings())
            archiver.start()
            try:
                # Connections, prepared statements and the day's partition, before measuring.
                warmup = [
                    ReceivedPayload("warm-up", first_ms + i, s.payload, s.encoding)
                    for i, s in enumerate(snapshots[:16])
                ]
                await _phase(archiver, warmup, args.gap_ms / 1000, services.writer_pid, pgdata)
                figures: dict[str, Any] = {
                    "distinct": await _phase(
                        archiver, distinct, args.gap_ms / 1000, services.writer_pid, pgdata
                    ),
                    "unchanged": await _phase(
                        archiver, unchanged, args.gap_ms / 1000, services.writer_pid, pgdata
                    ),
                }
            finally:
                await archiver.stop()
                await channel.close()
    raw = [len(s.payload) for s in snapshots]
    figures["received_bytes_per_poll"] = sum(raw) / len(raw)
    figures["load_average"] = os.getloadavg()
    return figures


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print CPU ms per archived poll (exit 1 when a poll was not archived)."""
    if args.races < 1 or args.snapshots < 2 or args.gap_ms < 0:
        print("bench archive-cpu: --races >= 1, --snapshots >= 2 and --gap-ms >= 0", file=sys.stderr)
        return 2
    try:
        figures = uvloop.run(_bench(args))
    except RuntimeError as exc:
        print(f"bench archive-cpu: FAILED: {exc}", file=sys.stderr)
        return 1
    print(
        f"{'payloads':<10} {'polls':>6} {'pack':>7} {'fetcher':>8} {'writer':>7} {'postgres':>9} "
        f"{'total':>7}  (CPU ms/poll)"
    )
    for phase in ("distinct", "unchanged"):
        f = figures[phase]
        print(
            f"{phase:<10} {f['polls']:>6} {f['pack_thread_ms']:>7.3f} {f['fetcher_ms']:>8.3f} "
            f"{f['writer_ms']:>7.3f} {f['postgres_ms']:>9.3f} {f['total_ms']:>7.3f}"
        )
    load = ", ".join(f"{value:.2f}" for value in figures["load_average"])
    print(
        f"bench archive-cpu: {figures['received_bytes_per_poll'] / 1000:.1f} KB received per poll; "
        f"load {load}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"archive-cpu-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps({"benchmark": "archive-cpu", "figures": figures}, indent=2))
    print(f"bench archive-cpu: report written to {path}")
    return 0
