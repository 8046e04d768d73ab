"""The race status vocabulary: one normalisation shared by every Python component.

Upstream statuses are capitalised (`Open`, `Final`); internally they are lower
case. Unknown values map to `unknown` and the raw text is kept by the caller.
"""

from __future__ import annotations

from typing import Final, Literal, cast

import raceday_core

RaceStatus = Literal["open", "closed", "interim", "final", "abandoned", "unknown"]

# The vocabulary is written once, in the Rust core (rust_ext/core/src/vocab.rs); the Literal
# above is its static type, held to it by tests/test_vocabulary.py.
RACE_STATUSES: Final[tuple[RaceStatus, ...]] = cast(tuple[RaceStatus, ...], raceday_core.RACE_STATUSES)
TERMINAL_STATUSES: Final[frozenset[str]] = frozenset({"final", "abandoned"})

_UPSTREAM: Final[dict[str, RaceStatus]] = {
    "open": "open",
    "closed": "closed",
    "running": "closed",
    "interim": "interim",
    "final": "final",
    "finalized": "final",
    "finalised": "final",
    "abandoned": "abandoned",
    "cancelled": "abandoned",
    "canceled": "abandoned",
}


def normalise_status(raw: str | None) -> RaceStatus:
    """Map an upstream race status to the internal vocabulary (case-insensitive, trimmed)."""
    if raw is None:
        return "unknown"
    return _UPSTREAM.get(raw.strip().lower(), "unknown")


def is_terminal(status: str) -> bool:
    """True for `final` and `abandoned`: polling stops."""
    return status in TERMINAL_STATUSES
