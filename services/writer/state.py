"""GetRaceState: the committed prior state of one race for the transformer (storage §5).

Three statements in one pipelined round trip on a read connection: the race with its
pools and results flags; the latest poll per (entrant, bucket), with the increments and win
prices of its row (the cells moves compare with); the last stored odds per
(entrant, type). The history lookups run per entrant through the (entrant_id, ...) indexes
and are bounded to [start_time - 1 day, start_time + 1 day) so partitions are pruned.
"""

from __future__ import annotations

import time
from typing import Any, Final

from services.common.proto.raceday.v1 import race_pb2
from services.common.timestamps import datetime_to_ts
from services.writer import metrics
from services.writer.convert import set_fields
from services.writer.db import Database

STATE_RACE_SQL: Final = """
SELECT r.status, r.start_time, r.protest,
       p.race_id IS NOT NULL AS has_pools, p.win_pool_total, p.place_pool_total, p.quinella_pool_total,
       p.trifecta_pool_total, p.exacta_pool_total, p.first4_pool_total, p.total_race_pool, p.currency,
       p.extracted_pools, p.data_quality_score, p.source, p.last_updated,
       rr.photo_finish, rr.stewards_inquiry, rr.protest_lodged, rr.result_status, rr.result_time
FROM races r
LEFT JOIN race_pools p ON p.race_id = r.race_id
LEFT JOIN race_results rr ON rr.race_id = r.race_id
WHERE r.race_id = %(race_id)s
"""

STATE_BUCKETS_SQL: Final = """
SELECT h.entrant_id, h.time_interval, h.event_timestamp, h.id, h.win_pool_amount, h.place_pool_amount,
       h.incremental_win_amount, h.incremental_place_amount, h.fixed_win_odds, h.pool_win_odds
FROM races r
JOIN entrants e ON e.race_id = r.race_id
CROSS JOIN LATERAL (
    SELECT DISTINCT ON (m.time_interval)
           m.entrant_id, m.time_interval, m.event_timestamp, m.id, m.win_pool_amount, m.place_pool_amount,
           m.incremental_win_amount, m.incremental_place_amount, m.fixed_win_odds, m.pool_win_odds
    FROM money_flow_history m
    WHERE m.entrant_id = e.entrant_id
      AND m.event_timestamp >= r.start_time - interval '1 day'
      AND m.event_timestamp < r.start_time + interval '1 day'
    ORDER BY m.time_interval, m.event_timestamp DESC, m.id DESC
) AS h
WHERE r.race_id = %(race_id)s
ORDER BY h.entrant_id, h.time_interval DESC
"""

STATE_ODDS_SQL: Final = """
SELECT o.entrant_id, o.type, o.odds
FROM races r
JOIN entrants e ON e.race_id = r.race_id
CROSS JOIN LATERAL (
    SELECT DISTINCT ON (h.type) h.entrant_id, h.type, h.odds
    FROM odds_history h
    WHERE h.entrant_id = e.entrant_id
      AND h.event_timestamp >= r.start_time - interval '1 day'
      AND h.event_timestamp < r.start_time + interval '1 day'
    ORDER BY h.type, h.event_timestamp DESC, h.id DESC
) AS o
WHERE r.race_id = %(race_id)s
ORDER BY o.entrant_id, o.type
"""


async def get_race_state(db: Database, race_id: str) -> tuple[bool, race_pb2.RaceState]:
    """(found, state); an unknown race gives (False, an empty state)."""
    started = time.perf_counter()
    state = race_pb2.RaceState(race_id=race_id)
    params = {"race_id": race_id}
    async with db.read_connection() as conn:
        # Prepared: planning the two lateral lookups costs more than running them.
        async with conn.pipeline():
            race_cur = await conn.execute(STATE_RACE_SQL, params, prepare=True)
            buckets_cur = await conn.execute(STATE_BUCKETS_SQL, params, prepare=True)
            odds_cur = await conn.execute(STATE_ODDS_SQL, params, prepare=True)
        race = await race_cur.fetchone()
        buckets = await buckets_cur.fetchall()
        odds = await odds_cur.fetchall()
    metrics.STATE_SECONDS.observe(time.perf_counter() - started)
    if race is None:
        return False, state
    _fill_race(state, race)
    for entrant_id, interval, polled_at, row_id, win, place, inc_win, inc_place, fixed, pool in buckets:
        # The row's increments and win prices: the column the next bucket's moves compare with.
        bucket = state.buckets.add(
            entrant_id=entrant_id,
            time_interval=interval,
            row_id=row_id,
            win_pool_amount=win,
            place_pool_amount=place,
            incremental_win_amount=inc_win,
            incremental_place_amount=inc_place,
        )
        if fixed is not None:
            bucket.fixed_win_odds = float(fixed)
        if pool is not None:
            bucket.pool_win_odds = float(pool)
        datetime_to_ts(polled_at, bucket.polled_at)
    for entrant_id, odds_type, value in odds:
        last = state.odds.add(entrant_id=entrant_id, type=odds_type)
        if value is not None:
            last.odds = float(value)
    return True, state


def _fill_race(state: race_pb2.RaceState, row: tuple[Any, ...]) -> None:
    (status, start_time, protest, has_pools, *pool_values) = row[:16]
    photo, inquiry, protest_lodged, result_status, result_time = row[16:]
    state.status = status
    datetime_to_ts(start_time, state.start_time)
    state.protest = bool(protest)
    if has_pools:
        names = (
            "win_pool_total",
            "place_pool_total",
            "quinella_pool_total",
            "trifecta_pool_total",
            "exacta_pool_total",
            "first4_pool_total",
            "total_race_pool",
            "currency",
            "extracted_pools",
            "data_quality_score",
            "source",
            "last_updated",
        )
        state.pools.race_id = state.race_id
        set_fields(state.pools, dict(zip(names, pool_values, strict=True)))
    state.photo_finish = bool(photo)
    state.stewards_inquiry = bool(inquiry)
    state.protest_lodged = bool(protest_lodged)
    set_fields(state, {"result_status": result_status, "result_time": result_time})
