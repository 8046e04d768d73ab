"""Shared fixtures: a real PostgreSQL, free ports, the recorded TAB fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.database import scratch_database, start_embedded_postgres
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
    with scratch_database(pg_server_url, "raceday_test") as url:
        yield url
