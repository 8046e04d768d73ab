"""The wall clock, optionally running faster than real time for simulated race days.

With speed 1 (the default, and always against the real TAB) this is the real UTC
clock. `raceday up --sim-speed X` runs the simulated TAB and the fetcher on the
same accelerated clock: simulated time equals real time at the anchor instant
and then advances X times faster, so both processes agree on "now" without
talking to each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from services.common.config import Env

SPEED_VAR = "RACEDAY_CLOCK_SPEED"
ANCHOR_VAR = "RACEDAY_CLOCK_ANCHOR_MS"


def real_now_ms() -> int:
    """Real UTC milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Clock:
    """now = anchor + (real - anchor) x speed, in epoch milliseconds."""

    speed: float = 1.0
    anchor_ms: int = 0

    @classmethod
    def from_env(cls, env: Env | None = None) -> Clock:
        """RACEDAY_CLOCK_SPEED (default 1) and RACEDAY_CLOCK_ANCHOR_MS (default: now)."""
        env = env or Env()
        speed = env.number(SPEED_VAR, 1.0, minimum=0.01, maximum=10_000.0)
        anchor = env.integer(ANCHOR_VAR, real_now_ms(), minimum=0)
        return cls(speed=speed, anchor_ms=anchor)

    def now_ms(self) -> int:
        """The clock's current instant in epoch milliseconds."""
        return self.at_real_ms(real_now_ms())

    def at_real_ms(self, real_ms: int) -> int:
        """What this clock read at a real instant (e.g. a commit time from the database)."""
        if self.speed == 1.0:
            return real_ms
        return self.anchor_ms + int((real_ms - self.anchor_ms) * self.speed)

    def to_real_seconds(self, clock_seconds: float) -> float:
        """How long a duration on this clock lasts in real seconds (for sleeps and timeouts)."""
        return clock_seconds / self.speed

    def env(self) -> dict[str, str]:
        """The variables that give another process the same clock."""
        return {SPEED_VAR: repr(self.speed), ANCHOR_VAR: str(self.anchor_ms)}
