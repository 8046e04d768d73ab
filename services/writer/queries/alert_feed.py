"""The alerts feed (issue 14): stored race_alerts rows, newest first, for GET /api/alerts and the
gateway's live push.

Rows are served unclassified: each user's indicator ranges classify them in the gateway, so one
stored row serves every user. The page is chosen on race_alerts alone (its filters, alert_id
descending, the limit) and only then joined to its race, meeting and runner, so the joins cost
`limit` primary-key lookups whatever the day's volume.

Which index serves the page depends on the filters given, so the WHERE clause holds only those:
- `since` (the feed's day window): race_alerts_polled_at_idx, a range scan of the window; the
  window's rows are then ordered by alert_id (a top-N sort over one day's alerts);
- `race_id`: the unique (race_id, entrant_id, kind, time_interval) index;
- `after_id` alone (the live push: what was stored after the last alert seen): the primary key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from psycopg.rows import dict_row

from services.common.proto.raceday.v1 import query_pb2
from services.writer.convert import set_fields
from services.writer.db import Database
from services.writer.errors import InvalidArgumentError

LIMIT_DEFAULT: Final = 100
LIMIT_MAX: Final = 500

# Each filter's clause, included only when the filter is given (see the module docstring).
_FILTERS: Final = (
    ("since", "a.polled_at >= %(since)s"),
    ("race_id", "a.race_id = %(race_id)s"),
    ("cursor", "a.alert_id < %(cursor)s"),
    ("after_id", "a.alert_id > %(after_id)s"),
)

_PAGE_SQL: Final = """
WITH page AS (
    SELECT a.alert_id, a.race_id, a.entrant_id, a.kind, a.time_interval, a.previous_interval,
           a.value, a.polled_at, a.created_at
    FROM race_alerts a
    {where}
    ORDER BY a.alert_id DESC
    LIMIT %(limit)s
)
SELECT p.alert_id, p.race_id, r.name AS race_name, r.race_number, r.meeting_id, m.meeting_name,
       p.entrant_id, e.runner_number, e.name AS runner_name, p.kind, p.time_interval,
       p.previous_interval, p.value, p.polled_at, p.created_at
FROM page p
JOIN races r ON r.race_id = p.race_id
JOIN meetings m ON m.meeting_id = r.meeting_id
JOIN entrants e ON e.entrant_id = p.entrant_id
ORDER BY p.alert_id DESC
"""


def clamp_limit(limit: int) -> int:
    """1..500; 0 (proto3's unset) means the default 100."""
    if limit == 0:
        return LIMIT_DEFAULT
    return max(1, min(LIMIT_MAX, limit))


def list_alerts_sql(*given: str) -> str:
    """The page query with the clauses of the filters named in `given`."""
    clauses = [clause for name, clause in _FILTERS if name in given]
    where = "WHERE " + " AND ".join(clauses) if clauses else ""
    return _PAGE_SQL.format(where=where)


async def list_alerts(
    db: Database,
    *,
    since: datetime | None,
    race_id: str | None,
    cursor: int | None,
    after_id: int | None,
    limit: int,
) -> list[query_pb2.RaceAlert]:
    """One page of alerts, newest first."""
    if race_id is not None and not race_id:
        raise InvalidArgumentError("race_id must not be empty")
    params: dict[str, Any] = {
        "since": since,
        "race_id": race_id,
        "cursor": cursor,
        "after_id": after_id,
        "limit": clamp_limit(limit),
    }
    given = [name for name, value in params.items() if value is not None and name != "limit"]
    async with db.read_connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(list_alerts_sql(*given), params)
        rows = await cur.fetchall()
    alerts: list[query_pb2.RaceAlert] = []
    for row in rows:
        alert = query_pb2.RaceAlert()
        set_fields(alert, row)
        alerts.append(alert)
    return alerts
