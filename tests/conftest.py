"""Shared fixtures: a real PostgreSQL, free ports, the recorded TAB fixtures."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from services.common.database import start_embedded_postgres, with_database_name
from services.common.net import free_port

FIXTURES = Path(__file__).parent / "fixtures"

__all__ = ["FIXTURES", "free_port"]


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL server: RACEDAY_TEST_DATABASE_URL when set, else an embedded one in a temp dir."""
    url = os.environ.get("RACEDAY_TEST_DATABASE_URL", "").strip()
    if url:
        return url
    return start_embedded_postgres(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")


@pytest.fixture
def fresh_database_url(pg_server_url: str) -> Iterator[str]:
    """A new, empty database owned by this test; dropped afterwards."""
    name = f"raceday_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database_name(pg_server_url, name)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
