"""Backoff, Retry-After parsing and the client-wide pause after a 429 (spec nztab-api §9.2, §9.4)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

DEFAULT_RETRY_AFTER_S: Final = 1.0


def backoff_s(retry: int, base_s: float, jitter_s: float, rng: random.Random) -> float:
    """Wait before retry number `retry` (1, 2, ...): base x 2^(retry-1) plus up to `jitter_s`."""
    return base_s * float(2 ** (retry - 1)) + rng.uniform(0.0, jitter_s)


def retry_after_s(value: str | None, now: datetime | None = None) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; else 1 s."""
    if value is None:
        return DEFAULT_RETRY_AFTER_S
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else DEFAULT_RETRY_AFTER_S
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return DEFAULT_RETRY_AFTER_S
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; a zone-less parse means "-0000".
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Pause:
    """A client-wide 'send nothing until' instant on the monotonic clock."""

    def __init__(self, cap_s: float) -> None:
        self._cap_s = cap_s
        self._until = 0.0

    def extend(self, now: float, seconds: float) -> None:
        """Pause until now + seconds (capped); never shortens a longer pause already set."""
        self._until = max(self._until, now + min(seconds, self._cap_s))

    def remaining(self, now: float) -> float:
        """Seconds left of the pause (0 when not paused)."""
        return max(0.0, self._until - now)
