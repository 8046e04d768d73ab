"""Exact conversions of google.protobuf.Timestamp: to and from epoch milliseconds and aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_from_ms(ms: int) -> Timestamp:
    """A Timestamp for epoch milliseconds (exact; floor division keeps pre-1970 values correct)."""
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def ms_from_timestamp(stamp: Timestamp) -> int:
    """Epoch milliseconds of a Timestamp (sub-millisecond part truncated)."""
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


def ts_to_datetime(ts: Timestamp) -> datetime:
    """An aware UTC datetime from a Timestamp (sub-microsecond nanos truncated)."""
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def datetime_to_ts(instant: datetime, out: Timestamp | None = None) -> Timestamp:
    """A Timestamp of an aware datetime (exact to the microsecond)."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: an instant needs a time zone")
    delta = instant - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    ts = out if out is not None else Timestamp()
    ts.seconds = seconds
    ts.nanos = delta.microseconds * 1000
    return ts
