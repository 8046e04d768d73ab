"""`raceday bench stream`: commit-to-client latency of the live push; memory with a stalled client.

Starts a writer and a gateway (as `raceday bench api` does), opens N Server-Sent Event clients
(default 200) spread over R races (default 20), plus one client that connects and never
reads. The writer then commits polls of every race in rounds; each client records, for every
event it receives, the time since the poll's commit (`committed_at` in the event). The report
gives p50/p99 over every delivery, the events each client got against those committed, and
the gateway's resident memory before and after, with what the stalled client left waiting.
Exits 1 when a client missed or repeated an event, the gateway grew by more than 16 MB, or
p99 misses --p99-target-ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import uvloop

from services.common.config import ConfigError, Env, exit_on_config_error
from services.common.nztime import utc_now
from services.common.proto.raceday.v1 import writer_pb2_grpc
from services.gateway import sample
from services.gateway.bench import own_stack, percentile

RUNNERS = 10
CLIENT_QUEUE = 64
# The gateway keeps at most its replay buffer (5000 small events) and a bounded queue per client.
RSS_GROWTH_LIMIT_MB = 16.0


def add_bench_parser(bench_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `raceday bench stream`."""
    parser = bench_subparsers.add_parser(
        "stream",
        help="commit-to-client latency of GET /api/stream, and memory with a stalled client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=200, help="stream clients (default 200)")
    parser.add_argument("--races", type=int, default=20, help="races the clients watch (default 20)")
    parser.add_argument("--rounds", type=int, default=30, help="polls committed per race (default 30)")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between rounds of commits (default 1)"
    )
    parser.add_argument("--p99-target-ms", type=float, default=250.0, help="p99 target (default 250)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.set_defaults(handler=run)


@dataclass
class StreamClient:
    """One stream: the race it watches and what it received."""

    race_id: str
    expected: int
    latencies_ms: list[float] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    complete: asyncio.Event = field(default_factory=asyncio.Event)


async def _follow(http: httpx.AsyncClient, client: StreamClient, ready: asyncio.Event) -> None:
    async with http.stream("GET", "/api/stream", params={"race_id": client.race_id}) as response:
        if response.status_code != 200:
            raise RuntimeError(f"GET /api/stream answered {response.status_code}")
        ready.set()
        data = ""
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                client.ids.append(int(line[4:]))
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                received = time.time()
                committed = datetime.fromisoformat(json.loads(data)["committed_at"]).timestamp()
                client.latencies_ms.append((received - committed) * 1000)
                data = ""
                if len(client.ids) >= client.expected:
                    client.complete.set()


def _stalled_client(base_url: str) -> socket.socket:
    """A stream client that asks for every race and then never reads a byte."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /api/stream HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    return sock


def _kernel_backlog_bytes(server_port: int, client_port: int) -> int:
    """Bytes the kernel holds for the stalled client (the server side's send queue)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if (local_port, remote_port) == (server_port, client_port):
                    return int(fields[4].split(":")[0], 16)
    return 0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _metric(url: str, name: str) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(url)).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def _race_builders(races: int) -> list[sample.RaceBuilder]:
    """`races` open races of one meeting, half an hour and more from their start."""
    now = utc_now()
    prefix = f"stream-{uuid.uuid4().hex[:8]}"
    meeting = sample.build_meeting(f"{prefix}-m", "Stream Downs", now)
    builders = []
    for number in range(1, races + 1):
        start = now + timedelta(minutes=30 + number)
        race = sample.build_race(meeting, f"{prefix}-r{number}", number, start, field_size=RUNNERS)
        builders.append(sample.RaceBuilder(meeting, race, sample.build_runners(race.race_id, RUNNERS), start))
    return builders


async def _commit_rounds(
    stub: writer_pb2_grpc.WriterServiceAsyncStub,
    builders: list[sample.RaceBuilder],
    rounds: int,
    interval_s: float,
) -> None:
    """Commit one poll of every race per round, a round every `interval_s`."""
    for step in range(rounds):
        began = time.monotonic()
        for builder in builders:
            update = builder.poll(
                utc_now(),
                holds=sample.holds_for(builder.runners, step),
                win_pool=1_000_000 + step * 50_000,
                place_pool=400_000 + step * 20_000,
            )
            await sample.write(stub, update)
        if (step + 1) % 5 == 0 or step + 1 == rounds:
            print(f"bench stream: {step + 1}/{rounds} rounds committed", flush=True)
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - began)))


