"""Shared fixtures: a real PostgreSQL, free ports, the recorded TAB fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
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
def pg_server_url() -> Iterator[str]:
    """A PostgreSQL server: RACEDAY_TEST_DATABASE_URL when set, else an embedded one in a temp dir."""
    url = os.environ.get("RACEDAY_TEST_DATABASE_URL", "").strip()
    if url:
        yield url
        return
    # Run as root, the embedded server drops to its own user, which must reach the data directory:
    # pytest's temp root is private (0700), so use a traversable directory of our own.
    scratch = Path(tempfile.mkdtemp(prefix="raceday-test-pg-"))
    scratch.chmod(0o755)
    try:
        yield start_embedded_postgres(scratch / "data", cleanup_mode="delete")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
