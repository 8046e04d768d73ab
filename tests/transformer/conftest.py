"""A real TransformerService on loopback (the app `raceday serve transformer` runs)."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import pytest

from services.common.config import Env
from services.common.proto.raceday.v1 import transformer_pb2_grpc
from services.common.server import RunningServer, start_server
from services.common.settings import ServerSettings
from services.transformer import bench as transform_bench
from services.transformer import cli as transform_cli
from services.transformer.app import create_app

if TYPE_CHECKING:
    from services.common.proto.raceday.v1.transformer_pb2_grpc import TransformerServiceAsyncStub


@dataclass
class TransformerServer:
    """A started transformer and a client stub connected to it."""

    running: RunningServer
    stub: TransformerServiceAsyncStub
    channel: grpc.aio.Channel


@pytest.fixture(scope="module")
async def transformer() -> AsyncIterator[TransformerServer]:
    """The transformer app as deployed (transforms on the event loop) on an OS-chosen port."""
    app = create_app(Env({}))
    settings = ServerSettings(
        service="transformer",
        bind_host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        log_level="INFO",
        grace_seconds=1.0,
    )
    running, metrics = await start_server(app, settings, with_metrics=False)
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{running.grpc_port}", options=(("grpc.max_receive_message_length", 32 * 1024 * 1024),)
    )
    try:
        yield TransformerServer(running, transformer_pb2_grpc.TransformerServiceStub(channel), channel)
    finally:
        await channel.close()
        await running.server.stop(0)
        await app.stop()
        assert metrics is None


def raceday(argv: Sequence[str]) -> int:
    """`raceday transform ...` / `raceday bench transform ...` with only this area's commands.

    The full CLI (services.cli) imports every service's commands; these tests should fail
    only for this area's faults. test_cli.py checks the real CLI registers the commands.
    """
    parser = argparse.ArgumentParser(prog="raceday")
    subparsers = parser.add_subparsers(dest="command", required=True)
    transform_cli.add_parser(subparsers)
    bench_parser = subparsers.add_parser("bench")
    bench_subparsers = bench_parser.add_subparsers(dest="bench", required=True)
    transform_bench.add_bench_parser(bench_subparsers)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code
