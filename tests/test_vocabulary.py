"""The closed vocabularies are written once, in the Rust core; Python's static types match them."""

from __future__ import annotations

from typing import get_args

import raceday_core
from services.common.status import RACE_STATUSES, RaceStatus


def test_the_race_status_type_is_the_core_vocabulary() -> None:
    assert get_args(RaceStatus) == raceday_core.RACE_STATUSES == RACE_STATUSES
