"""What a run stored, read back: committed polls, duplicate rows, the Σ-increments invariant.

The end-to-end tests and `raceday soak` judge a run by these; they read the writer's tables
directly (the writer is the only service that writes them).
"""

from __future__ import annotations

from collections import defaultdict

import psycopg
from psycopg import sql

# Rows are (win_pool_amount, place_pool_amount, incremental_win, incremental_place, is_baseline).
EffectiveRow = tuple[int, int, int, int, bool]


POLL_TABLES = ("race_polls", "archive_polls")


def stored_polls(database_url: str, table: str = "race_polls") -> set[tuple[str, int]]:
    """(race, poll time in ms) of every committed poll (or, with `archive_polls`, every archived one)."""
    if table not in POLL_TABLES:
        raise ValueError(f"not a table of polls: {table}")
    query = sql.SQL("SELECT race_id, (extract(epoch FROM polled_at) * 1000)::bigint FROM {}").format(
        sql.Identifier(table)
    )
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(query)
        return {(race, int(ms)) for race, ms in rows.fetchall()}


def effective_rows(database_url: str) -> dict[str, list[EffectiveRow]]:
    """Per entrant, the latest poll of each effective bucket (money-flow.md §7.1), highest bucket first."""
    query = """
        SELECT DISTINCT ON (entrant_id, time_interval)
               entrant_id, time_interval, event_timestamp, id, win_pool_amount, place_pool_amount,
               incremental_win_amount, incremental_place_amount, is_baseline
        FROM money_flow_history
        ORDER BY entrant_id, time_interval, event_timestamp DESC, id DESC
    """
    latest: dict[str, list[tuple[int, float, int, EffectiveRow]]] = defaultdict(list)
    with psycopg.connect(database_url) as conn:
        for entrant, bucket, stamp, row_id, win, place, inc_win, inc_place, baseline in conn.execute(query):
            latest[entrant].append(
                (bucket, stamp.timestamp(), row_id, (win, place, inc_win, inc_place, baseline))
            )
    effective: dict[str, list[EffectiveRow]] = {}
    for entrant, rows in latest.items():
        chosen = []
        newest = (float("-inf"), -1)
        for _bucket, stamp, row_id, values in sorted(rows, key=lambda r: -r[0]):
            if (stamp, row_id) > newest:
                chosen.append(values)
                newest = (stamp, row_id)
        effective[entrant] = chosen
    return effective


def invariant_violations(effective: dict[str, list[EffectiveRow]]) -> list[str]:
    """Entrants whose increments over their effective buckets do not sum to their latest amounts
    (money-flow.md §7.3)."""
    violations = []
    for entrant, rows in effective.items():
        latest = rows[-1]
        if sum(r[2] for r in rows) != latest[0] or sum(r[3] for r in rows) != latest[1]:
            violations.append(entrant)
    return violations


def increment_invariant_violations(database_url: str) -> list[str]:
    """`invariant_violations` of everything stored."""
    return invariant_violations(effective_rows(database_url))


def baselines_per_entrant(database_url: str) -> set[int]:
    """How many of each entrant's effective buckets are baselines (exactly one when state was kept)."""
    return {sum(1 for row in rows if row[4]) for rows in effective_rows(database_url).values()}


def duplicate_poll_rows(database_url: str) -> int:
    """Money-flow and odds rows written twice for the same entrant and poll."""
    with psycopg.connect(database_url) as conn:
        money = conn.execute(
            "SELECT count(*) FROM (SELECT entrant_id, event_timestamp FROM money_flow_history "
            "GROUP BY 1, 2 HAVING count(*) > 1) d"
        ).fetchone()
        odds = conn.execute(
            "SELECT count(*) FROM (SELECT entrant_id, type, event_timestamp FROM odds_history "
            "GROUP BY 1, 2, 3 HAVING count(*) > 1) d"
        ).fetchone()
    assert money is not None and odds is not None
    return int(money[0]) + int(odds[0])
