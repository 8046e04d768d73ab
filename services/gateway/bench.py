"""`raceday bench api`: latency of the race endpoints under concurrent clients.

Starts its own stack (the writer and the gateway as `raceday serve` processes, on a scratch
database of RACEDAY_DATABASE_URL's server or of the embedded PostgreSQL) seeded with a synthetic
race, or targets a running gateway with --target. N clients (default 20), each on its own
keep-alive connection, loop over race, entrants, pools, results and timeline of one race for a
fixed time; the report gives median and p99 per endpoint and overall. Exits 1 on any failed
request or when the overall p99 misses --p99-target-ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
import psycopg
import uvloop

from services.common.config import Env, exit_on_config_error
from services.common.database import database_url, scratch_database
from services.common.health import NotServingError, wait_serving
from services.common.net import free_port
from services.common.nztime import utc_now
from services.common.proto.raceday.v1 import writer_pb2_grpc
from services.gateway import sample

ENDPOINTS = ("race", "entrants", "pools", "results", "timeline")
RUNNERS = 14
STARTUP_TIMEOUT_S = 60.0


def add_bench_parser(bench_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `raceday bench api`."""
    parser = bench_subparsers.add_parser(
        "api",
        help="latency of the gateway's race endpoints under concurrent clients",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--target", help="base URL of a running gateway (default: start a stack)")
    parser.add_argument("--race-id", help="race to query on --target (default: the next scheduled race)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (default 3)")
    parser.add_argument(
        "--p99-target-ms", type=float, default=50.0, help="fail above this overall p99; 0 = off"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.set_defaults(handler=run)


@dataclass(slots=True)
class Samples:
    """Latencies (seconds) and failures of one endpoint."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        """Count a failed request by reason."""
        self.failures += 1
        self.errors[reason] = self.errors.get(reason, 0) + 1


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (which must not be empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarise(samples: dict[str, Samples], seconds: float, clients: int) -> dict[str, Any]:
    """Figures per endpoint and overall, in milliseconds."""

    def figures(latencies: list[float], failures: int) -> dict[str, Any]:
        if not latencies:
            return {"requests": failures, "failures": failures}
        return {
            "requests": len(latencies) + failures,
            "failures": failures,
            "median_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "max_ms": round(max(latencies) * 1000, 2),
        }

    everything = [value for item in samples.values() for value in item.latencies]
    failures = sum(item.failures for item in samples.values())
    overall = figures(everything, failures)
    overall["requests_per_s"] = round((len(everything) + failures) / seconds, 1)
    return {
        "clients": clients,
        "seconds": round(seconds, 1),
        "endpoints": {name: figures(item.latencies, item.failures) for name, item in samples.items()},
        "overall": overall,
        "errors": {name: item.errors for name, item in samples.items() if item.errors},
    }


def endpoint_paths(race_id: str) -> list[tuple[str, str]]:
    """The five race endpoints the dashboard polls."""
    return [
        ("race", f"/api/races/{race_id}"),
        ("entrants", f"/api/entrants?race_id={race_id}"),
        ("pools", f"/api/race-pools?race_id={race_id}"),
        ("results", f"/api/race-results?race_id={race_id}"),
        ("timeline", f"/api/money-flow-timeline?race_id={race_id}"),
    ]


class HttpConnection:
    """A minimal HTTP/1.1 keep-alive client: the load generator shares the machine with the stack,
    so it must spend as little CPU per request as possible (a full client costs several times more)."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http:// targets are supported, got {base_url!r}")
        self._host, self._port = parts.hostname, parts.port or 80
        self._extra = "".join(f"{key}: {value}\r\n" for key, value in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """One GET on the kept-alive connection (reconnecting when the server closed it)."""
        if self._writer is None or self._reader is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        request = f"GET {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n{self._extra}\r\n"
        self._writer.write(request.encode("latin-1"))
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            lowered = name.strip().lower()
            if lowered == "content-length":
                length = int(value.strip())
            elif lowered == "transfer-encoding":
                raise ValueError("chunked responses are not expected from the gateway")
        body = await self._reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        """Close the connection."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None


async def load(
    base_url: str, race_id: str, *, clients: int, duration: float, warmup: float
) -> dict[str, Any]:
    """Run the closed-loop clients; measure only after the warm-up."""
    paths = endpoint_paths(race_id)
    samples = {name: Samples() for name in ENDPOINTS}
    started = time.monotonic()
    measure_from = started + warmup
    stop_at = measure_from + duration

    async def client_loop(index: int) -> None:
        connection = HttpConnection(base_url, {"Accept-Encoding": "gzip", "X-Request-ID": f"bench-{index}"})
        step = index  # clients start on different endpoints
        try:
            while (now := time.monotonic()) < stop_at:
                name, path = paths[step % len(paths)]
                step += 1
                begin = time.perf_counter()
                try:
                    status, body = await connection.get(path)
                    elapsed = time.perf_counter() - begin
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    await connection.close()  # the next request reconnects
                    if now >= measure_from:
                        samples[name].fail(type(exc).__name__)
                    continue
                if now < measure_from:
                    continue
                if status != 200 or not body:
                    samples[name].fail(f"HTTP {status}")
                else:
                    samples[name].latencies.append(elapsed)
        finally:
            await connection.close()

    await asyncio.gather(*(client_loop(index) for index in range(clients)))
    return summarise(samples, time.monotonic() - measure_from, clients)


def print_report(report: dict[str, Any], target_ms: float) -> None:
    """A table of the figures."""
    print(f"raceday bench api: {report['clients']} clients, {report['seconds']} s measured")
    print(f"{'endpoint':<10} {'requests':>9} {'failures':>9} {'median ms':>10} {'p99 ms':>9} {'max ms':>9}")
    rows = [*report["endpoints"].items(), ("overall", report["overall"])]
    for name, item in rows:
        print(
            f"{name:<10} {item['requests']:>9} {item['failures']:>9} {item.get('median_ms', '-'):>10} "
            f"{item.get('p99_ms', '-'):>9} {item.get('max_ms', '-'):>9}"
        )
    print(f"throughput: {report['overall']['requests_per_s']} requests/s")
    if target_ms > 0:
        print(f"target: overall p99 < {target_ms} ms")
    for name, errors in report["errors"].items():
        print(f"errors on {name}: {errors}")


# --- an own stack -------------------------------------------------------------------------------


async def _spawn(service: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    handle = log.open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "serve", service,
            env=env, stdin=asyncio.subprocess.DEVNULL, stdout=handle, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    finally:
        handle.close()


async def _wait_serving(name: str, port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    def gone() -> str | None:
        return None if process.returncode is None else f"exited with {process.returncode}"

    try:
        await wait_serving(f"127.0.0.1:{port}", timeout_s=STARTUP_TIMEOUT_S, gone=gone, interval_s=0.1)
    except NotServingError as exc:
        raise NotServingError(f"{name} {exc}; see {log}") from None


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def seed_race(writer_addr: str) -> str:
    """One open race 60 s before its start with a full timeline (60…1), pools, odds and results."""
    now = utc_now()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    meeting = sample.build_meeting(f"{prefix}-m", "Bench Park", now)
    start = now + timedelta(minutes=1)
    race = sample.build_race(meeting, f"{prefix}-r1", 1, start, field_size=RUNNERS)
    runners = sample.build_runners(race.race_id, RUNNERS, scratched=(RUNNERS,))
    builder = sample.RaceBuilder(meeting, race, runners, start)
    minutes = (62, 57, 52, 47, 42, 37, 32, 27, 22, 17, 12, 7, 4, 3, 2, 1)
    async with grpc.aio.insecure_channel(writer_addr) as channel:
        stub = writer_pb2_grpc.WriterServiceStub(channel)
        for step, minute in enumerate(minutes):
            polled_at = start - timedelta(minutes=minute)
            update = builder.poll(
                polled_at,
                holds=sample.holds_for(runners, step // 4),
                win_pool=2_000_000 + step * 250_000,
                place_pool=800_000 + step * 90_000,
            )
            if step == len(minutes) - 1:
                update.results.CopyFrom(sample.results_for(runners, polled_at, "interim"))
            await sample.write(stub, update)
    return race.race_id


@dataclass(frozen=True, slots=True)
class OwnStack:
    """A writer and a gateway started for a benchmark."""

    base_url: str
    writer_addr: str
    gateway_pid: int
    gateway_metrics_url: str


@contextlib.asynccontextmanager
async def own_stack(
    env: Env, workdir: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[OwnStack]:
    """Writer and gateway processes on a scratch database (logs under `workdir`)."""
    server_url = database_url(env)
    with scratch_database(server_url, "raceday_bench_api") as url:
        writer_port, gateway_port, http_port, metrics_port = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        )
        base_env = {
            **os.environ,
            "RACEDAY_DATABASE_URL": url,
            "RACEDAY_LOG_LEVEL": "WARNING",
            "RACEDAY_WRITER_PORT": str(writer_port),
            "RACEDAY_WRITER_METRICS_PORT": str(free_port()),
            "RACEDAY_WRITER_ADDR": f"127.0.0.1:{writer_port}",
            "RACEDAY_GATEWAY_PORT": str(gateway_port),
            "RACEDAY_GATEWAY_METRICS_PORT": str(metrics_port),
            "RACEDAY_GATEWAY_HTTP_PORT": str(http_port),
            "RACEDAY_TRANSFORMER_ADDR": f"127.0.0.1:{free_port()}",
            "RACEDAY_FETCHER_ADDR": f"127.0.0.1:{free_port()}",
            **(extra_env or {}),
        }
        processes: list[asyncio.subprocess.Process] = []
        try:
            for name, port in (("writer", writer_port), ("gateway", gateway_port)):
                log = workdir / f"{name}.log"
                process = await _spawn(name, base_env, log)
                processes.append(process)
                await _wait_serving(name, port, process, log)
            yield OwnStack(
                base_url=f"http://127.0.0.1:{http_port}",
                writer_addr=base_env["RACEDAY_WRITER_ADDR"],
                gateway_pid=processes[-1].pid,
                gateway_metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            )
        finally:
            for process in reversed(processes):
                await _stop(process)


async def pick_race(base_url: str) -> str:
    """The next scheduled race of a running gateway."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        race = (await client.get("/api/races/next-scheduled")).json()
    if not race:
        raise RuntimeError("no scheduled race on the target; pass --race-id")
    return str(race["race_id"])


async def bench(args: argparse.Namespace, env: Env, workdir: Path) -> dict[str, Any]:
    """Start (logs under `workdir`) or target a stack and measure it."""
    async with contextlib.AsyncExitStack() as stack:
        if args.target:
            base_url = args.target.rstrip("/")
            race_id = args.race_id or await pick_race(base_url)
        else:
            own = await stack.enter_async_context(own_stack(env, workdir))
            base_url, race_id = own.base_url, await seed_race(own.writer_addr)
        print(f"benchmarking {base_url} race {race_id}", flush=True)
        return await load(base_url, race_id, clients=args.clients, duration=args.duration, warmup=args.warmup)


def run(args: argparse.Namespace) -> int:
    """Entry point of `raceday bench api`; exit code 1 on failures or a missed target."""
    if args.clients < 1 or args.duration <= 0 or args.warmup < 0:
        print("raceday bench api: --clients >= 1, --duration > 0, --warmup >= 0", file=sys.stderr)
        return 2
    env = Env()
    workdir = Path("bench-results").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    with exit_on_config_error():
        try:
            report = uvloop.run(bench(args, env, workdir))
        except (RuntimeError, OSError, psycopg.Error) as exc:
            print(f"raceday bench api: {exc}", file=sys.stderr)
            return 1
    print_report(report, args.p99_target_ms)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    failures = report["overall"]["failures"]
    p99 = report["overall"].get("p99_ms")
    if failures:
        print(f"FAILED: {failures} requests failed", file=sys.stderr)
        return 1
    if p99 is None:
        print("FAILED: no request completed", file=sys.stderr)
        return 1
    if args.p99_target_ms > 0 and p99 >= args.p99_target_ms:
        print(f"FAILED: overall p99 {p99} ms >= target {args.p99_target_ms} ms", file=sys.stderr)
        return 1
    return 0
