"""`raceday serve <service>`: run one service (what a container runs)."""

from __future__ import annotations

import argparse

import uvloop

from services.common.config import Env, exit_on_config_error
from services.common.logs import configure_logging
from services.common.server import serve
from services.common.service_apps import create_app
from services.common.settings import SERVICE_NAMES, ServerSettings, ServiceName


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `serve` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="run one service (fetcher, transformer, writer or gateway)",
        description="Run one service with its gRPC health service, reflection and /metrics.",
    )
    parser.add_argument("service", choices=SERVICE_NAMES)
    parser.add_argument("--port", type=int, help="gRPC port (overrides RACEDAY_<SERVICE>_PORT)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate the configuration, then serve until SIGTERM/SIGINT."""
    service: ServiceName = args.service
    env = Env()
    with exit_on_config_error():
        settings = ServerSettings.from_env(service, env, port=args.port)
        configure_logging(service, settings.log_level)
        uvloop.run(_serve(service, env, settings))
    return 0


async def _serve(service: ServiceName, env: Env, settings: ServerSettings) -> None:
    # The app is built inside the running loop: its gRPC channels and pools belong to this loop.
    await serve(create_app(service, env), settings)
