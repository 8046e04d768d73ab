"""`raceday soak --minutes N [--seed S]`: a race day under faults, then what was lost (nothing, we hope)."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.common.config import ConfigError, Env, exit_on_config_error
from services.common.database import import_pgserver
from services.common.logs import configure_logging
from services.soak.schedule import repeats_for


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `soak` subcommand."""
    parser = subparsers.add_parser(
        "soak",
        help="a simulated race day under a schedule of faults, then an audit of what was stored",
        description=(
            "Run the whole system at a high simulated speed on a PostgreSQL of its own while faults "
            "are injected (SIGKILL of each service, PostgreSQL restart and outage, TAB 5xx, 429, slow "
            "and truncated responses); report polls committed, failed, lost, duplicate rows, the "
            "increments invariant, missed polls and recovery times. Exits 1 on any loss, duplicate "
            "or broken invariant."
        ),
    )
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="real minutes to run (default 10, at least 5)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault schedule and the race day")
    parser.add_argument("--speed", type=float, default=60.0, help="simulated clock speed (default 60)")
    parser.add_argument(
        "--work-dir", type=Path, help="where logs, the spool and the report go (default: a temp dir)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate, then run the soak."""
    from services.soak.run import SoakOptions, run_soak

    env = Env()
    with exit_on_config_error():
        if args.minutes < 5:
            raise ConfigError("--minutes", f"must be at least 5, got {args.minutes}")
        if not 1 <= args.speed <= 600:
            raise ConfigError("--speed", f"must be within 1..600, got {args.speed}")
        import_pgserver()  # the soak's own PostgreSQL is built from the embedded binaries
        configure_logging(
            "soak", env.choice("RACEDAY_LOG_LEVEL", "WARNING", ("DEBUG", "INFO", "WARNING", "ERROR"))
        )
    print(
        f"raceday soak: {args.minutes:g} min at {args.speed:g}x, seed {args.seed}, "
        f"each fault kind {repeats_for(args.minutes)}x",
        flush=True,
    )
    return run_soak(
        SoakOptions(minutes=args.minutes, seed=args.seed, speed=args.speed, work_dir=args.work_dir)
    )
