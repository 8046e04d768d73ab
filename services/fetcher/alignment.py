"""Cache-aligned polling: poll a race just after the TAB refreshes its data.

The TAB serves each race from a cache refreshed about every 15 s and stamps every response
with `header.generated_time`, the instant of that refresh. A poll at a fixed phase reads data
up to a whole refresh interval old. From the generated times it has seen, the fetcher learns
each race's refresh phase and moves its polls to just after the next refresh.

Rules (each poll is judged from its own response):
- A poll that read data at most `margin + tolerance` old was already just after a refresh:
  nothing moves. A source that renders on every request (data always fresh) is never moved.
- Otherwise the next poll is delayed to `margin` after the refresh expected next; polls are
  only ever delayed, so a race is never polled more often than its cadence, and a delay
  never reaches a whole refresh interval.
- The phase is trusted only when the race's refreshes keep to the interval: a missing
  `generated_time`, one in the future, one older than an interval, or two refreshes not a
  whole number of intervals apart sends the race back to a fixed phase until two polls in a
  row agree again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from services.fetcher.cadence import MIN_INTERVAL_S

# How often the TAB refreshes a race's data, in ms (spec: about every 15 s).
REFRESH_INTERVAL_MS: Final = MIN_INTERVAL_S * 1000
# Clock skew and refresh jitter allowed before a refresh counts as off its phase.
TOLERANCE_MS: Final = 750


@dataclass(slots=True)
class RefreshPhase:
    """What one race's generated times say about its refresh phase."""

    margin_ms: int
    last_generated_ms: int | None = None
    agreeing: int = 0

    def observe(self, polled_at_ms: int, generated_ms: int | None) -> int:
        """Record one poll's data time; return how long to delay the next poll (ms, ≥ 0)."""
        if generated_ms is None or not self._plausible(polled_at_ms, generated_ms):
            self.last_generated_ms, self.agreeing = None, 0
            return 0
        previous, self.last_generated_ms = self.last_generated_ms, generated_ms
        if previous is not None and self._whole_intervals_apart(previous, generated_ms):
            self.agreeing += 1
        else:
            self.agreeing = 1
        if self.agreeing < 2:
            return 0
        age_ms = polled_at_ms - generated_ms
        if age_ms <= self.margin_ms + TOLERANCE_MS:
            return 0
        # The next poll falls due a whole number of intervals after this one; it should come
        # `margin` after a refresh instead, which is this much later.
        return (self.margin_ms - age_ms) % REFRESH_INTERVAL_MS

    @staticmethod
    def _plausible(polled_at_ms: int, generated_ms: int) -> bool:
        age_ms = polled_at_ms - generated_ms
        return -TOLERANCE_MS <= age_ms <= REFRESH_INTERVAL_MS + TOLERANCE_MS

    @staticmethod
    def _whole_intervals_apart(earlier_ms: int, later_ms: int) -> bool:
        off = (later_ms - earlier_ms) % REFRESH_INTERVAL_MS
        return min(off, REFRESH_INTERVAL_MS - off) <= TOLERANCE_MS
