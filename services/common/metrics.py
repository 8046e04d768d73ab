"""Prometheus metrics: the /metrics endpoint every service exposes."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server


@dataclass(slots=True)
class MetricsEndpoint:
    """A running /metrics HTTP server (a daemon thread)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The bound port (useful when 0 was requested)."""
        return int(self.server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()


def start_metrics_endpoint(host: str, port: int) -> MetricsEndpoint:
    """Serve the default registry at http://host:port/metrics."""
    server, thread = start_http_server(port, addr=host)
    return MetricsEndpoint(server=server, thread=thread)
