"""Shared fixtures: a real PostgreSQL, free ports, the recorded TAB fixtures."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from services.common.database import start_embedded_postgres

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL server: RACEDAY_TEST_DATABASE_URL when set, else an embedded one in a temp dir."""
    url = os.environ.get("RACEDAY_TEST_DATABASE_URL", "").strip()
    if url:
        return url
    return start_embedded_postgres(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")


def _with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})


@pytest.fixture
def fresh_database_url(pg_server_url: str) -> Iterator[str]:
    """A new, empty database owned by this test; dropped afterwards."""
    name = f"raceday_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(pg_server_url, name)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
