"""Connections: a write pool, a read pool and one dedicated maintenance connection (storage §6.6).

Every connection runs with TimeZone=UTC, the writer's application_name and an
idle-in-transaction timeout. Acquisition is bounded by a timeout; waits and
exhaustion are exported as metrics.

When the server is lost (a connection refused or broken), the database is marked down: every
acquisition then fails at once with DatabaseUnavailableError instead of waiting for the pool,
until a probe connects again (every PROBE_EVERY_S), so callers fail fast through an outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from services.common.logs import log_event
from services.writer import metrics
from services.writer.settings import WriterSettings

logger = logging.getLogger(__name__)

MAINTENANCE_LOCK_TIMEOUT_MS = 3000
# How often a lost database is probed, and how long one probe may take to connect.
PROBE_EVERY_S = 0.5
PROBE_CONNECT_TIMEOUT_S = 2


class DatabaseUnavailableError(Exception):
    """No connection could be obtained in time (pool exhausted or server unreachable)."""


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    info = conninfo_to_dict(url)
    info["dbname"] = dbname
    return make_conninfo(**{key: str(value) for key, value in info.items() if value is not None})


def connection_kwargs(
    url: str,
    settings: WriterSettings,
    *,
    lock_timeout_ms: int | None = None,
    statement_timeout_ms: int | None = None,
) -> dict[str, Any]:
    """Session settings every writer connection gets, merged with options already in the URL."""
    existing = conninfo_to_dict(url).get("options")
    options = [str(existing)] if existing else []
    options.append("-c TimeZone=UTC")
    options.append(f"-c idle_in_transaction_session_timeout={settings.idle_in_transaction_timeout_ms}")
    if lock_timeout_ms is not None:
        options.append(f"-c lock_timeout={lock_timeout_ms}")
    if statement_timeout_ms is not None:
        options.append(f"-c statement_timeout={statement_timeout_ms}")
    return {"application_name": settings.application_name, "options": " ".join(options)}


async def connect(
    url: str, settings: WriterSettings, *, lock_timeout_ms: int | None = None
) -> AsyncConnection[Any]:
    """One autocommit connection with the writer's session settings (migrations, maintenance, CLI)."""
    return await AsyncConnection.connect(
        url, autocommit=True, **connection_kwargs(url, settings, lock_timeout_ms=lock_timeout_ms)
    )


