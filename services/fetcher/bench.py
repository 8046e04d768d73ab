"""`raceday bench pipeline`: end-to-end poll latency against real services on loopback.

The simulated TAB serves open races built from the recorded event; the writer and
the transformer run as their own processes (`raceday serve`) over a scratch database
(created on the server RACEDAY_DATABASE_URL names, or on an embedded PostgreSQL, and
dropped afterwards); this process plays the fetcher with the
real TAB client and pipeline. It polls one race at a time, then batches of
concurrent races, and reports min, median, p95 and p99 per stage and in total.

`--archive on` hands every payload to the raw-payload archive as the fetcher does
(services/fetcher/archive.py); `--archive both` alternates rounds with and without it, in one
run, and reports the difference of the medians (the archive's target: at most 0.5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from services.common.channels import create_channel
from services.common.config import ConfigError, Env, exit_on_config_error
from services.common.database import configured_database_url, scratch_database, start_embedded_postgres
from services.common.health import NotServingError, wait_serving
from services.common.net import free_port
from services.common.nztime import nz_today
from services.common.proto.raceday.v1 import writer_pb2_grpc
from services.common.supervisor import ProcessSpec, Supervisor
from services.fetcher.archive import ArchiveSettings, PollArchiver
from services.fetcher.bench_driver import batch_rounds, first_polls, make_pipeline, tab_settings
from services.fetcher.bench_driver import race_ids as fetch_race_ids
from services.fetcher.pipeline import PollResult, RacePipeline
from services.fetcher.tab_client import TabClient
from services.tabsim.server import TabSimProcess, start_tabsim_process

STAGES = ("fetch", "state", "transform", "write", "total")
TAB_REFRESH_S = 15
START_TIMEOUT_S = 60.0
# Targets of issue 6 on this machine (median, ms): one race end to end, and a batch of five.
TARGET_SINGLE_MS = 15.0
TARGET_BATCH5_MS = 50.0
# Issue 15: what the archive may add to one race's median poll.
TARGET_ARCHIVE_OVERHEAD_MS = 0.5


def add_bench_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `raceday bench pipeline`."""
    parser = subparsers.add_parser(
        "pipeline",
        help="poll latency end to end (simulated TAB, transformer, writer, PostgreSQL on loopback)",
        description=__doc__,
    )
    parser.add_argument(
        "--iterations", type=int, default=40, help="measured rounds per scenario (default 40)"
    )
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured rounds first (default 5)")
    parser.add_argument(
        "--batches", default="1,5,20", help="concurrent races per round, comma-separated (default 1,5,20)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for JSON and CSV")
    parser.add_argument(
        "--archive",
        choices=("off", "on", "both"),
        default="off",
        help="hand payloads to the raw-payload archive: off, on, or both (alternate rounds; default off)",
    )
    compare = parser.add_argument_group(
        "comparison with another revision (--compare REV)",
        "Build REV once in a cached tree of its own and run its whole stack and this one's interleaved; "
        "--iterations is then the rounds per tree, scenario and comparison round.",
    )
    compare.add_argument("--compare", metavar="REV", help="compare with this git revision (e.g. 47f0bbe)")
    compare.add_argument(
        "--rounds", type=int, default=3, help="comparison rounds, each on fresh stacks (default 3)"
    )
    compare.add_argument(
        "--pairs",
        type=int,
        default=4,
        help="pairs of blocks per scenario and round (more, shorter blocks track the load; default 4)",
    )
    compare.add_argument(
        "--saturate-s",
        type=float,
        default=3.0,
        help="seconds of each saturating block, 20 pollers busy (0 skips it; default 3)",
    )
    compare.add_argument(
        "--malloc",
        choices=("fixed", "default"),
        default="fixed",
        help="glibc malloc thresholds of every Raceday process: fixed (default) or glibc's own",
    )
    parser.set_defaults(handler=run)


@dataclass(slots=True)
class Scenario:
    """Measurements of one batch size (`first`: each race's first, cold poll, one at a time)."""

    batch: int
    first: bool = False
    # With or without the archive (None: the run does not compare them).
    archive: bool | None = None
    polls: list[PollResult] = field(default_factory=list)
    round_ms: list[float] = field(default_factory=list)

    @property
    def failures(self) -> list[PollResult]:
        """Polls that did not succeed."""
        return [poll for poll in self.polls if poll.outcome != "ok"]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "p95": round(_percentile(values, 0.95), 3),
        "p99": round(_percentile(values, 0.99), 3),
        "n": len(values),
    }


