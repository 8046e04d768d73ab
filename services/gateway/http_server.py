"""uvicorn embedded in the service's own event loop (uvloop under `raceday serve`).

The gRPC bootstrap owns the process signals, so uvicorn's signal capture is disabled, and the
listening socket is bound here so that port 0 works and a busy port fails start-up loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Do not install signal handlers: `raceday serve` stops the whole service."""
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class HttpServer:
    """Starts and stops one uvicorn server on (host, port)."""

    def __init__(self, app: ASGIApp, host: str, port: int, *, grace_seconds: float) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._grace_seconds = grace_seconds
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = port

    async def start(self) -> None:
        """Bind, then serve in a background task; returns once the server accepts connections."""
        sock = _bind(self._host, self._requested_port)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            http="httptools",
            timeout_graceful_shutdown=max(1, int(self._grace_seconds)),
            timeout_keep_alive=30,
        )
        server = _EmbeddedServer(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="gateway-http")
        while not server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), and wait for the task."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = None
        self._task = None
