"""The `raceday` command. Each subcommand lives beside the code it drives."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Protocol

from services import __version__

# Modules that add subcommands, in the order `raceday --help` lists them.
_COMMAND_MODULES = (
    "services.commands.up",
    "services.commands.serve",
    "services.tabsim.cli",
    "services.writer.commands",
    "services.transformer.cli",
    "services.commands.bench",
    "services.soak.cli",
)


class _CommandModule(Protocol):
    def add_parser(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="raceday",
        description="Real-time NZ TAB racing money flow.",
    )
    parser.add_argument("--version", action="version", version=f"raceday {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _COMMAND_MODULES:
        module: _CommandModule = importlib.import_module(name)
        module.add_parser(subparsers)
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse arguments and run the chosen command; returns the exit code.

    SIGTERM (`kill`, `timeout`, a process manager) stops a command as Ctrl-C does, so that what
    it started (services, a simulated TAB, scratch databases) is stopped on the way out; commands
    that serve install their own handlers while they run. Either ends with status 130 and one
    line, not a traceback.
    """
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        print(f"raceday {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return code


if __name__ == "__main__":
    sys.exit(main())
