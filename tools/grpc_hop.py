"""The floor under every gRPC hop of a poll: one unary call between two Python processes.

A server process answers a fixed response to any request, doing nothing else; this process calls
it in a loop and reports the median and the 10th percentile of the round trip. The variants are
the ones the services could use: grpc.aio on uvloop (what every Raceday service runs), the same
over a Unix domain socket instead of loopback TCP, the same client on asyncio's own loop, a
blocking client, and a synchronous server (grpc.server with a thread pool). Sizes default to a
poll's: a TransformRequest of about 35 KB in, a TransformResponse of about 15 KB out.

    .venv/bin/python tools/grpc_hop.py [--calls 2000] [--request-bytes 35000] [--response-bytes 15000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import uvloop

from services.common.net import free_port

METHOD = "/raceday.bench.Hop/Call"
WARMUP_CALLS = 200


def _handlers(response: bytes) -> grpc.GenericRpcHandler:
    def answer(request: bytes, context: object) -> bytes:
        return response

    return grpc.method_handlers_generic_handler(
        "raceday.bench.Hop", {"Call": grpc.unary_unary_rpc_method_handler(answer)}
    )


async def _serve_aio(address: str, response: bytes) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_handlers(response),))
    server.add_insecure_port(address)
    await server.start()
    await server.wait_for_termination()


def _serve_sync(address: str, response: bytes) -> None:
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_handlers(response),))
    server.add_insecure_port(address)
    server.start()
    server.wait_for_termination()


def _summary(label: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return f"{label:<40} median {statistics.median(ms):6.3f} ms   p10 {ms[len(ms) // 10]:6.3f} ms"


async def _aio_calls(target: str, request: bytes, calls: int) -> list[float]:
    async with grpc.aio.insecure_channel(target) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
        for _ in range(WARMUP_CALLS):
            await call(request)
        seconds = []
        for _ in range(calls):
            started = time.perf_counter()
            await call(request)
            seconds.append(time.perf_counter() - started)
        return seconds


def _sync_calls(target: str, request: bytes, calls: int) -> list[float]:
    with grpc.insecure_channel(target) as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
        for _ in range(WARMUP_CALLS):
            call(request)
        seconds = []
        for _ in range(calls):
            started = time.perf_counter()
            call(request)
            seconds.append(time.perf_counter() - started)
        return seconds


def _with_server(
    kind: str, response_bytes: int, measure: Callable[[str], list[float]], *, unix_socket: bool = False
) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="grpc-hop-") as directory:
        # A Unix domain socket instead of loopback TCP: what processes on one machine could use.
        target = f"unix:{directory}/hop.sock" if unix_socket else f"127.0.0.1:{free_port()}"
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                kind,
                "--address",
                target,
                "--response-bytes",
                str(response_bytes),
            ]
        )
        try:
            with grpc.insecure_channel(target) as probe:
                grpc.channel_ready_future(probe).result(timeout=30)
            return measure(target)
        finally:
            server.terminate()
            server.wait()


def main() -> int:
    """Run the server side (--serve) or measure every variant and print one line each."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--request-bytes", type=int, default=35_000)
    parser.add_argument("--response-bytes", type=int, default=15_000)
    parser.add_argument("--serve", choices=("aio", "sync"), help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calls < 10 or args.request_bytes < 0 or args.response_bytes < 0:
        parser.error("--calls must be at least 10 and the sizes not negative")
    response = b"r" * args.response_bytes
    if args.serve == "aio":
        uvloop.run(_serve_aio(args.address, response))
        return 0
    if args.serve == "sync":
        _serve_sync(args.address, response)
        return 0
    request = b"q" * args.request_bytes
    print(
        f"one unary call, {args.request_bytes} bytes in, {args.response_bytes} out, "
        f"{args.calls} calls after {WARMUP_CALLS} unmeasured",
        flush=True,
    )

    def aio_uvloop(target: str) -> list[float]:
        return uvloop.run(_aio_calls(target, request, args.calls))

    def aio_asyncio(target: str) -> list[float]:
        return asyncio.run(_aio_calls(target, request, args.calls))

    def blocking(target: str) -> list[float]:
        return _sync_calls(target, request, args.calls)

    variants: list[tuple[str, str, Callable[[str], list[float]], bool]] = [
        ("aio server, aio client on uvloop", "aio", aio_uvloop, False),
        ("the same over a Unix socket", "aio", aio_uvloop, True),
        ("aio server, aio client on asyncio", "aio", aio_asyncio, False),
        ("aio server, blocking client", "aio", blocking, False),
        ("sync server, aio client on uvloop", "sync", aio_uvloop, False),
        ("sync server, blocking client", "sync", blocking, False),
    ]
    for label, kind, measure, unix_socket in variants:
        seconds = _with_server(kind, args.response_bytes, measure, unix_socket=unix_socket)
        print(_summary(label, seconds), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
