"""Poll cadence by race status and time to start (spec/scheduling.md §3)."""

from __future__ import annotations

from typing import Final, Literal

from services.common.status import is_terminal

Tier = Literal["15s", "30s", "60s"]
TIERS: Final[tuple[Tier, ...]] = ("15s", "30s", "60s")
TIER_SECONDS: Final[dict[Tier, int]] = {"15s": 15, "30s": 30, "60s": 60}
# Never poll one race more often than this (TAB data refreshes about every 15 s).
MIN_INTERVAL_S: Final = 15


def poll_tier(status: str, tts_s: float) -> Tier | None:
    """The cadence tier of a race, or None when it is terminal (stop polling)."""
    if is_terminal(status):
        return None
    if status in ("closed", "interim") or tts_s <= 300:
        return "15s"
    if tts_s <= 900:
        return "30s"
    return "60s"
