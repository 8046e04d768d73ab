"""`raceday up`: the whole system on one machine.

Embedded PostgreSQL unless RACEDAY_DATABASE_URL is set, the simulated TAB unless
a TAB URL is given, then the writer, transformer, fetcher and gateway as
separate supervised processes on loopback ports. Ctrl-C stops all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import uvloop

from services.common.clock import Clock, real_now_ms
from services.common.config import ConfigError, Env, exit_on_config_error
from services.common.database import configured_database_url, import_pgserver, start_embedded_postgres
from services.common.health import NotServingError, wait_serving
from services.common.logs import configure_logging
from services.common.proto.raceday.v1 import fetcher_pb2, fetcher_pb2_grpc
from services.common.settings import (
    DEFAULT_GRPC_PORTS,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORTS,
    ServiceName,
    data_dir,
)
from services.common.supervisor import ProcessSpec, Supervisor

START_TIMEOUT_S = 60.0
PROGRESS_EVERY_S = 30.0
# Dependencies first: the fetcher waits for the writer and transformer, the gateway serves the writer's data.
START_ORDER: tuple[ServiceName, ...] = ("writer", "transformer", "fetcher", "gateway")
DEFAULT_TABSIM_PORT = 8900
SIM_IDENTIFICATION = {
    "NZTAB_FROM": "raceday@localhost",
    "NZTAB_PARTNER": "Raceday local",
    "NZTAB_PARTNER_ID": "raceday-local",
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `up` subcommand."""
    parser = subparsers.add_parser(
        "up",
        help="run the whole system locally (database, simulated TAB, four services, dashboard)",
        description=(
            "Run Raceday on this machine: embedded PostgreSQL unless RACEDAY_DATABASE_URL is set, "
            "the simulated TAB unless --tab-url/NZTAB_BASE_URL is given, and the four services "
            "as supervised processes."
        ),
    )
    parser.add_argument(
        "--http-port", type=int, help=f"dashboard and REST port (default {DEFAULT_HTTP_PORT})"
    )
    parser.add_argument(
        "--tab-url", help="a real TAB origin (default: NZTAB_BASE_URL, else the simulated TAB)"
    )
    parser.add_argument(
        "--sim-speed", type=float, default=1.0, help="simulated clock speed (60 = a minute a second)"
    )
    parser.add_argument("--sim-seed", type=int, default=1, help="seed of the simulated race day")
    parser.add_argument("--sim-port", type=int, default=DEFAULT_TABSIM_PORT, help="port of the simulated TAB")
    parser.add_argument(
        "--verbose", action="store_true", help="stream every service's JSON log to the terminal"
    )
    parser.set_defaults(handler=run)


@dataclass(frozen=True, slots=True)
class Plan:
    """What `up` will start, resolved from arguments and environment."""

    http_port: int
    tab_url: str | None
    sim_speed: float
    sim_seed: int
    sim_port: int
    verbose: bool
    database_url: str | None
    data_dir: Path


def _check_port_free(port: int, variable: str) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigError(variable, f"port {port} is already in use on 127.0.0.1") from None


def _plan(args: argparse.Namespace, env: Env) -> Plan:
    http_port = (
        args.http_port
        if args.http_port is not None
        else env.port("RACEDAY_GATEWAY_HTTP_PORT", DEFAULT_HTTP_PORT)
    )
    if args.sim_speed <= 0 or args.sim_speed > 10_000:
        raise ConfigError("--sim-speed", f"must be in (0, 10000], got {args.sim_speed}")
    tab_url = args.tab_url or env.optional_text("NZTAB_BASE_URL")
    _check_port_free(http_port, "RACEDAY_GATEWAY_HTTP_PORT")
    for service, default in DEFAULT_GRPC_PORTS.items():
        _check_port_free(
            env.port(f"RACEDAY_{service.upper()}_PORT", default), f"RACEDAY_{service.upper()}_PORT"
        )
    for service, default in DEFAULT_METRICS_PORTS.items():
        name = f"RACEDAY_{service.upper()}_METRICS_PORT"
        _check_port_free(env.port(name, default), name)
    if tab_url is None:
        _check_port_free(args.sim_port, "--sim-port")
    database_url = configured_database_url(env)
    if database_url is None:
        import_pgserver()  # fail now, with how to fix it, rather than after starting the TAB
    return Plan(
        http_port=http_port,
        tab_url=tab_url,
        sim_speed=args.sim_speed,
        sim_seed=args.sim_seed,
        sim_port=args.sim_port,
        verbose=args.verbose,
        database_url=database_url,
        data_dir=data_dir(env),
    )