async def bench(args: argparse.Namespace, env: Env, workdir: Path) -> dict[str, Any]:
    """Start the stack, connect the clients, commit, and measure."""
    settings = {"RACEDAY_STREAM_CLIENT_QUEUE": str(CLIENT_QUEUE)}
    async with own_stack(env, workdir, settings) as stack:
        builders = _race_builders(args.races)
        race_ids = [builder.race.race_id for builder in builders]
        clients = [
            StreamClient(race_ids[index % len(race_ids)], args.rounds) for index in range(args.clients)
        ]
        limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=0)
        timeout = httpx.Timeout(30, read=None)
        async with (
            httpx.AsyncClient(base_url=stack.base_url, limits=limits, timeout=timeout) as http,
            grpc.aio.insecure_channel(stack.writer_addr) as channel,
        ):
            readies = [asyncio.Event() for _ in clients]
            tasks = [asyncio.create_task(_follow(http, c, r)) for c, r in zip(clients, readies, strict=True)]
            await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), 60)
            stalled = _stalled_client(stack.base_url)
            await asyncio.sleep(0.5)  # let the gateway settle before the baseline memory reading
            rss_before = _rss_mb(stack.gateway_pid)
            print(f"bench stream: {len(clients)} clients and a stalled one connected", flush=True)
            stub = writer_pb2_grpc.WriterServiceStub(channel)
            await _commit_rounds(stub, builders, args.rounds, args.interval)
            committed = args.rounds * len(builders)
            with contextlib.suppress(TimeoutError):  # a client that lost events shows in the report
                await asyncio.wait_for(asyncio.gather(*(c.complete.wait() for c in clients)), 30)
            rss_after = _rss_mb(stack.gateway_pid)
            dropped = await _metric(stack.gateway_metrics_url, "raceday_stream_dropped_total")
            backlog = _kernel_backlog_bytes(int(stack.base_url.rsplit(":", 1)[1]), stalled.getsockname()[1])
            stalled.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                    await task
    latencies = sorted(latency for client in clients for latency in client.latencies_ms)
    received = Counter(len(set(client.ids)) for client in clients)
    duplicates = sum(len(client.ids) - len(set(client.ids)) for client in clients)
    return {
        "clients": len(clients),
        "races": len(race_ids),
        "commits": committed,
        "deliveries": len(latencies),
        "clients_with_every_event": received.get(args.rounds, 0),
        "duplicates": duplicates,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 1) if latencies else None,
            "p99": round(percentile(latencies, 0.99), 1) if latencies else None,
            "max": round(latencies[-1], 1) if latencies else None,
            "mean": round(statistics.fmean(latencies), 1) if latencies else None,
        },
        "gateway_rss_mb": {"before": round(rss_before, 1), "after": round(rss_after, 1)},
        "stalled_client_dropped": dropped >= 1,
        "stalled_client_kernel_backlog_kb": round(backlog / 1024, 1),
        "client_queue": CLIENT_QUEUE,
    }


def print_report(report: dict[str, Any]) -> None:
    """The figures, one per line."""
    latency = report["latency_ms"]
    print(
        f"\n{report['clients']} clients over {report['races']} races; {report['commits']} commits; "
        f"{report['deliveries']} events delivered; {report['clients_with_every_event']} clients got every "
        f"event of their race; {report['duplicates']} duplicates"
    )
    print(
        f"commit -> client latency: p50 {latency['p50']} ms, p99 {latency['p99']} ms, max {latency['max']} ms"
    )
    rss = report["gateway_rss_mb"]
    print(
        f"gateway RSS {rss['before']} MB before, {rss['after']} MB after with a stalled client; "
        f"its backlog in the kernel's socket buffer {report['stalled_client_kernel_backlog_kb']} KB; "
        f"dropped: {'yes' if report['stalled_client_dropped'] else 'not yet'} (a client is dropped once "
        f"its socket stops taking data and {report['client_queue']} more events are waiting)"
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of `raceday bench stream`; exit 1 on a lost event, no drop, or a missed target."""
    env = Env()
    with exit_on_config_error():
        if args.clients < 1 or args.races < 1 or args.rounds < 1:
            raise ConfigError("--clients", "--clients, --races and --rounds must be at least 1")
        if args.interval < 0:
            raise ConfigError("--interval", "must be >= 0")
    workdir = Path("bench-results").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    report = uvloop.run(bench(args, env, workdir))
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    problems = []
    if report["clients_with_every_event"] != report["clients"] or report["duplicates"]:
        problems.append("a client missed or repeated an event")
    growth = report["gateway_rss_mb"]["after"] - report["gateway_rss_mb"]["before"]
    if growth > RSS_GROWTH_LIMIT_MB:
        problems.append(f"the gateway grew by {growth:.1f} MB with a stalled client")
    p99 = report["latency_ms"]["p99"]
    if p99 is None or p99 > args.p99_target_ms:
        problems.append(f"p99 {p99} ms misses the {args.p99_target_ms} ms target")
    for problem in problems:
        print(f"bench stream: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0
