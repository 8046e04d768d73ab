"""`raceday bench <kind>`: benchmark programs that report figures (never unit tests).

Each benchmark lives beside the code it measures and registers itself through
`add_bench_parser(subparsers)`; modules not present yet are simply not listed.
"""

from __future__ import annotations

import argparse
import importlib

_BENCH_MODULES = (
    "services.transformer.bench",
    "services.writer.bench",
    "services.fetcher.bench",
    "services.fetcher.freshness",
    "services.fetcher.archive_bench",
    "services.fetcher.archive_cpu_bench",
    "services.gateway.bench",
    "services.gateway.stream_bench",
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `raceday bench` and every available benchmark under it."""
    parser = subparsers.add_parser(
        "bench", help="run a benchmark and report its figures", description="Benchmark programs."
    )
    bench_subparsers = parser.add_subparsers(dest="bench", metavar="BENCHMARK")
    bench_subparsers.required = True
    for name in _BENCH_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_bench_parser(bench_subparsers)
