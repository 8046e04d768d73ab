"""Versioned SQL migrations (storage §7): applied in order under an advisory lock, with checksums.

Files are `migrations/NNNN_name.sql`. Each pending file runs in its own transaction
together with its `schema_migrations` row; an applied file whose checksum changed is an
error (applied migrations are never edited). Running twice is a no-op.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

from services.common.logs import log_event

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_lock key reserved for migrations ("RDMIGRAT" as 8 bytes).
MIGRATION_LOCK_KEY = int.from_bytes(b"RDMIGRAT", "big") & 0x7FFF_FFFF_FFFF_FFFF
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TRACKING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The migrations cannot be applied safely (checksum mismatch, bad file names, ...)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str
    checksum: str


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What a run found and did."""

    applied: tuple[tuple[Migration, float], ...]
    already_applied: tuple[int, ...]
    unknown_applied: tuple[int, ...]

    @property
    def version(self) -> int:
        """The highest version now applied (0 for an empty schema)."""
        versions = (
            [m.version for m, _ in self.applied] + list(self.already_applied) + list(self.unknown_applied)
        )
        return max(versions, default=0)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file in version order; refuses stray names and duplicate versions."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file name must be NNNN_name.sql: {path.name}")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"two migration files share version {version}")
        data = path.read_bytes()
        migrations[version] = Migration(
            version=version,
            name=match.group(2),
            sql=data.decode("utf-8"),
            checksum=hashlib.sha256(data).hexdigest(),
        )
    return [migrations[v] for v in sorted(migrations)]


async def applied_versions(conn: AsyncConnection[Any]) -> dict[int, str]:
    """version -> checksum of every applied migration ({} when the tracking table is missing)."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    if row is None or not row[0]:
        return {}
    cur = await conn.execute("SELECT version, checksum FROM schema_migrations")
    return {int(version): str(checksum) for version, checksum in await cur.fetchall()}


async def apply_migrations(
    conn: AsyncConnection[Any], migrations: list[Migration] | None = None
) -> MigrationReport:
    """Apply every pending migration on an autocommit connection; concurrent runners wait."""
    if not conn.autocommit:
        raise MigrationError("apply_migrations needs an autocommit connection")
    migrations = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    try:
        await conn.execute(_CREATE_TRACKING)
        applied = await applied_versions(conn)
        known = {m.version: m for m in migrations}
        for version, checksum in sorted(applied.items()):
            migration = known.get(version)
            if migration is not None and migration.checksum != checksum:
                raise MigrationError(
                    f"migration {version:04d}_{migration.name} was edited after it was applied "
                    "(checksum mismatch); add a new migration instead"
                )
        unknown = tuple(v for v in sorted(applied) if v not in known)
        if unknown:
            log_event(logger, "migrations_unknown_applied", logging.WARNING, versions=list(unknown))
        done: list[tuple[Migration, float]] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute(migration.sql.encode("utf-8"))
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            elapsed = time.perf_counter() - started
            done.append((migration, elapsed))
            log_event(
                logger,
                "migration_applied",
                version=migration.version,
                migration=migration.name,
                ms=round(elapsed * 1000, 1),
            )
        return MigrationReport(
            applied=tuple(done),
            already_applied=tuple(v for v in sorted(applied) if v in known),
            unknown_applied=unknown,
        )
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


async def pending_migrations(
    conn: AsyncConnection[Any], migrations: list[Migration] | None = None
) -> list[Migration]:
    """Migrations not yet applied (for a writer that does not migrate at start-up)."""
    migrations = load_migrations() if migrations is None else migrations
    applied = await applied_versions(conn)
    return [m for m in migrations if m.version not in applied]
