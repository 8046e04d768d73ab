"""`raceday bench freshness`: the data's age at commit, fixed-phase against cache-aligned polling.

Two whole systems (`raceday up`, each on its own database, ports and simulated TAB with the
same seed and 15 s snapshots) run side by side for the same minutes, one polling at a fixed
phase, the other cache-aligned. The figure is the data age at commit (`committed_at −
generated_at` of each poll) for polls in the last five minutes before a race's start: the
final minutes are when it matters.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import psycopg

from services.common.config import ConfigError, Env, exit_on_config_error
from services.common.database import configured_database_url, scratch_database, start_embedded_postgres
from services.common.net import free_port
from services.common.settings import DEFAULT_GRPC_PORTS

TARGET_ALIGNED_MEDIAN_S: Final = 3.0
SNAPSHOT_S: Final = 15
PROGRESS_EVERY_S: Final = 30.0
MODES: Final = {"fixed phase": "false", "cache-aligned": "true"}

# Data age at commit of the polls taken in the last five minutes before each race's start.
FINAL_MINUTES_AGES: Final = """
    SELECT extract(epoch FROM p.committed_at - p.generated_at)::float8
    FROM race_polls p JOIN races r USING (race_id)
    WHERE NOT p.baseline AND p.generated_at IS NOT NULL AND p.committed_at IS NOT NULL
      AND p.polled_at BETWEEN r.start_time - interval '5 minutes' AND r.start_time
"""


def add_bench_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `raceday bench freshness`."""
    parser = subparsers.add_parser(
        "freshness",
        help="data age at commit in the final 5 minutes, fixed-phase against cache-aligned polling",
        description=__doc__,
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="how long both systems run (default 10)")
    parser.add_argument(
        "--sim-speed", type=float, default=1.0, help="simulated clock speed of both systems (default 1)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated day (default 1)")
    parser.add_argument(
        "--out", type=Path, default=Path("bench-results"), help="directory for the JSON report"
    )
    parser.set_defaults(handler=run)


@dataclass
class System:
    """One `raceday up` of the comparison."""

    mode: str
    database_url: str
    process: subprocess.Popen[bytes]


@contextmanager
def _system(
    mode: str, align: str, database_url: str, scratch: Path, args: argparse.Namespace
) -> Iterator[System]:
    data_dir = scratch / mode.replace(" ", "-")
    data_dir.mkdir()
    env = {
        **os.environ,
        "RACEDAY_DATABASE_URL": database_url,
        "RACEDAY_DATA_DIR": str(data_dir),
        "RACEDAY_CACHE_ALIGN": align,
        "TABSIM_SNAPSHOT_S": str(SNAPSHOT_S),
        "RACEDAY_GATEWAY_HTTP_PORT": str(free_port()),
    }
    for service in DEFAULT_GRPC_PORTS:
        env[f"RACEDAY_{service.upper()}_PORT"] = str(free_port())
        env[f"RACEDAY_{service.upper()}_METRICS_PORT"] = str(free_port())
        env.pop(f"RACEDAY_{service.upper()}_ADDR", None)
    command = [
        sys.executable,
        "-m",
        "services.cli",
        "up",
        "--sim-speed",
        str(args.sim_speed),
        "--sim-seed",
        str(args.seed),
        "--sim-port",
        str(free_port()),
    ]
    log: IO[bytes]
    with (data_dir / "up.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield System(mode, database_url, process)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _ages(database_url: str) -> list[float]:
    with psycopg.connect(database_url) as conn:
        try:
            return [row[0] for row in conn.execute(FINAL_MINUTES_AGES)]
        except psycopg.errors.UndefinedTable:  # not migrated yet
            return []


def _summary(ages: list[float]) -> dict[str, Any]:
    if not ages:
        return {"polls": 0}
    ordered = sorted(ages)
    return {
        "polls": len(ordered),
        "median_s": round(statistics.median(ordered), 3),
        "mean_s": round(statistics.fmean(ordered), 3),
        "p90_s": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
        "max_s": round(ordered[-1], 3),
    }


def _compare(args: argparse.Namespace, server_url: str, scratch: Path) -> dict[str, Any]:
    with ExitStack() as stack:
        systems = []
        for mode, align in MODES.items():
            database_url = stack.enter_context(scratch_database(server_url, "raceday_freshness"))
            systems.append(stack.enter_context(_system(mode, align, database_url, scratch, args)))
        print(
            f"bench freshness: two systems at sim speed {args.sim_speed} for {args.minutes:g} min "
            f"(logs under {scratch})",
            flush=True,
        )
        deadline = time.monotonic() + args.minutes * 60
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(PROGRESS_EVERY_S, left))
            for system in systems:
                if system.process.poll() is not None:
                    raise RuntimeError(f"the {system.mode} system exited early; see its up.log")
            counts = ", ".join(f"{s.mode} {len(_ages(s.database_url))}" for s in systems)
            print(
                f"bench freshness: {max(0.0, left - PROGRESS_EVERY_S) / 60:.1f} min left; "
                f"final-minutes polls: {counts}",
                flush=True,
            )
        return {system.mode: _summary(_ages(system.database_url)) for system in systems}


def run(args: argparse.Namespace) -> int:
    """Run both systems, print the data age at commit of each, exit 1 when the target is missed."""
    env = Env()
    with exit_on_config_error():
        if not 0 < args.minutes <= 24 * 60:
            raise ConfigError("--minutes", f"must be in (0, 1440], got {args.minutes}")
        if not 0 < args.sim_speed <= 100:
            raise ConfigError("--sim-speed", f"must be in (0, 100], got {args.sim_speed}")
        server_url = configured_database_url(env)
    with tempfile.TemporaryDirectory(prefix="raceday-freshness-") as scratch:
        if server_url is None:
            print("bench freshness: starting an embedded PostgreSQL in a temporary directory", flush=True)
            server_url = start_embedded_postgres(Path(scratch) / "postgres", cleanup_mode="delete")
        report = _compare(args, server_url, Path(scratch))
    print("\ndata age at commit (commit − TAB generated_time), polls in the last 5 min before the start:")
    print(f"{'mode':<15}{'polls':>7}{'median s':>10}{'mean s':>8}{'p90 s':>8}{'max s':>8}")
    for mode, figures in report.items():
        if figures["polls"]:
            print(
                f"{mode:<15}{figures['polls']:>7}{figures['median_s']:>10}{figures['mean_s']:>8}"
                f"{figures['p90_s']:>8}{figures['max_s']:>8}"
            )
        else:
            print(f"{mode:<15}{0:>7}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"freshness-{time.strftime('%Y%m%dT%H%M%S')}.json"
    settings = {
        "minutes": args.minutes,
        "sim_speed": args.sim_speed,
        "seed": args.seed,
        "snapshot_s": SNAPSHOT_S,
    }
    path.write_text(json.dumps({"settings": settings, "modes": report}, indent=2) + "\n")
    print(f"bench freshness: report written to {path}")
    aligned = report["cache-aligned"]
    if not aligned["polls"] or not all(figures["polls"] for figures in report.values()):
        print("bench freshness: FAILED: no polls in the final 5 minutes (run longer)", file=sys.stderr)
        return 1
    if aligned["median_s"] > TARGET_ALIGNED_MEDIAN_S:
        print(
            f"bench freshness: FAILED: cache-aligned median {aligned['median_s']} s is above "
            f"{TARGET_ALIGNED_MEDIAN_S} s",
            file=sys.stderr,
        )
        return 1
    return 0