class Database:
    """The writer's pools and its maintenance connection.

    Created before the server starts (servicers hold it), bound to a URL and opened in
    the app's start-up; until then every acquisition raises DatabaseUnavailableError.
    """

    def __init__(self, settings: WriterSettings, url: str | None = None) -> None:
        self.settings = settings
        self._url = url
        self._write_pool: AsyncConnectionPool[Any] | None = None
        self._read_pool: AsyncConnectionPool[Any] | None = None
        self._maintenance: AsyncConnection[Any] | None = None
        self._maintenance_lock = asyncio.Lock()
        self._probe: asyncio.Task[None] | None = None

    @property
    def down(self) -> bool:
        """True from a lost connection until a probe connects again."""
        return self._probe is not None and not self._probe.done()

    def _mark_down(self) -> None:
        if self.down:
            return
        metrics.DATABASE_UP.set(0)
        log_event(logger, "database_lost", logging.WARNING)
        self._probe = asyncio.create_task(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        while True:
            await asyncio.sleep(PROBE_EVERY_S)
            try:
                conn = await AsyncConnection.connect(self.url, connect_timeout=PROBE_CONNECT_TIMEOUT_S)
            except psycopg.Error:
                continue
            await conn.close()
            metrics.DATABASE_UP.set(1)
            log_event(logger, "database_back")
            return

    @property
    def url(self) -> str:
        """The database URL (DatabaseUnavailableError before `bind`)."""
        if self._url is None:
            raise DatabaseUnavailableError("database not configured yet")
        return self._url

    def bind(self, url: str) -> None:
        """Set the URL (start-up resolves it, possibly starting the embedded server)."""
        self._url = url

    async def open(self, url: str | None = None, timeout_s: float = 30.0) -> None:
        """Open both pools and wait until their minimum connections exist."""
        if url is not None:
            self.bind(url)
        # Pooled sessions get the statement timeout too (reads for the gateway must not run away);
        # migrations and partition maintenance use their own connections without it.
        session = connection_kwargs(
            self.url, self.settings, statement_timeout_ms=self.settings.statement_timeout_ms
        )
        # Autocommit everywhere: a race write is one statement, its own transaction (no BEGIN
        # or COMMIT round trip); multi-statement writes open `conn.transaction()` explicitly,
        # and nothing idles in a transaction between uses.
        write_pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.url,
            min_size=min(2, self.settings.write_pool_size),
            max_size=self.settings.write_pool_size,
            kwargs={"autocommit": True, **session},
            name="write",
            timeout=self.settings.acquire_timeout_s,
            open=False,
        )
        read_pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.settings.read_pool_size,
            kwargs={"autocommit": True, **session},
            name="read",
            timeout=self.settings.acquire_timeout_s,
            open=False,
        )
        try:
            await write_pool.open(wait=True, timeout=timeout_s)
            await read_pool.open(wait=True, timeout=timeout_s)
        except BaseException:
            await write_pool.close()
            await read_pool.close()
            raise
        self._write_pool, self._read_pool = write_pool, read_pool

    async def close(self) -> None:
        """Close the pools and the maintenance connection."""
        if self._probe is not None:
            self._probe.cancel()
        for pool in (self._write_pool, self._read_pool):
            if pool is not None:
                await pool.close()
        self._write_pool = self._read_pool = None
        if self._maintenance is not None:
            await self._maintenance.close()
            self._maintenance = None

    @asynccontextmanager
    async def write_connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection from the write pool (one per race write)."""
        async with self._borrow(self._write_pool, "write") as conn:
            yield conn

    @asynccontextmanager
    async def read_connection(self, timeout_s: float | None = None) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection from the read pool (state lookups and gateway queries)."""
        async with self._borrow(self._read_pool, "read", timeout_s) as conn:
            yield conn

    @asynccontextmanager
    async def maintenance_connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """The dedicated maintenance connection, one user at a time; reconnects when broken."""
        async with self._maintenance_lock:
            if self._maintenance is None or self._maintenance.closed or self._maintenance.broken:
                self._maintenance = await connect(
                    self.url, self.settings, lock_timeout_ms=MAINTENANCE_LOCK_TIMEOUT_MS
                )
            yield self._maintenance

    @asynccontextmanager
    async def _borrow(
        self, pool: AsyncConnectionPool[Any] | None, name: str, timeout_s: float | None = None
    ) -> AsyncIterator[AsyncConnection[Any]]:
        if pool is None:
            raise DatabaseUnavailableError("database not open yet")
        if self.down:
            raise DatabaseUnavailableError("database unreachable (probing)")
        started = time.perf_counter()
        try:
            async with pool.connection(timeout=timeout_s) as conn:
                metrics.POOL_WAIT_SECONDS.labels(name).observe(time.perf_counter() - started)
                gauge = metrics.POOL_IN_USE.labels(name)
                gauge.inc()
                try:
                    yield conn
                finally:
                    gauge.dec()
        except PoolTimeout as exc:
            metrics.POOL_EXHAUSTED.labels(name).inc()
            log_event(
                logger,
                "db_pool_exhausted",
                logging.WARNING,
                pool=name,
                waited_s=round(time.perf_counter() - started, 3),
            )
            raise DatabaseUnavailableError(f"no {name} connection available") from exc
        except psycopg.OperationalError as exc:
            if not conn_error_is_server_side(exc):
                raise
            self._mark_down()
            raise DatabaseUnavailableError(f"database unavailable: {type(exc).__name__}") from exc


def conn_error_is_server_side(exc: psycopg.OperationalError) -> bool:
    """True for lost or refused connections (as opposed to errors such as a statement timeout)."""
    sqlstate = exc.sqlstate or ""
    return sqlstate == "" or sqlstate.startswith("08") or sqlstate.startswith("57P")
