"""The money-flow timeline (rest-api §2.12): one document per (entrant, effective bucket).

SQL selects, per (entrant, bucket) with -65 < time_interval <= 60, the bucket's latest
poll (greatest event_timestamp, then id) and the smallest row id stored in the bucket,
through money_flow_history_entrant_bucket_idx. Effective buckets (money-flow §7.1) are
then derived here: walking an entrant's buckets from the highest, a bucket counts if its
latest poll is more recent than that of every counted bucket above it. Documents are
ordered by their stable id (the bucket's smallest row id); cursor and created_after
filters apply to the effective documents; a page holds at most `limit` of them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from psycopg.rows import dict_row

from services.common.proto.raceday.v1 import query_pb2
from services.writer.convert import set_fields
from services.writer.db import Database
from services.writer.errors import InvalidArgumentError, NotFoundError
from services.writer.queries.rows import require_id

LIMIT_DEFAULT = 2000
LIMIT_MAX = 5000
INTERVAL_LOWER_EXCLUSIVE = -65
INTERVAL_UPPER_INCLUSIVE = 60

RACE_ENTRANTS_SQL: Final = """
SELECT r.start_time - interval '1 day' AS lower, r.start_time + interval '1 day' AS upper,
       array_remove(array_agg(e.entrant_id ORDER BY e.runner_number, e.entrant_id), NULL) AS entrant_ids
FROM races r
LEFT JOIN entrants e ON e.race_id = r.race_id
WHERE r.race_id = %(race_id)s
GROUP BY r.race_id
"""

LATEST_PER_BUCKET_SQL: Final = """
SELECT DISTINCT ON (h.entrant_id, h.time_interval)
       min(h.id) OVER (PARTITION BY h.entrant_id, h.time_interval) AS doc_id,
       h.id AS row_id, h.race_id, h.entrant_id, h.time_interval, h.time_to_start, h.interval_type,
       h.hold_percentage, h.bet_percentage, h.win_pool_amount, h.place_pool_amount, h.total_pool_amount,
       h.win_pool_percentage, h.place_pool_percentage, h.incremental_win_amount,
       h.incremental_place_amount, h.is_baseline, h.fixed_win_odds, h.fixed_place_odds,
       h.pool_win_odds, h.pool_place_odds, h.event_timestamp, h.created_at
FROM money_flow_history h
WHERE h.entrant_id = ANY(%(entrant_ids)s)
  AND h.event_timestamp >= %(lower)s AND h.event_timestamp < %(upper)s
  AND h.time_interval > -65 AND h.time_interval <= 60
ORDER BY h.entrant_id, h.time_interval, h.event_timestamp DESC, h.id DESC
"""


@dataclass(frozen=True, slots=True)
class Timeline:
    """A page of timeline documents and the entrants the selection covered."""

    documents: list[query_pb2.TimelineDocument]
    entrant_ids: list[str]


def effective_latest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows (latest poll per bucket, any entrants) whose buckets are effective (money-flow §7.1)."""
    by_entrant: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_entrant[row["entrant_id"]].append(row)
    effective: list[dict[str, Any]] = []
    for buckets in by_entrant.values():
        newest: tuple[datetime, int] | None = None
        for row in sorted(buckets, key=lambda r: r["time_interval"], reverse=True):
            stamp = (row["event_timestamp"], row["row_id"])
            if newest is None or stamp > newest:
                effective.append(row)
                newest = stamp
    return effective


def clamp_limit(limit: int) -> int:
    """1..5000; 0 (proto3's unset) means the default 2000."""
    if limit == 0:
        return LIMIT_DEFAULT
    return max(1, min(LIMIT_MAX, limit))


async def get_timeline(
    db: Database,
    race_id: str,
    *,
    entrant_ids: list[str],
    limit: int,
    cursor_after: int | None,
    created_after: datetime | None,
) -> Timeline:
    """One page of the race's timeline; NotFoundError for an unknown race."""
    require_id(race_id, "race_id")
    if cursor_after is not None and cursor_after < 0:
        raise InvalidArgumentError("cursor_after must be >= 0")
    page_size = clamp_limit(limit)
    async with db.read_connection() as conn:
        cur = await conn.execute(RACE_ENTRANTS_SQL, {"race_id": race_id})
        race = await cur.fetchone()
        if race is None:
            raise NotFoundError("Race not found")
        lower, upper, race_entrants = race
        wanted = {e.strip() for e in entrant_ids if e.strip()}
        selected = [e for e in race_entrants if e in wanted] if wanted else list(race_entrants)
        rows: list[dict[str, Any]] = []
        if selected:
            dict_cur = conn.cursor(row_factory=dict_row)
            await dict_cur.execute(
                LATEST_PER_BUCKET_SQL, {"entrant_ids": selected, "lower": lower, "upper": upper}
            )
            rows = await dict_cur.fetchall()
    documents = [
        row
        for row in effective_latest(rows)
        if (cursor_after is None or row["doc_id"] > cursor_after)
        and (created_after is None or row["created_at"] > created_after)
    ]
    documents.sort(key=lambda r: r["doc_id"])
    page: list[query_pb2.TimelineDocument] = []
    for row in documents[:page_size]:
        values = dict(row)
        values["id"] = values.pop("doc_id")
        doc = query_pb2.TimelineDocument()
        set_fields(doc, values)
        page.append(doc)
    return Timeline(documents=page, entrant_ids=selected)
