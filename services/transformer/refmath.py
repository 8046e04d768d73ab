"""The numeric rules of money-flow.md §1, §5 and §6, written plainly (reference side).

Every operation is one IEEE-754 double operation in the order the spec writes it, so the
results equal the Rust core's bit for bit.
"""

from __future__ import annotations

import math
import re
from datetime import date

MAX_EPOCH_S = 4_102_444_799  # 2099-12-31T23:59:59Z: later starts are not real races
MAX_EPOCH_MS = MAX_EPOCH_S * 1000 + 999
MAX_EXACT = 2**53  # amounts beyond this could differ between int and double arithmetic
_TWO_POW_63 = 2.0**63


def round_half_up(x: float) -> int:
    """R(x) = floor(x + 0.5) as an integer (§1.3); ValueError if not finite or beyond 64 bits."""
    r = math.floor(x + 0.5) if math.isfinite(x) else None
    if r is None or not -_TWO_POW_63 <= r < _TWO_POW_63:
        raise ValueError(f"cannot round {x!r} to a 64-bit integer")
    return r


def hundredths(x: float) -> int:
    """Odds compared as integer hundredths, R(x × 100) (§1.5)."""
    return round_half_up(x * 100.0)


def check_epoch_s(s: int) -> None:
    """Rejects epoch seconds outside 1970..2099."""
    if not 0 <= s <= MAX_EPOCH_S:
        raise ValueError(f"advertised_start_s {s} is out of range (0..={MAX_EPOCH_S})")


def check_epoch_ms(ms: int) -> None:
    """Rejects epoch milliseconds outside 1970..2099."""
    if not 0 <= ms <= MAX_EPOCH_MS:
        raise ValueError(f"polled_at_ms {ms} is out of range (0..={MAX_EPOCH_MS})")


def time_to_start(advertised_start_s: int, polled_at_ms: int) -> int:
    """Whole minutes to the start: floor((start·1000 − polled_at + 30000) / 60000) (§6.1)."""
    check_epoch_s(advertised_start_s)
    check_epoch_ms(polled_at_ms)
    return (advertised_start_s * 1000 - polled_at_ms + 30_000) // 60_000


def bucket(time_to_start: int) -> int:
    """The `time_interval` bucket (§6.2)."""
    if time_to_start >= 60:
        return 60
    if time_to_start >= 5:
        return time_to_start - time_to_start % 5
    return time_to_start


def interval_type(time_to_start: int) -> str:
    """`5m`, `2m`, `30s` or `live` (§6.3)."""
    if time_to_start > 30:
        return "5m"
    if time_to_start > 5:
        return "2m"
    if time_to_start > 0:
        return "30s"
    return "live"


def _exact_amount(x: float) -> int:
    r = round_half_up(x)
    if abs(r) > MAX_EXACT:
        raise ValueError(f"amount {r} is beyond 2^53 cents")
    return r


def pool_amounts(
    hold: float, win_cents: int, place_cents: int
) -> tuple[int, int, int, float | None, float | None]:
    """(win, place, total) amounts in cents and unrounded win/place percentages (§5)."""
    for name, cents in (("win_cents", win_cents), ("place_cents", place_cents)):
        if not 0 <= cents <= MAX_EXACT:
            raise ValueError(f"{name} {cents} is out of range (0..=2^53)")
    if not math.isfinite(hold):
        raise ValueError(f"hold {hold!r} is not finite")
    w = win_cents / 100
    p = place_cents / 100
    hp = hold / 100
    win = _exact_amount((w * hp) * 100)
    place = _exact_amount((p * hp) * 100)
    total = _exact_amount(((w + p) * hp) * 100)
    win_pct = (win / win_cents) * 100 if win_cents > 0 else None
    place_pct = (place / place_cents) * 100 if place_cents > 0 else None
    return win, place, total, win_pct, place_pct


def round2(x: float) -> float:
    """A percentage as stored: R(x × 100) / 100."""
    return round_half_up(x * 100) / 100


_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def _valid_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def is_iso_date(s: str) -> bool:
    """A valid calendar date written exactly YYYY-MM-DD."""
    m = _ISO_DATE.fullmatch(s)
    return m is not None and _valid_date(int(m[1]), int(m[2]), int(m[3])) is not None


def parse_rfc3339_ms(s: str) -> int | None:
    """Epoch ms of an RFC 3339 instant (fraction truncated to ms); None if invalid."""
    m = _RFC3339.fullmatch(s)
    if m is None:
        return None
    day = _valid_date(int(m[1]), int(m[2]), int(m[3]))
    hour, minute, second = int(m[4]), int(m[5]), int(m[6])
    if day is None or hour > 23 or minute > 59 or second > 59:
        return None
    frac_ms = int(((m[7] or "") + "000")[:3])
    offset_s = 0
    if m[8] not in ("Z", "z"):
        oh, om = int(m[8][1:3]), int(m[8][4:6])
        if oh > 23 or om > 59:
            return None
        offset_s = (oh * 3600 + om * 60) * (-1 if m[8][0] == "-" else 1)
    secs = (day.toordinal() - _EPOCH_DAY) * 86_400 + hour * 3600 + minute * 60 + second - offset_s
    return secs * 1000 + frac_ms
