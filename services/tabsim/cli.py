"""`raceday tabsim`: serve the simulated NZ TAB API.

Settings come from TABSIM_* variables (config.py) and are overridden by flags. On
start it prints one JSON line to stdout, `{"event": "tabsim_listening", "url": ...}`,
so a parent process can find the port when `--port 0` asked for a free one.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any

import uvloop

from services.common.config import ConfigError, Env, exit_on_config_error, fail
from services.common.logs import configure_logging, log_event
from services.tabsim.config import TabSimConfig, parse_faults, parse_instant_ns
from services.tabsim.faults import MALFORMED_MODES, Faults
from services.tabsim.plunges import parse_plunge_spec
from services.tabsim.scenario import SCENARIO_KINDS
from services.tabsim.server import LISTENING_EVENT, bind_socket, make_server, origin
from services.tabsim.state import SimState

logger = logging.getLogger("services.tabsim")


DESCRIPTION = (
    "Serve /affiliates/v1/racing/* from a synthetic race day (or the recordings with --replay), "
    "with fault knobs, injected plunges and an admin API under /__sim/."
)
PLUNGE_HELP = (
    "inject a plunge: runner RUNNER (a number or an entrant id) of race RACE (a race id, or next / "
    "next+N: the first Open NZ/AUS gallops or harness race whose bucket opens 5+ simulated minutes "
    "ahead, skipping N) takes SHARE (0 < SHARE <= 1) of the Win and Place money bet while the race "
    "is in money-flow bucket BUCKET (60, 55, ..., 5, 4, 3, 2, 1, 0 minutes to start); repeatable, "
    "replaces TABSIM_PLUNGES (a JSON array as POST /__sim/plunges takes, or these specs "
    "comma-separated). Bucket 5 shows it most exactly: the pools grow most in it, and Raceday sees "
    "a runner's money only to a whole hold percentage of the pool"
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `tabsim` subcommand."""
    parser = subparsers.add_parser(
        "tabsim", help="run the simulated NZ TAB API (tests, benchmarks, local runs)", description=DESCRIPTION
    )
    _add_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m services.tabsim.cli`: the same command without loading the other subcommands."""
    parser = argparse.ArgumentParser(prog="raceday tabsim", description=DESCRIPTION)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (TABSIM_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port, 0 for a free one (TABSIM_PORT, default 8900)")
    parser.add_argument("--seed", type=int, help="seed of the synthetic day (TABSIM_SEED, default 1)")
    parser.add_argument("--meetings", type=int, help="meetings in the day (TABSIM_MEETINGS, default 8)")
    parser.add_argument("--races", type=int, help="races per meeting (TABSIM_RACES, default 8)")
    parser.add_argument(
        "--speed", type=float, help="simulated seconds per real second (TABSIM_SPEED, default 1)"
    )
    parser.add_argument(
        "--scenario",
        choices=SCENARIO_KINDS,
        help="day: a varied race day around now; bench: every race Open, starting 2-10 min ahead",
    )
    parser.add_argument("--replay", action="store_true", default=None, help="serve the recorded responses")
    parser.add_argument("--now", help="simulated start instant, RFC 3339 or epoch ms (TABSIM_NOW)")
    parser.add_argument("--offset-s", type=float, help="simulated time = real time + offset")
    parser.add_argument("--first-start-offset-s", type=int, help="first race of the first meeting, from now")
    parser.add_argument("--race-spacing-s", type=int, help="seconds between races of a meeting")
    parser.add_argument("--meeting-stagger-s", type=int, help="seconds between meetings' first races")
    parser.add_argument("--field-min", type=int, help="smallest field")
    parser.add_argument("--field-max", type=int, help="largest field")
    parser.add_argument("--faults", help="fault knobs as JSON, as the admin API takes them (TABSIM_FAULTS)")
    parser.add_argument("--fault-5xx-rate", type=float, help="share of requests answered with a 5xx")
    parser.add_argument("--fault-5xx-status", type=int, default=503, help="the 5xx status (default 503)")
    parser.add_argument("--fault-429-rate", type=float, help="share of requests answered with 429")
    parser.add_argument("--fault-429-retry-after", default="1", help="Retry-After of those 429s")
    parser.add_argument("--fault-slow-s", type=float, help="added latency in seconds")
    parser.add_argument("--fault-slow-rate", type=float, default=1.0, help="share of slowed requests")
    parser.add_argument("--fault-malformed-rate", type=float, help="share of malformed bodies")
    parser.add_argument("--fault-malformed-mode", choices=MALFORMED_MODES, default="truncated")
    parser.add_argument("--fault-data-error-rate", type=float, help="share of events with data.error set")
    parser.add_argument(
        "--plunge", action="append", metavar="RACE:RUNNER:SHARE:BUCKET", dest="plunges", help=PLUNGE_HELP
    )
    parser.add_argument(
        "--no-identification-check",
        action="store_true",
        help="accept requests without From/X-Partner/X-Partner-ID (TABSIM_REQUIRE_IDENTIFICATION=false)",
    )
    parser.add_argument("--gzip-level", type=int, help="gzip level for clients that accept it, 0 = off")
    parser.add_argument(
        "--snapshot-s",
        type=float,
        help="serve each event from a snapshot at most this many simulated seconds old (0 = render always)",
    )
    parser.add_argument(
        "--archive",
        metavar="DATABASE_URL",
        help="serve an archived NZ day from this database's raw-payload archive (with --archive-date)",
    )
    parser.add_argument(
        "--archive-date", type=date.fromisoformat, metavar="YYYY-MM-DD", help="the archived NZ day to serve"
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace, env: Env | None = None) -> TabSimConfig:
    """TabSimConfig from the environment with the flags applied on top."""
    config = TabSimConfig.from_env(env)
    scenario_changes: dict[str, Any] = {}
    for flag, key in (
        ("scenario", "kind"),
        ("meetings", "meetings"),
        ("races", "races"),
        ("first_start_offset_s", "first_start_offset_s"),
        ("race_spacing_s", "race_spacing_s"),
        ("meeting_stagger_s", "meeting_stagger_s"),
        ("field_min", "field_min"),
        ("field_max", "field_max"),
    ):
        value = getattr(args, flag)
        if value is not None:
            scenario_changes[key] = value
    try:
        scenario = config.scenario.updated(scenario_changes) if scenario_changes else config.scenario
    except ValueError as exc:
        raise ConfigError("--scenario settings", str(exc)) from None
    faults = dict(config.faults)
    if args.faults is not None:
        try:
            faults.update(parse_faults(args.faults))
        except ValueError as exc:
            raise ConfigError("--faults", str(exc)) from None
    if args.fault_5xx_rate is not None:
        faults["http_5xx"] = {"rate": args.fault_5xx_rate, "status": args.fault_5xx_status}
    if args.fault_429_rate is not None:
        faults["http_429"] = {"rate": args.fault_429_rate, "retry_after": args.fault_429_retry_after}
    if args.fault_slow_s is not None:
        faults["slow"] = {"rate": args.fault_slow_rate, "delay_s": args.fault_slow_s}
    if args.fault_malformed_rate is not None:
        faults["malformed"] = {"rate": args.fault_malformed_rate, "mode": args.fault_malformed_mode}
    if args.fault_data_error_rate is not None:
        faults["data_error"] = {"rate": args.fault_data_error_rate}
    if args.no_identification_check:
        faults["require_identification"] = False
    try:
        Faults.from_json(faults)
    except ValueError as exc:
        raise ConfigError("--fault-*", str(exc)) from None
    changes: dict[str, Any] = {"scenario": scenario, "faults": faults}
    if args.plunges:
        try:
            changes["plunges"] = tuple(parse_plunge_spec(spec) for spec in args.plunges)
        except ValueError as exc:
            raise ConfigError("--plunge", str(exc)) from None
    if args.archive is not None:
        changes["archive_url"] = args.archive
    if args.archive_date is not None:
        changes["archive_date"] = args.archive_date
    for flag in ("host", "port", "seed", "speed", "replay", "offset_s", "gzip_level", "snapshot_s"):
        value = getattr(args, flag)
        if value is not None:
            changes[flag] = value
    if args.now is not None:
        try:
            changes["now_ns"] = parse_instant_ns(args.now)
        except ValueError as exc:
            raise ConfigError("--now", str(exc)) from None
    try:
        return dataclasses.replace(config, **changes)
    except ValueError as exc:
        raise ConfigError("tabsim", str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Validate the settings, then serve until SIGTERM/SIGINT."""
    with exit_on_config_error():
        config = config_from_args(args)
    configure_logging("tabsim", args.log_level)
    try:
        with exit_on_config_error():
            uvloop.run(serve(config))
    except OSError as exc:
        fail(f"cannot listen on {config.host}:{config.port}: {exc}")
    return 0


async def serve(config: TabSimConfig) -> None:
    """Bind, announce the URL on stdout, and serve until a stop signal."""
    sock = bind_socket(config.host, config.port)
    port = int(sock.getsockname()[1])
    url = origin(config.host, port)
    try:
        state = SimState(config)
    except ConfigError:
        # A start-up plunge that fits no race of the day just laid out: run() reports it.
        sock.close()
        raise
    server = make_server(state)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    day = state.day
    log_event(
        logger,
        "tabsim_started",
        url=url,
        mode="replay" if config.replay else "simulate",
        seed=config.seed,
        scenario=config.scenario.kind,
        speed=config.speed,
        nz_date=day.date if day else None,
        meetings=len(day.meetings) if day else None,
        races=len(day.races) if day else None,
        require_identification=state.faults.require_identification,
        plunges=[plunge.to_json(state.day.races[plunge.race_id]) for plunge in state.plunges if state.day],
    )
    sys.stdout.write(json.dumps({"event": LISTENING_EVENT, "url": url}) + "\n")
    sys.stdout.flush()
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        log_event(logger, "tabsim_stopped", url=url, requests=state.log.to_json(limit=0)["total"])


if __name__ == "__main__":
    sys.exit(main())
