"""Where PostgreSQL is: RACEDAY_DATABASE_URL, or an embedded server under the data directory."""

from __future__ import annotations

import logging
import types
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from services.common.config import ConfigError, Env
from services.common.logs import log_event
from services.common.settings import data_dir

logger = logging.getLogger(__name__)

DATABASE_URL_VAR = "RACEDAY_DATABASE_URL"
EMBEDDED_EXTRA = "raceday[embedded]"


def import_pgserver() -> types.ModuleType:
    """The embedded PostgreSQL package (`pgserver`), or a ConfigError saying how to get one.

    It is an optional extra: the container image runs against a configured server and carries no
    PostgreSQL binaries; `make install` (dev) and `make run` install it.
    """
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime directory; without XDG_RUNTIME_DIR (containers,
        # CI, su shells) platformdirs falls back to /tmp/runtime-<uid> and warns. Harmless here.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        try:
            import pgserver
            import pgserver._commands  # the bundled binaries (LocalPostgres runs them directly)
        except ImportError:
            raise ConfigError(
                DATABASE_URL_VAR,
                "is not set and the embedded PostgreSQL is not installed: set it to a postgresql:// URL, "
                f"or install the extra (pip install '{EMBEDDED_EXTRA}', or `make install`)",
            ) from None
    return pgserver  # type: ignore[no-any-return]  # untyped package


def configured_database_url(env: Env | None = None) -> str | None:
    """RACEDAY_DATABASE_URL when set (validated to be a postgres URL), else None."""
    env = env or Env()
    url = env.optional_text(DATABASE_URL_VAR)
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(DATABASE_URL_VAR, "must be a postgresql:// URL")
    return url


def with_database_name(url: str, name: str) -> str:
    """The same server URL pointing at database `name` (query parameters such as host are kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name)))


def database_name(url: str) -> str:
    """The name of the database `url` points at (the inverse of with_database_name)."""
    return unquote(urlsplit(url).path.lstrip("/"))


@contextmanager
def scratch_database(server_url: str, prefix: str, *, template: str | None = None) -> Iterator[str]:
    """A new database on the server (optionally a copy of `template`), as a URL; dropped afterwards.

    For tests and benchmarks that must own their data without touching anyone else's.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(create)
    try:
        yield with_database_name(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def start_embedded_postgres(pgdata: Path, *, cleanup_mode: str | None = "stop") -> str:
    """Start (or reuse) an embedded PostgreSQL whose data lives in `pgdata`; returns its URL.

    The data survives restarts; with cleanup_mode "stop" the server stops when the
    last process using it exits, "delete" also removes the data (for tests).
    """
    pgserver = import_pgserver()  # imported lazily: only needed when no server is configured
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")  # see import_pgserver
        server = pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)
    url = str(server.get_uri())
    log_event(logger, "embedded_postgres_started", pgdata=str(pgdata))
    return url


def database_url(env: Env | None = None) -> str:
    """The configured URL, or the URL of the embedded server under RACEDAY_DATA_DIR/postgres."""
    env = env or Env()
    url = configured_database_url(env)
    if url is not None:
        return url
    return start_embedded_postgres(data_dir(env) / "postgres")
