"""The `raceday` command. Each subcommand lives beside the code it drives."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse arguments and run the chosen command; returns the exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
