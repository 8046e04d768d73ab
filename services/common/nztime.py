"""New Zealand time: the one place that knows the Pacific/Auckland zone.

No code reads the process time zone; instants are UTC datetimes or epoch values,
and NZ dates, midnights and display strings come from here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NZ = ZoneInfo("Pacific/Auckland")


def utc_now() -> datetime:
    """The current instant as an aware UTC datetime."""
    return datetime.now(UTC)


def nz_date(instant: datetime) -> date:
    """The NZ racing day (Pacific/Auckland calendar date) of an aware instant."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: an instant needs a time zone")
    return instant.astimezone(NZ).date()


def nz_today(now: datetime | None = None) -> date:
    """Today's NZ date."""
    return nz_date(now or utc_now())


def nz_midnight(day: date) -> datetime:
    """The instant of NZ midnight at the start of `day`, as an aware UTC datetime."""
    return datetime.combine(day, time(0, 0), tzinfo=NZ).astimezone(UTC)


def nz_day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of an NZ racing day as instants; 23 or 25 hours long on DST changes."""
    return nz_midnight(day), nz_midnight(day + timedelta(days=1))


def nz_local_time(day: date, hour: int, minute: int) -> datetime:
    """The instant of a wall-clock time on an NZ date (for 04:00, 06:00, 21:00 jobs)."""
    return datetime.combine(day, time(hour, minute), tzinfo=NZ).astimezone(UTC)


def format_nz(instant: datetime) -> str:
    """ISO-8601 in Pacific/Auckland with milliseconds (truncated) and the offset, never `Z`.

    Example: 2025-07-17T12:50:00.000+12:00. Hours are 00-23.
    """
    if instant.tzinfo is None:
        raise ValueError("naive datetime: an instant needs a time zone")
    local = instant.astimezone(NZ)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond // 1000:03d}{offset[:3]}:{offset[3:]}"


def from_epoch_ms(ms: int) -> datetime:
    """An aware UTC datetime from milliseconds since the epoch (exact)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def to_epoch_ms(instant: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (sub-millisecond part truncated)."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: an instant needs a time zone")
    delta = instant - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
