"""A circuit breaker: the TAB client's (spec nztab-api §9.5), and the commit path's.

closed --(N consecutive counted failures)--> open --(open_s elapsed)--> half_open
half_open: exactly one trial call; success closes, failure re-opens for open_s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, Literal

BreakerState = Literal["closed", "open", "half_open"]

DEFAULT_FAILURE_THRESHOLD: Final = 5
DEFAULT_OPEN_S: Final = 30.0


class CircuitBreaker:
    """Per-host breaker. Call `allow()` before a fetch, then exactly one of the `record_*` methods."""

    def __init__(
        self,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        open_s: float = DEFAULT_OPEN_S,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState, str], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if open_s <= 0:
            raise ValueError(f"open_s must be positive, got {open_s}")
        self._threshold = failure_threshold
        self._open_s = open_s
        self._clock = clock
        self._on_change = on_change
        self._state: BreakerState = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose time is up reads as half_open."""
        if self._state == "open" and self._clock() - self._opened_at >= self._open_s:
            self._change("half_open", "open period elapsed")
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Counted failures since the last success (closed state)."""
        return self._consecutive

    @property
    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when not open)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self._open_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a fetch go out now? In half_open only the single trial may."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        """The upstream answered properly: reset the count; a half-open trial closes the breaker."""
        self._consecutive = 0
        if self._state == "half_open" and self._trial_in_flight:
            self._trial_in_flight = False
            self._change("closed", "trial call succeeded")

    def record_failure(self, cause: str) -> None:
        """A fetch failed for a cause that counts (connect, timeout, 5xx, 429, undecodable body)."""
        if self._state == "half_open" and self._trial_in_flight:
            self._trial_in_flight = False
            self._open(f"trial call failed: {cause}")
            return
        if self._state != "closed":
            return
        self._consecutive += 1
        if self._consecutive >= self._threshold:
            self._open(f"{self._consecutive} consecutive failures, last: {cause}")

    def release(self) -> None:
        """The trial ended without a verdict (cancelled): let another fetch try."""
        if self._state == "half_open":
            self._trial_in_flight = False

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self._consecutive = 0
        self._change("open", reason)

    def _change(self, new: BreakerState, reason: str) -> None:
        old = self._state
        self._state = new
        if self._on_change is not None and old != new:
            self._on_change(old, new, reason)
