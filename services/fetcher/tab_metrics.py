"""Prometheus metrics of the TAB client (spec scheduling §11.3)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

# One per logical fetch (a meetings page or an event), by final outcome: ok or the failure kind.
TAB_REQUESTS = Counter(
    "raceday_tab_requests_total", "TAB fetches by endpoint and outcome", ["endpoint", "outcome"]
)
TAB_RETRIES = Counter("raceday_tab_retries_total", "TAB request retries by cause", ["cause"])
# 0 closed, 0.5 half-open (one trial allowed), 1 open.
TAB_CIRCUIT_OPEN = Gauge("raceday_tab_circuit_open", "TAB circuit breaker: 0 closed, 0.5 half-open, 1 open")

CIRCUIT_GAUGE_VALUE: Final = {"closed": 0.0, "half_open": 0.5, "open": 1.0}
