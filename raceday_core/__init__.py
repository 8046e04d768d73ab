"""Raceday's Rust core, for every service that needs it.

The compiled module `raceday_core._raceday_core` is the thin PyO3 binding (rust_ext/binding)
of the pure-Rust crate in rust_ext/core; this package re-exports it with its exception
classes. `services.transformer.reference` is the same math in plain Python.
"""

from raceday_core._raceday_core import (
    ALERT_THRESHOLD,
    CATEGORIES,
    INTERVAL_TYPES,
    MOVE_KINDS,
    ODDS_TYPES,
    RACE_STATUSES,
    RESULT_STATUSES,
    WriteDocument,
    bucket,
    event_summary,
    hundredths,
    inflate_payload,
    interval_type,
    moves,
    pool_amounts,
    previous_column,
    round_half_up,
    time_to_start,
    transform,
    transform_encoded,
    version,
    write_document,
)
from raceday_core.errors import PayloadDecodeError, PayloadError, PayloadSchemaError

__all__ = [
    "ALERT_THRESHOLD",
    "CATEGORIES",
    "INTERVAL_TYPES",
    "MOVE_KINDS",
    "ODDS_TYPES",
    "RACE_STATUSES",
    "RESULT_STATUSES",
    "PayloadDecodeError",
    "PayloadError",
    "PayloadSchemaError",
    "WriteDocument",
    "bucket",
    "event_summary",
    "hundredths",
    "inflate_payload",
    "interval_type",
    "moves",
    "pool_amounts",
    "previous_column",
    "round_half_up",
    "time_to_start",
    "transform",
    "transform_encoded",
    "version",
    "write_document",
]
