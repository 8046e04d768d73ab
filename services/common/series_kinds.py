"""The vocabularies of the two history tables: money-flow interval types and odds types.

The order of ODDS_TYPES is the order of an entrant's four current-odds columns.
"""

from __future__ import annotations

from typing import Final

INTERVAL_TYPES: Final[tuple[str, ...]] = ("5m", "2m", "30s", "live")
ODDS_TYPES: Final[tuple[str, ...]] = ("fixed_win", "fixed_place", "pool_win", "pool_place")
