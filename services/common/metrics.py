"""Prometheus metrics: the /metrics endpoint every service exposes."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import Gauge, start_http_server


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


# Exported by the fetcher (baseline, refresh) and the writer (partitions, retention): defined once here
# so that several services can share one process (tests) without registering it twice.
JOB_LAST_SUCCESS = Gauge(
    "raceday_job_last_success_timestamp", "Unix time of the last successful day-level job", ["job"]
)


def metric_values(metrics_text: str, name: str) -> dict[str, float]:
    """Samples of one metric in a /metrics text: label text (`{...}`, or "") -> value."""
    values: dict[str, float] = {}
    for line in metrics_text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if match:
            values[match.group(1) or ""] = float(match.group(2))
    return values