def run(args: argparse.Namespace) -> int:
    """Start everything, print where the dashboard is, and run until Ctrl-C."""
    env = Env()
    with exit_on_config_error():
        plan = _plan(args, env)
        configure_logging(
            "up", env.choice("RACEDAY_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
        )
    return uvloop.run(_up(plan, env))


class StartupError(RuntimeError):
    """A service did not come up; the message says which and why."""


def _say(message: str) -> None:
    print(f"raceday up: {message}", flush=True)


async def _wait_serving(name: str, port: int, supervisor: Supervisor) -> None:
    def gone() -> str | None:
        child = supervisor.children[name]
        if child.process is not None and child.process.returncode is not None and child.restarts == 0:
            return f"exited with code {child.process.returncode} during start-up; see its log"
        return None

    try:
        await wait_serving(f"127.0.0.1:{port}", timeout_s=START_TIMEOUT_S, gone=gone)
    except NotServingError as exc:
        raise StartupError(f"{name} {exc}") from None


async def _report_progress(fetcher_port: int, stop: asyncio.Event) -> None:
    """Every PROGRESS_EVERY_S, one line from the fetcher's scheduler status."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fetcher_port}") as channel:
        stub = fetcher_pb2_grpc.FetcherServiceStub(channel)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PROGRESS_EVERY_S)
                return
            try:
                status = await stub.GetSchedulerStatus(fetcher_pb2.GetSchedulerStatusRequest(), timeout=2.0)
            except grpc.aio.AioRpcError as exc:
                _say(f"fetcher status unavailable ({exc.code().name})")
                continue
            active = ", ".join(f"{tier.tier} {tier.active_races}" for tier in status.tiers)
            polls = sum(tier.polls for tier in status.tiers)
            missed = ", ".join(f"{tier.tier} {tier.missed_polls}" for tier in status.tiers)
            _say(
                f"races polled now: {active}; polls so far {polls}; "
                f"missed: {missed}; TAB circuit {status.circuit_state}"
            )


async def _up(plan: Plan, env: Env) -> int:
    base_env = dict(os.environ)
    raceday = [sys.executable, "-m", "services.cli"]
    logs_dir = plan.data_dir / "logs"
    clock = Clock(speed=plan.sim_speed, anchor_ms=real_now_ms())
    supervisor = Supervisor()
    code = 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    database_url = plan.database_url
    if database_url is None:
        _say(f"starting embedded PostgreSQL in {plan.data_dir / 'postgres'}")
        database_url = await asyncio.to_thread(start_embedded_postgres, plan.data_dir / "postgres")
    service_env = {
        **base_env,
        "RACEDAY_DATABASE_URL": database_url,
        "RACEDAY_GATEWAY_HTTP_PORT": str(plan.http_port),
    }
    for service, default in DEFAULT_GRPC_PORTS.items():
        port = env.port(f"RACEDAY_{service.upper()}_PORT", default)
        service_env.setdefault(f"RACEDAY_{service.upper()}_ADDR", f"127.0.0.1:{port}")
    try:
        if plan.tab_url is None:
            clock_env = clock.env() if plan.sim_speed != 1.0 else {}
            service_env.update(clock_env)
            for name, value in SIM_IDENTIFICATION.items():
                service_env.setdefault(name, value)
            _say(
                f"starting the simulated TAB on 127.0.0.1:{plan.sim_port} "
                f"(seed {plan.sim_seed}, speed {plan.sim_speed}x)"
            )
            await supervisor.start(
                ProcessSpec(
                    "tabsim",
                    [
                        *raceday,
                        "tabsim",
                        "--port",
                        str(plan.sim_port),
                        "--seed",
                        str(plan.sim_seed),
                        "--speed",
                        str(plan.sim_speed),
                    ],
                    {**base_env, **clock_env},
                    None if plan.verbose else logs_dir / "tabsim.log",
                )
            )
            service_env["NZTAB_BASE_URL"] = f"http://127.0.0.1:{plan.sim_port}"
        else:
            service_env["NZTAB_BASE_URL"] = plan.tab_url
        for service in START_ORDER:
            _say(f"starting {service}")
            await supervisor.start(
                ProcessSpec(
                    service,
                    [*raceday, "serve", service],
                    service_env,
                    None if plan.verbose else logs_dir / f"{service}.log",
                )
            )
            port = env.port(f"RACEDAY_{service.upper()}_PORT", DEFAULT_GRPC_PORTS[service])
            await _wait_serving(service, port, supervisor)
        _say(f"all services are up; logs in {logs_dir}" if not plan.verbose else "all services are up")
        _say(f"dashboard: http://127.0.0.1:{plan.http_port}/   (Ctrl-C to stop)")
        fetcher_port = env.port("RACEDAY_FETCHER_PORT", DEFAULT_GRPC_PORTS["fetcher"])
        reporter = asyncio.create_task(_report_progress(fetcher_port, stop))
        await stop.wait()
        reporter.cancel()
        _say("stopping")
    except StartupError as exc:
        _say(f"error: {exc}")
        code = 1
    finally:
        codes = await supervisor.stop()
        _say("stopped " + ", ".join(f"{name} (exit {exit_code})" for name, exit_code in codes.items()))
    return code
