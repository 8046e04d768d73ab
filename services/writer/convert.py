"""Conversions between protobuf messages and database values.

Timestamps convert exactly (services/common/timestamps.py: microseconds, PostgreSQL has no
finer precision); numeric columns come back as Decimal and leave as float.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from google.protobuf.message import Message

from services.common.timestamps import datetime_to_ts


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
