"""Conversions between protobuf messages and database values.

Timestamps convert exactly (microseconds; PostgreSQL has no finer precision), numeric
columns come back as Decimal and leave as float, and `optional` proto fields are read
with HasField so that an absent value is None and never a zero.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def opt(message: Message, field: str) -> Any:
    """An `optional` scalar field's value when set, else None (use opt_ts for Timestamps)."""
    return getattr(message, field) if message.HasField(field) else None


def opt_ts(message: Message, field: str) -> datetime | None:
    """An optional Timestamp field as an aware datetime, or None."""
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    return ts_to_datetime(value)


def number(value: Decimal | float | int | None) -> float | None:
    """A numeric column value as float (None stays None)."""
    return None if value is None else float(value)


def set_fields(message: Message, values: dict[str, Any]) -> None:
    """Assign values to same-named fields; None leaves a field unset (absent), datetimes become Timestamps."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            datetime_to_ts(value, getattr(message, name))
        elif isinstance(value, Decimal):
            setattr(message, name, float(value))
        else:
            setattr(message, name, value)
