"""The simulated clock: real time shifted by an offset and optionally sped up."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.common.nztime import nz_date

NS_PER_S = 1_000_000_000


class SimClock:
    """Simulated now = base_sim + (real elapsed since base_real) x speed.

    By default the clock starts at real now; `now_ns` pins the start instead, and
    `anchor_ns` reproduces services.common.clock.Clock (the fetcher's clock under
    `raceday up --sim-speed`), so both processes agree on simulated time.

    Real time is read from a monotonic counter pinned to the wall clock once, so
    wall-clock steps on the host do not make the simulation jump.
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        now_ns: int | None = None,
        offset_s: float = 0.0,
        anchor_ns: int | None = None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._monotonic_ns = monotonic_ns
        self._wall_at_start = wall_ns()
        self._mono_at_start = monotonic_ns()
        self._speed = float(speed)
        if now_ns is not None:
            self._base_real, self._base_sim = self._real_ns(), now_ns
        elif anchor_ns is not None:
            # Shared with other processes (RACEDAY_CLOCK_ANCHOR_MS): sim = anchor + (real - anchor) x speed.
            self._base_real, self._base_sim = anchor_ns, anchor_ns + int(offset_s * NS_PER_S)
        else:
            self._base_real = self._real_ns()
            self._base_sim = self._base_real + int(offset_s * NS_PER_S)

    def _real_ns(self) -> int:
        return self._wall_at_start + (self._monotonic_ns() - self._mono_at_start)

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed

    def now_ns(self) -> int:
        """Simulated now in nanoseconds since the epoch."""
        return self._base_sim + int((self._real_ns() - self._base_real) * self._speed)

    def now_s(self) -> float:
        """Simulated now in seconds since the epoch."""
        return self.now_ns() / NS_PER_S

    def _rebase(self) -> None:
        now = self.now_ns()
        self._base_real = self._real_ns()
        self._base_sim = now

    def set_now_ns(self, now_ns: int) -> None:
        """Jump to an absolute simulated instant; the clock keeps running from there."""
        self._base_real = self._real_ns()
        self._base_sim = now_ns

    def set_offset_s(self, offset_s: float) -> None:
        """Simulated now = real now + offset (at the current speed from here on)."""
        self.set_now_ns(self._real_ns() + int(offset_s * NS_PER_S))

    def advance_s(self, seconds: float) -> None:
        """Move simulated time forward (or back, if negative) by `seconds`."""
        self._rebase()
        self._base_sim += int(seconds * NS_PER_S)

    def set_speed(self, speed: float) -> None:
        """Change the speed factor without moving the current simulated instant."""
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._rebase()
        self._speed = float(speed)

    def snapshot(self) -> dict[str, Any]:
        """The clock as JSON for the admin API."""
        now = self.now_ns()
        instant = datetime.fromtimestamp(now // NS_PER_S, UTC)
        return {
            "now": format_rfc3339_ns(now),
            "now_epoch_ms": now // 1_000_000,
            "speed": self._speed,
            "offset_s": (now - self._real_ns()) / NS_PER_S,
            "nz_date": nz_date(instant).isoformat(),
        }


def format_rfc3339_ns(epoch_ns: int) -> str:
    """RFC 3339 UTC with nine fractional digits and `Z`, like `header.generated_time`."""
    seconds, nanos = divmod(epoch_ns, NS_PER_S)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"
