"""Entrants of a race with capped odds and money-flow histories (rest-api §2.9).

Histories come from lateral lookups per entrant through the (entrant_id, ...) indexes,
bounded to [start_time - 1 day, start_time + 1 day) so only the race's partitions are read.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final

from psycopg.rows import dict_row

from services.common.proto.raceday.v1 import race_pb2
from services.common.timestamps import datetime_to_ts
from services.writer.convert import set_fields
from services.writer.db import Database
from services.writer.errors import NotFoundError
from services.writer.queries.rows import require_id

HISTORY_LIMIT_MAX = 200

RACE_WINDOW_SQL: Final = """
SELECT start_time - interval '1 day' AS lower, start_time + interval '1 day' AS upper
FROM races WHERE race_id = %(race_id)s
"""

ENTRANTS_SQL: Final = """
SELECT entrant_id, race_id, runner_number, name, barrier, barrier_position, jockey, trainer_name,
       silk_colours, silk_url_64x64, silk_url_128x128, is_scratched, is_late_scratched, scratch_time,
       favourite, mover, runner_change::text AS runner_change_json, fixed_win_odds, fixed_place_odds,
       pool_win_odds, pool_place_odds, hold_percentage, bet_percentage, win_pool_percentage,
       place_pool_percentage, win_pool_amount, place_pool_amount, money_flow_at, created_at, updated_at
FROM entrants
WHERE race_id = %(race_id)s
ORDER BY runner_number, entrant_id
"""

ODDS_HISTORY_SQL: Final = """
SELECT e.entrant_id, h.odds, h.type, h.event_timestamp
FROM entrants e
CROSS JOIN LATERAL (
    SELECT o.odds, o.type, o.event_timestamp, o.id
    FROM odds_history o
    WHERE o.entrant_id = e.entrant_id
      AND o.event_timestamp >= %(lower)s AND o.event_timestamp < %(upper)s
    ORDER BY o.event_timestamp DESC, o.id DESC
    LIMIT %(limit)s
) AS h
WHERE e.race_id = %(race_id)s
ORDER BY e.entrant_id, h.event_timestamp, h.id
"""

MONEY_FLOW_HISTORY_SQL: Final = """
SELECT e.entrant_id, h.hold_percentage, h.win_pool_amount, h.place_pool_amount, h.time_interval,
       h.event_timestamp
FROM entrants e
CROSS JOIN LATERAL (
    SELECT m.hold_percentage, m.win_pool_amount, m.place_pool_amount, m.time_interval,
           m.event_timestamp, m.id
    FROM money_flow_history m
    WHERE m.entrant_id = e.entrant_id
      AND m.event_timestamp >= %(lower)s AND m.event_timestamp < %(upper)s
    ORDER BY m.event_timestamp DESC, m.id DESC
    LIMIT %(limit)s
) AS h
WHERE e.race_id = %(race_id)s
ORDER BY e.entrant_id, h.event_timestamp, h.id
"""


async def list_entrants(db: Database, race_id: str, history_limit: int) -> list[race_pb2.Entrant]:
    """Entrants by runner number, with its latest `history_limit` odds and money-flow rows, oldest first."""
    require_id(race_id, "race_id")
    limit = max(0, min(HISTORY_LIMIT_MAX, history_limit))
    async with db.read_connection() as conn:
        window_cur = await conn.execute(RACE_WINDOW_SQL, {"race_id": race_id})
        window = await window_cur.fetchone()
        if window is None:
            raise NotFoundError("Race not found")
        params = {"race_id": race_id, "lower": window[0], "upper": window[1], "limit": limit}
        entrants_cur = conn.cursor(row_factory=dict_row)
        odds_rows: list[Any] = []
        flow_rows: list[Any] = []
        async with conn.pipeline():
            await entrants_cur.execute(ENTRANTS_SQL, params)
            if limit > 0:
                odds_cur = await conn.execute(ODDS_HISTORY_SQL, params)
                flow_cur = await conn.execute(MONEY_FLOW_HISTORY_SQL, params)
        rows = await entrants_cur.fetchall()
        if limit > 0:
            odds_rows = await odds_cur.fetchall()
            flow_rows = await flow_cur.fetchall()
    odds_by_entrant: dict[str, list[Any]] = defaultdict(list)
    for entrant_id, odds, odds_type, at in odds_rows:
        odds_by_entrant[entrant_id].append((odds, odds_type, at))
    flow_by_entrant: dict[str, list[Any]] = defaultdict(list)
    for entrant_id, *values in flow_rows:
        flow_by_entrant[entrant_id].append(values)
    result: list[race_pb2.Entrant] = []
    for row in rows:
        entrant = race_pb2.Entrant()
        entrant.has_money_flow = row["money_flow_at"] is not None
        set_fields(entrant, row)
        for odds, odds_type, at in odds_by_entrant.get(row["entrant_id"], []):
            point = entrant.odds_history.add(type=odds_type)
            if odds is not None:
                point.odds = float(odds)
            datetime_to_ts(at, point.timestamp)
        for hold, win, place, interval, at in flow_by_entrant.get(row["entrant_id"], []):
            flow = entrant.money_flow_history.add(
                win_pool_amount=win, place_pool_amount=place, time_interval=interval
            )
            if hold is not None:
                flow.hold_percentage = float(hold)
            datetime_to_ts(at, flow.timestamp)
        result.append(entrant)
    return result
