"""Reading `optional` protobuf fields: an absent value is None, never the type's zero."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.timestamps import ts_to_datetime


def opt(message: Message, field: str) -> Any:
    """An `optional` scalar field's value when set, else None (use opt_ts for Timestamps)."""
    return getattr(message, field) if message.HasField(field) else None


def opt_ts(message: Message, field: str) -> datetime | None:
    """An optional Timestamp field as an aware datetime, or None."""
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    return ts_to_datetime(value)
