"""A poll in flight for several slots counts each slot it skips once, however often the scheduler looks.

Found by `raceday soak`: every dispatch pass (several a second) moved a race in flight back to one
interval after its poll started and counted the same skipped slots again.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from services.common.clock import Clock
from services.common.config import Env
from services.fetcher.scheduler import Scheduler, TrackedRace
from services.fetcher.settings import FetcherSettings


def test_slots_skipped_while_a_poll_runs_are_counted_once() -> None:
    clock = Clock(speed=1.0)
    # No poll starts here: the pipeline is only asked when it last succeeded (for a gauge).
    pipeline = cast(Any, SimpleNamespace(last_success_ms=0))
    scheduler = Scheduler(FetcherSettings.from_env(Env({})), pipeline, cast(Any, None), clock)
    now = clock.now_ms()
    started = now - 62_000  # a 15 s tier poll started a minute ago and is still running
    race = TrackedRace(
        race_id="R1",
        meeting_name="Ellerslie",
        race_number=1,
        status="open",
        start_time_ms=now + 120_000,
        next_due_ms=started + 15_000,
        last_started_ms=started,
        in_flight=True,
    )
    scheduler.races[race.race_id] = race
    for _ in range(5):
        scheduler.dispatch_due()
    # Slots due 15, 30 and 45 s after the start were skipped; the one at 60 s is the next due.
    assert scheduler.missed_by_tier["15s"] == 3
    assert race.next_due_ms == started + 60_000
