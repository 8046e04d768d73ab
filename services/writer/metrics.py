"""The writer's Prometheus metrics (scheduling.md §11.3), registered once per process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from raceday_core import MOVE_KINDS
from services.common import metrics as common_metrics

_LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Shared with the fetcher, defined once in services.common.metrics: job = "partitions" | "retention" here.
JOB_LAST_SUCCESS = common_metrics.JOB_LAST_SUCCESS

ROWS_WRITTEN = Counter("raceday_rows_written_total", "Rows written by the writer, per table.", ("table",))
WRITE_SECONDS = Histogram(
    "raceday_write_seconds",
    "Duration of one race write (connection acquisition to commit).",
    ("kind",),
    buckets=_LATENCY_BUCKETS,
)
DATA_AGE_AT_COMMIT = Histogram(
    "raceday_data_age_at_commit_seconds",
    "Commit time minus the TAB's generated_time of the poll: how old the data is when it is stored",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120),
)
WRITES = Counter("raceday_writes_total", "Race writes by outcome.", ("outcome",))
ALERTS_CREATED = Counter(
    "raceday_alerts_created_total",
    "race_alerts rows created by race writes (moves at or above the indicator threshold), per kind.",
    ("kind",),
)
# Every kind is exported from the start (at 0), so a rate over it exists before the first alert.
for _kind in MOVE_KINDS:
    ALERTS_CREATED.labels(_kind)
STATE_SECONDS = Histogram(
    "raceday_state_read_seconds", "Duration of one prior-state lookup.", buckets=_LATENCY_BUCKETS
)
QUERY_SECONDS = Histogram(
    "raceday_query_seconds", "Duration of one query RPC, per RPC.", ("rpc",), buckets=_LATENCY_BUCKETS
)
POOL_IN_USE = Gauge("raceday_db_pool_in_use", "Connections currently lent out, per pool.", ("pool",))
POOL_WAIT_SECONDS = Histogram(
    "raceday_db_pool_wait_seconds",
    "Time spent waiting for a pooled connection.",
    ("pool",),
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
POOL_EXHAUSTED = Counter(
    "raceday_db_pool_exhausted_total", "Connection acquisitions that timed out, per pool.", ("pool",)
)
DATABASE_UP = Gauge(
    "raceday_database_up", "1 while the writer reaches its database, 0 from a lost connection"
)
DATABASE_UP.set(1)
MISSING_PARTITIONS = Counter(
    "raceday_missing_partition_recoveries_total", "Race writes that hit a missing partition and recovered it."
)
PARTITIONS_CREATED = Counter("raceday_partitions_created_total", "Partitions created, per table.", ("table",))
PARTITIONS_DROPPED = Counter(
    "raceday_partitions_dropped_total", "Partitions dropped by retention.", ("table",)
)
