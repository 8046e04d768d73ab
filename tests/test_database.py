"""The test PostgreSQL is real and reachable."""

from __future__ import annotations

import psycopg

from services.common.database import database_name


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


def test_a_scratch_database_url_names_the_database_it_connects_to(fresh_database_url: str) -> None:
    # What benchmarks and fixtures use to find a scratch database's backends and clone it.
    with psycopg.connect(fresh_database_url) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    assert database_name(fresh_database_url) == row[0]
