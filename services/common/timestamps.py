"""Exact conversions between epoch milliseconds and google.protobuf.Timestamp."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp_from_ms(ms: int) -> Timestamp:
    """A Timestamp for epoch milliseconds (exact; floor division keeps pre-1970 values correct)."""
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def ms_from_timestamp(stamp: Timestamp) -> int:
    """Epoch milliseconds of a Timestamp (sub-millisecond part truncated)."""
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000
