"""The test PostgreSQL is real and reachable."""

from __future__ import annotations

import psycopg


def test_query_against_the_test_postgres(fresh_database_url: str) -> None:
    with psycopg.connect(fresh_database_url) as conn:
        row = conn.execute(
            "SELECT current_database(), 6 * 7, current_setting('server_version_num')::int"
        ).fetchone()
    assert row is not None
    database, answer, version = row
    assert database.startswith("raceday_test_")
    assert answer == 42
    assert version >= 150000, "the storage spec needs PostgreSQL 15 or later"
