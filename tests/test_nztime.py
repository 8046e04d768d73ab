"""NZ time helpers: racing days, DST transitions, display format."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from services.common.clock import Clock
from services.common.nztime import format_nz, nz_date, nz_day_bounds, nz_midnight

NZ_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}[+-]\d{2}:\d{2}$")


@pytest.mark.parametrize(
    ("day", "lower", "upper", "hours"),
    [
        (date(2025, 7, 17), "2025-07-16T12:00:00+00:00", "2025-07-17T12:00:00+00:00", 24),
        (date(2025, 9, 28), "2025-09-27T12:00:00+00:00", "2025-09-28T11:00:00+00:00", 23),
        (date(2026, 4, 5), "2026-04-04T11:00:00+00:00", "2026-04-05T12:00:00+00:00", 25),
        (date(2025, 12, 1), "2025-11-30T11:00:00+00:00", "2025-12-01T11:00:00+00:00", 24),
    ],
)
def test_nz_day_bounds_follow_the_iana_zone(day: date, lower: str, upper: str, hours: int) -> None:
    start, end = nz_day_bounds(day)
    assert start.isoformat() == lower
    assert end.isoformat() == upper
    assert (end - start).total_seconds() == hours * 3600


def test_nz_date_of_instants_either_side_of_nz_midnight() -> None:
    midnight = nz_midnight(date(2025, 7, 17))
    assert nz_date(midnight) == date(2025, 7, 17)
    assert nz_date(datetime(2025, 7, 16, 11, 59, 59, 999000, tzinfo=UTC)) == date(2025, 7, 16)


def test_format_nz_uses_the_offset_milliseconds_and_an_h23_clock() -> None:
    assert format_nz(datetime(2025, 7, 17, 0, 50, tzinfo=UTC)) == "2025-07-17T12:50:00.000+12:00"
    just_after_midnight = datetime(2025, 11, 30, 11, 5, 9, 120999, tzinfo=UTC)
    text = format_nz(just_after_midnight)
    assert text == "2025-12-01T00:05:09.120+13:00"
    assert NZ_TIMESTAMP.match(text)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_nz(datetime(2025, 7, 17, 12, 0))


def test_an_accelerated_clock_reads_real_instants_on_its_own_scale() -> None:
    # Under `raceday up --sim-speed 10` a commit stamped by the database (real time) 6 s after the
    # anchor happened one simulated minute after it.
    anchor = 1_800_000_000_000
    clock = Clock(speed=10.0, anchor_ms=anchor)
    assert clock.at_real_ms(anchor + 6_000) == anchor + 60_000
    assert clock.at_real_ms(anchor) == anchor
    assert Clock().at_real_ms(anchor + 6_000) == anchor + 6_000
