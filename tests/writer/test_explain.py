"""Every indexed read is served by its index: EXPLAIN with sequential scans disabled shows the
expected index and no sequential scan (the tables are tiny, so enable_seqscan=off makes the
planner reveal whether an index can serve the query at all)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.writer import schedule, state
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from services.writer.queries import alert_feed, alerts, entrants, meetings, pools, races, status, timeline
from tests.writer.builder import START, ensure, minutes_before, new_race, poll, write

MF_INDEX = "money_flow_history_2025_07_17_entrant_id_time_interval_even_idx"
ODDS_INDEX = "odds_history_2025_07_17_entrant_id_type_event_timestamp_idx"
FAR_DAY = START.date() + timedelta(days=5)
WINDOW = {"lower": START - timedelta(days=1), "upper": START + timedelta(days=1)}
# Parameters of the previous/next race queries.
NEIGHBOUR = {
    "race_id": "R",
    "race_date_nz": START.date(),
    "start_time": START,
    "meeting_name": "Test Park",
    "race_number": 1,
    "day_start": START - timedelta(days=1),
    "day_end": START + timedelta(days=1),
}

CASES: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    (
        "state race",
        state.STATE_RACE_SQL,
        {"race_id": "R"},
        ("races_pkey", "race_pools_pkey", "race_results_pkey"),
    ),
    ("state buckets", state.STATE_BUCKETS_SQL, {"race_id": "R"}, ("entrants_race_runner_idx", MF_INDEX)),
    ("state odds", state.STATE_ODDS_SQL, {"race_id": "R"}, ("entrants_race_runner_idx", ODDS_INDEX)),
    (
        "meetings of a day",
        meetings.LIST_MEETINGS_SQL,
        {"date": START.date(), "category": None, "country": None},
        ("meetings_date_idx", "races_meeting_number_idx"),
    ),
    ("meeting", meetings.GET_MEETING_SQL, {"meeting_id": "M"}, ("meetings_pkey", "races_meeting_number_idx")),
    (
        "races of a meeting",
        races.LIST_RACES_SQL,
        {"meeting_id": "M"},
        ("races_meeting_number_idx", "entrants_race_runner_idx"),
    ),
    ("race", races.GET_RACE_SQL, {"race_id": "R"}, ("races_pkey", "race_results_pkey")),
    (
        "previous race",
        races.PREVIOUS_RACE_SQL,
        NEIGHBOUR,
        ("races_start_time_idx",),
    ),
    (
        "next race",
        races.NEXT_RACE_SQL,
        NEIGHBOUR,
        ("races_start_time_idx",),
    ),
    ("next scheduled", races.NEXT_SCHEDULED_SQL, {"now": START}, ("races_start_time_idx",)),
    (
        "upcoming",
        races.UPCOMING_SQL,
        {"lower": START - timedelta(minutes=5), "upper": START + timedelta(hours=2), "limit": 50},
        ("races_start_time_idx",),
    ),
    (
        "schedulable",
        schedule.SCHEDULABLE_SQL,
        {"lower": START - timedelta(hours=2), "upper": START + timedelta(minutes=90)},
        ("races_start_time_idx",),
    ),
    ("entrants", entrants.ENTRANTS_SQL, {"race_id": "R"}, ("entrants_race_runner_idx",)),
    ("odds history", entrants.ODDS_HISTORY_SQL, {"race_id": "R", "limit": 50, **WINDOW}, (ODDS_INDEX,)),
    (
        "money-flow history",
        entrants.MONEY_FLOW_HISTORY_SQL,
        {"race_id": "R", "limit": 50, **WINDOW},
        (MF_INDEX,),
    ),
    ("pools", pools.POOLS_SQL, {"race_id": "R"}, ("race_pools_pkey",)),
    ("results", pools.RESULTS_SQL, {"race_id": "R"}, ("race_results_pkey",)),
    (
        "timeline race",
        timeline.RACE_ENTRANTS_SQL,
        {"race_id": "R"},
        ("races_pkey", "entrants_race_runner_idx"),
    ),
    ("timeline", timeline.LATEST_PER_BUCKET_SQL, {"entrant_ids": ["R-e01", "R-e02"], **WINDOW}, (MF_INDEX,)),
    ("alert configs", alerts.SELECT_SQL, {"user_id": "u"}, ("user_alert_configs_user_order_key",)),
    ("alert settings", alerts.AUDIBLE_SQL, {"user_id": "u"}, ("user_alert_settings_pkey",)),
    ("status", status.LAST_WRITE_SQL, {}, ("race_polls_written_at_idx",)),
    (
        "alerts of a day",
        alert_feed.list_alerts_sql("since", "cursor"),
        {"since": START - timedelta(hours=12), "cursor": 10**9, "limit": 100},
        ("race_alerts_polled_at_idx",),
    ),
    (
        "alerts of a race",
        alert_feed.list_alerts_sql("since", "race_id"),
        {"since": START - timedelta(hours=12), "race_id": "R", "limit": 100},
        ("race_alerts_race_id_entrant_id_kind_time_interval_key",),
    ),
    (
        "alerts after",
        alert_feed.list_alerts_sql("after_id"),
        {"after_id": 5, "limit": 500},
        ("race_alerts_pkey",),
    ),
]


@pytest.fixture
async def race_id(db: Database, maintainer: PartitionMaintainer) -> str:
    """A race with rows in the 2025-07-17 partitions and an empty neighbouring day."""
    await ensure(maintainer, START.date(), START.date() + timedelta(days=1), FAR_DAY)
    race = new_race(runners=2)
    first = poll(race, minutes_before(START, 30))
    await write(db, maintainer, first)
    await write(db, maintainer, poll(race, minutes_before(START, 20), index=1, previous=first))
    return race.race_id


async def _plan(db: Database, query: str, params: dict[str, Any]) -> str:
    async with db.read_connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        cur = await conn.execute(("EXPLAIN " + query).encode(), params)
        plan = "\n".join(row[0] for row in await cur.fetchall())
    return plan


async def test_every_indexed_query_is_served_by_its_index(db: Database, race_id: str) -> None:
    # One database for all cases (setting up partitions per case would dominate the run time).
    problems: list[str] = []
    for name, query, params, indexes in CASES:
        bound = {k: (race_id if v == "R" else v) for k, v in params.items()}
        if "entrant_ids" in bound:
            bound["entrant_ids"] = [f"{race_id}-e01", f"{race_id}-e02"]
        plan = await _plan(db, query, bound)
        if "Seq Scan" in plan:
            problems.append(f"{name}: sequential scan\n{plan}")
        problems += [f"{name}: {index} not used\n{plan}" for index in indexes if index not in plan]
        if "lower" in bound and f"{FAR_DAY:%Y_%m_%d}" in plan:
            # Bounded by explicit instants: partitions outside [start - 1 day, start + 1 day) are
            # pruned at plan time (the lateral state lookups prune at run time instead).
            problems.append(f"{name}: partition of {FAR_DAY} not pruned\n{plan}")
    assert not problems, "\n\n".join(problems)
