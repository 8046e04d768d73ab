"""The vocabularies of the two history tables: money-flow interval types and odds types.

Written once, in the Rust core (rust_ext/core/src/vocab.rs); the order of ODDS_TYPES is the
order of an entrant's four current-odds columns.
"""

from __future__ import annotations

from typing import Final

import raceday_core

INTERVAL_TYPES: Final[tuple[str, ...]] = raceday_core.INTERVAL_TYPES
ODDS_TYPES: Final[tuple[str, ...]] = raceday_core.ODDS_TYPES