def _report(scenario: Scenario) -> dict[str, Any]:
    ok = [poll for poll in scenario.polls if poll.outcome == "ok"]
    stages = {
        stage: _summary([poll.timings_ms[stage] for poll in ok if stage in poll.timings_ms])
        for stage in STAGES
    }
    label = "first poll" if scenario.first else f"batch of {scenario.batch}"
    if scenario.archive is not None:
        label += " +archive" if scenario.archive else " -archive"
    return {
        "batch": scenario.batch,
        "archive": scenario.archive,
        "scenario": label,
        "polls": len(scenario.polls),
        "failed": len(scenario.failures),
        "stages_ms": stages,
        "round_ms": _summary(scenario.round_ms),
        "money_flow_rows": sum(poll.rows.get("money_flow", 0) for poll in ok),
        "odds_rows": sum(poll.rows.get("odds", 0) for poll in ok),
    }


def _print_report(reports: list[dict[str, Any]]) -> None:
    print(f"{'scenario':>10}  {'stage':<9} {'min':>8} {'median':>8} {'p95':>8} {'p99':>8}   (ms)")
    for report in reports:
        for stage, figures in report["stages_ms"].items():
            if figures:
                print(
                    f"{report['scenario']:>10}  {stage:<9} {figures['min']:>8.2f} {figures['median']:>8.2f} "
                    f"{figures['p95']:>8.2f} {figures['p99']:>8.2f}"
                )
        rounds = report["round_ms"]
        print(
            f"{report['scenario']:>10}  {'round':<9} {rounds['min']:>8.2f} {rounds['median']:>8.2f} "
            f"{rounds['p95']:>8.2f} {rounds['p99']:>8.2f}   "
            f"polls={report['polls']} failed={report['failed']} "
            f"money_flow_rows={report['money_flow_rows']} odds_rows={report['odds_rows']}"
        )


