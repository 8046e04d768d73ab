"""What `make run` shows: live races polled within a minute of starting on an empty database."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import running_stack
from tests.e2e.stack import http_get, table_counts, wait_for


def test_raceday_up_polls_live_races_within_a_minute(fresh_database_url: str, tmp_path: Path) -> None:
    # Real time (speed 1), as `make run`: the baseline stores the day, then the scheduler must pick
    # the races up at once rather than at its next 60 s tick.
    with running_stack(fresh_database_url, tmp_path, speed=1.0) as stack:
        wait_for(
            lambda: table_counts(fresh_database_url)["money_flow_history"] > 0,
            45,
            "the first money-flow rows",
        )
        status, body = http_get(f"http://127.0.0.1:{stack.http_port}/api/races/upcoming?window_minutes=90")
        assert status == 200
        upcoming = json.loads(body)["races"]
        open_races = [race for race in upcoming if race["status"] == "open"]
        assert open_races, upcoming
        status, body = http_get(
            f"http://127.0.0.1:{stack.http_port}/api/money-flow-timeline?race_id={open_races[0]['race_id']}"
        )
        assert status == 200
        assert json.loads(body)["documents"], "the dashboard's timeline for an open race has data"
