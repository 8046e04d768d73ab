"""Running the simulated TAB: in-process on a free port, or as a `raceday tabsim` subprocess.

async with run_tabsim(TabSimConfig(port=0, seed=7)) as sim:
    client = TabClient(TabSettings(base_url=sim.url, ...))

with start_tabsim_process(["--seed", "7", "--speed", "60"]) as sim:
    ...  # sim.url
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import uvicorn

from services.tabsim.app import create_app
from services.tabsim.config import TabSimConfig
from services.tabsim.state import SimState

LISTENING_EVENT = "tabsim_listening"


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner (tests, the CLI)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it a small gzipped body written after the
    # headers waits for the client's delayed ACK (~40 ms per response on loopback).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def origin(host: str, port: int) -> str:
    """The base URL (origin only) of a server on host:port."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(slots=True)
class RunningTabSim:
    """A started in-process simulator."""

    url: str
    port: int
    state: SimState
    server: uvicorn.Server


def make_server(state: SimState, *, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for the simulator app (no signal capture, short graceful shutdown)."""
    config = uvicorn.Config(
        create_app(state),
        lifespan="off",
        log_level=log_level,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )
    return _QuietServer(config)


@contextlib.asynccontextmanager
async def run_tabsim(config: TabSimConfig | None = None) -> AsyncIterator[RunningTabSim]:
    """Serve the simulator in this event loop until the block exits (port 0 = a free port)."""
    config = config or TabSimConfig(port=0)
    sock = bind_socket(config.host, config.port)
    port = int(sock.getsockname()[1])
    state = SimState(config)
    server = make_server(state)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the simulated TAB stopped during start-up")
            await asyncio.sleep(0.01)
        yield RunningTabSim(url=origin(config.host, port), port=port, state=state, server=server)
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=5)
        except TimeoutError:
            server.force_exit = True
            await task
        sock.close()


class TabSimProcess:
    """A `raceday tabsim` child process; `url` is its origin. Stop it with `stop()` or `with`."""

    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url

    def stop(self, timeout_s: float = 5.0) -> int:
        """SIGTERM, wait, then SIGKILL if needed; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return int(self.process.returncode)

    def __enter__(self) -> TabSimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_tabsim_process(
    args: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    env: Mapping[str, str] | None = None,
    stderr: int | IO[Any] | None = None,
    timeout_s: float = 30.0,
) -> TabSimProcess:
    """Start `raceday tabsim` (this interpreter, `-m services.tabsim.cli`) and wait until it listens."""
    # The module entry point is `raceday tabsim` without importing every other subcommand.
    command = [sys.executable, "-m", "services.tabsim.cli", "--host", host, "--port", str(port), *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=dict(env) if env is not None else dict(os.environ),
    )
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or process.poll() is not None:
            process.kill()
            process.wait()
            raise RuntimeError(f"raceday tabsim did not start (exit code {process.returncode})")
        ready, _, _ = select.select([process.stdout], [], [], min(left, 0.2))
        if ready:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                continue
            line += chunk
    announcement = json.loads(line.split(b"\n", 1)[0])
    if announcement.get("event") != LISTENING_EVENT:
        process.kill()
        process.wait()
        raise RuntimeError(f"unexpected first line from raceday tabsim: {announcement!r}")
    return TabSimProcess(process, str(announcement["url"]))