def _write_files(out: Path, reports: list[dict[str, Any]]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    json_path = out / f"pipeline-{stamp}.json"
    csv_path = out / f"pipeline-{stamp}.csv"
    json_path.write_text(json.dumps({"benchmark": "pipeline", "scenarios": reports}, indent=2))
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scenario", "stage", "min_ms", "median_ms", "p95_ms", "p99_ms", "n"])
        for report in reports:
            rows = {**report["stages_ms"], "round": report["round_ms"]}
            for stage, figures in rows.items():
                if figures:
                    writer.writerow(
                        [
                            report["scenario"],
                            stage,
                            *(figures[key] for key in ("min", "median", "p95", "p99", "n")),
                        ]
                    )
    return json_path, csv_path


@dataclass(frozen=True, slots=True)
class ServiceTargets:
    """The writer and transformer processes of a benchmark: gRPC targets and process ids."""

    writer: str
    transformer: str
    writer_pid: int
    transformer_pid: int


@contextlib.asynccontextmanager
async def service_processes(
    database_url: str,
    logs: Path,
    *,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[ServiceTargets]:
    """The writer and transformer as `raceday serve` processes of the interpreter `python` (another
    tree's in a comparison: `-P` keeps the working directory out of its import path); `env` replaces
    this process's environment as their base."""
    supervisor = Supervisor()
    targets: dict[str, str] = {}
    pids: dict[str, int] = {}
    base = dict(os.environ if env is None else env)
    try:
        for service in ("writer", "transformer"):
            port = free_port()
            service_env = {
                **base,
                "RACEDAY_DATABASE_URL": database_url,
                f"RACEDAY_{service.upper()}_PORT": str(port),
                f"RACEDAY_{service.upper()}_METRICS_PORT": str(free_port()),
                "RACEDAY_LOG_LEVEL": "WARNING",
            }
            argv = [python, "-P", "-m", "services.cli", "serve", service]
            child = await supervisor.start(ProcessSpec(service, argv, service_env, logs / service))
            targets[service] = f"127.0.0.1:{port}"
            try:
                await wait_serving(targets[service], timeout_s=START_TIMEOUT_S)
            except NotServingError as exc:
                raise NotServingError(f"{service} {exc} (log: {logs / service})") from None
            if child.pid is None:
                raise NotServingError(f"{service} exited while starting (log: {logs / service})")
            pids[service] = child.pid
        yield ServiceTargets(targets["writer"], targets["transformer"], pids["writer"], pids["transformer"])
    finally:
        await supervisor.stop()


async def server_url(env: Env, scratch: Path) -> str:
    """RACEDAY_DATABASE_URL, or an embedded PostgreSQL whose data lives (and dies) in `scratch`."""
    database_url = configured_database_url(env)
    if database_url is None:
        print("bench pipeline: starting an embedded PostgreSQL in a temporary directory", flush=True)
        database_url = await asyncio.to_thread(
            start_embedded_postgres, scratch / "postgres", cleanup_mode="delete"
        )
    return database_url


def start_bench_tabsim(races: int, env: Mapping[str, str] | None = None) -> TabSimProcess:
    """The simulated TAB with one meeting of `races` open races (bench scenario)."""
    return start_tabsim_process(
        [
            "--scenario",
            "bench",
            "--meetings",
            "1",
            "--races",
            str(races),
            # The TAB's data refreshes about every 15 s: serve each event from a 15 s snapshot,
            # so the figures measure Raceday's pipeline rather than the simulator's rendering.
            "--snapshot-s",
            str(TAB_REFRESH_S),
        ],
        env={**(os.environ if env is None else env), "RACEDAY_LOG_LEVEL": "WARNING"},
    )


async def _first_polls(pipeline: RacePipeline, race_ids: list[str]) -> Scenario:
    """Each race's first poll, one at a time: no cached state, every odds row is new."""
    polls, round_ms = await first_polls(pipeline, race_ids)
    return Scenario(1, first=True, polls=polls, round_ms=round_ms)


async def _measure(
    pipeline: RacePipeline,
    race_ids: list[str],
    batch: int,
    warmup: int,
    iterations: int,
    *,
    archives: Sequence[PollArchiver | None] = (None,),
) -> list[Scenario]:
    """Rounds of `batch` concurrent polls; with several `archives`, rounds alternate between them."""
    compare = len(archives) > 1
    scenarios = [Scenario(batch, archive=(archive is not None) if compare else None) for archive in archives]
    # The same races every round, as the scheduler polls them: the warm-up rounds are their first polls.
    chosen = race_ids[:batch]
    for round_number in range(warmup + iterations * len(archives)):
        variant = round_number % len(archives)
        pipeline.archive = archives[variant]
        [(polls, elapsed_ms)] = await batch_rounds(pipeline, chosen, 1)
        if round_number >= warmup:
            scenarios[variant].polls.extend(polls)
            scenarios[variant].round_ms.append(elapsed_ms)
    return scenarios


async def _bench(args: argparse.Namespace, batches: list[int], env: Env) -> int:
    with tempfile.TemporaryDirectory(prefix="raceday-bench-") as scratch:
        scratch_path = Path(scratch)
        server = await server_url(env, scratch_path)
        # Its own database: the benchmark's races never land among anyone's real ones.
        with scratch_database(server, "raceday_bench_pipeline") as database_url:
            return await _bench_on(args, batches, database_url, scratch_path)


async def _bench_on(
    args: argparse.Namespace, batches: list[int], database_url: str, scratch_path: Path
) -> int:
    races_needed = max(batches)
    tabsim = start_bench_tabsim(min(max(races_needed, 8), 30))
    try:
        async with (
            service_processes(database_url, scratch_path / "logs") as services,
            TabClient(tab_settings(tabsim.url)) as tab,
        ):
            writer_channel = create_channel(services.writer)
            transformer_channel = create_channel(services.transformer)
            writer = writer_pb2_grpc.WriterServiceStub(writer_channel)
            pipeline = make_pipeline(tab, transformer_channel, writer_channel)
            archiver = PollArchiver(writer_channel, ArchiveSettings())
            variants: dict[str, list[PollArchiver | None]] = {
                "off": [None],
                "on": [archiver],
                "both": [archiver, None],
            }
            archives = variants[args.archive]
            archiver.start()
            pipeline.archive = archives[0]
            race_ids = await fetch_race_ids(tab, writer, nz_today())
            if len(race_ids) < races_needed:
                raise RuntimeError(f"the simulated TAB offers {len(race_ids)} races, {races_needed} needed")
            print(f"bench pipeline: {len(race_ids)} open races; batches {batches}", flush=True)
            print(f"bench pipeline: first poll of each of {len(race_ids)} races ...", flush=True)
            reports = [_report(await _first_polls(pipeline, race_ids))]
            for batch in batches:
                print(f"bench pipeline: batch of {batch}, {args.iterations} rounds ...", flush=True)
                scenarios = await _measure(
                    pipeline, race_ids, batch, args.warmup, args.iterations, archives=archives
                )
                for scenario in scenarios:
                    reports.append(_report(scenario))
                    for failure in scenario.failures[:5]:
                        print(
                            f"  failed poll {failure.race_id}: {failure.failed_stage} "
                            f"{failure.failure_kind} {failure.message}",
                            file=sys.stderr,
                        )
            await archiver.stop(grace_s=60.0)
            if args.archive != "off":
                print(
                    f"bench pipeline: archive: {archiver.archived} polls archived, "
                    f"{archiver.dropped} dropped",
                    flush=True,
                )
            await writer_channel.close()
            await transformer_channel.close()
    finally:
        tabsim.stop()
    _print_report(reports)
    json_path, csv_path = _write_files(args.out, reports)
    print(f"bench pipeline: reports written to {json_path} and {csv_path}")
    return _verdict(reports)


def _verdict(reports: list[dict[str, Any]]) -> int:
    failed = sum(report["failed"] for report in reports)
    problems = [f"{failed} polls failed"] if failed else []
    for report in reports:
        single = report["batch"] == 1 and report["scenario"] != "first poll"
        median = report["stages_ms"]["total"].get("median") if single else None
        if median is not None and median > TARGET_SINGLE_MS:
            problems.append(f"single-race median {median:.2f} ms is above {TARGET_SINGLE_MS} ms")
        if report["batch"] == 5 and report["round_ms"]["median"] > TARGET_BATCH5_MS:
            problems.append(
                f"batch-of-5 median {report['round_ms']['median']:.2f} ms is above {TARGET_BATCH5_MS} ms"
            )
    problems += _archive_overhead(reports)
    for problem in problems:
        print(f"bench pipeline: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _archive_overhead(reports: list[dict[str, Any]]) -> list[str]:
    """Print the archive's cost per batch size (rounds with it minus rounds without); problems."""
    problems: list[str] = []
    for batch in sorted({report["batch"] for report in reports if report["archive"] is not None}):
        with_it, without = (
            next(r for r in reports if r["batch"] == batch and r["archive"] is flag) for flag in (True, False)
        )
        poll_ms = with_it["stages_ms"]["total"]["median"] - without["stages_ms"]["total"]["median"]
        round_ms = with_it["round_ms"]["median"] - without["round_ms"]["median"]
        print(
            f"bench pipeline: archive overhead, batch of {batch}: median poll {poll_ms:+.3f} ms, "
            f"median round {round_ms:+.3f} ms"
        )
        if batch == 1 and poll_ms > TARGET_ARCHIVE_OVERHEAD_MS:
            problems.append(
                f"the archive adds {poll_ms:.3f} ms to the one-race median "
                f"(target {TARGET_ARCHIVE_OVERHEAD_MS} ms)"
            )
    return problems


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (or, with --compare, the comparison); exit 1 when any poll failed or, without
    --compare, a target was missed."""
    env = Env()
    with exit_on_config_error():
        try:
            batches = [int(part) for part in str(args.batches).split(",") if part.strip()]
        except ValueError:
            raise ConfigError("--batches", f"must be integers such as 1,5,20, got {args.batches!r}") from None
        if not batches or any(batch < 1 for batch in batches):
            raise ConfigError("--batches", "needs at least one positive batch size")
        if args.iterations < 1 or args.warmup < 0:
            raise ConfigError("--iterations", "must be at least 1 (and --warmup at least 0)")
        if args.compare is not None:
            if args.rounds < 1 or args.pairs < 1 or args.saturate_s < 0:
                raise ConfigError("--rounds", "--rounds and --pairs must be at least 1, --saturate-s >= 0")
            args.block_rounds = -(-args.iterations // args.pairs)
    if args.compare is not None:
        from services.fetcher.compare import run_compare

        return run_compare(args)
    return uvloop.run(_bench(args, batches, env))
