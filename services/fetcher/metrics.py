"""The fetcher's Prometheus metrics (spec/scheduling.md §11.3)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import JOB_LAST_SUCCESS

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

POLL_STAGE_SECONDS = Histogram(
    "raceday_poll_stage_seconds", "Duration of each stage of a race poll", ["stage"], buckets=STAGE_BUCKETS
)
POLLS = Counter("raceday_polls_total", "Race polls by outcome and cadence tier", ["outcome", "tier"])
MISSED_POLLS = Counter("raceday_missed_polls_total", "Poll slots missed, by cadence tier", ["tier"])
POLL_LATENESS_SECONDS = Histogram(
    "raceday_poll_lateness_seconds", "Start of a poll minus its due time", buckets=STAGE_BUCKETS
)
ACTIVE_RACES = Gauge("raceday_active_races", "Races being polled, by cadence tier", ["tier"])
INFLIGHT_POLLS = Gauge("raceday_inflight_polls", "Polls in flight")
DATA_AGE_SECONDS = Gauge(
    "raceday_data_age_seconds", "Age of the newest successful poll, worst race in the 15 s tier"
)
__all__ = [
    "ACTIVE_RACES",
    "COMMIT_BREAKER",
    "DATA_AGE_SECONDS",
    "INFLIGHT_POLLS",
    "JOB_LAST_SUCCESS",
    "MISSED_POLLS",
    "POLLS",
    "POLL_LATENESS_SECONDS",
    "POLL_STAGE_SECONDS",
    "QUALITY_FINDINGS",
    "STAGE_BUCKETS",
]

COMMIT_BREAKER = Gauge(
    "raceday_commit_circuit_open",
    "Commit-path breaker (transformer, writer, database): 0 closed, 0.5 half-open, 1 open",
)
QUALITY_FINDINGS = Counter("raceday_quality_findings_total", "Data-quality findings of polls", ["check"])
