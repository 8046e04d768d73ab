"""The writer's settings, read and validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from services.common.config import Env

DEFAULT_WRITE_POOL_SIZE = 7  # the fetcher's default 6 concurrent polls, plus one (storage §6.6)
DEFAULT_READ_POOL_SIZE = 5


def parse_nz_clock(value: str) -> time:
    """An HH:MM wall-clock time for a daily NZ job; 02:00-02:59 is refused (DST gap, scheduling §10)."""
    hours, sep, minutes = value.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"must be HH:MM, got {value!r}")
    hour, minute = int(hours), int(minutes)
    if hour > 23 or minute > 59:
        raise ValueError(f"must be a time of day HH:MM, got {value!r}")
    if hour == 2:
        raise ValueError("no job may run between 02:00 and 03:00 NZ (daylight-saving changes)")
    return time(hour, minute)


@dataclass(frozen=True, slots=True)
class WriterSettings:
    """Database pools, timeouts, migrations and partition maintenance."""

    write_pool_size: int = DEFAULT_WRITE_POOL_SIZE
    read_pool_size: int = DEFAULT_READ_POOL_SIZE
    acquire_timeout_s: float = 2.0
    statement_timeout_ms: int = 5000
    lock_timeout_ms: int = 2000
    idle_in_transaction_timeout_ms: int = 30_000
    retention_days: int = 30
    # NZ days of the raw-payload archive kept, independent of the series' retention.
    archive_retention_days: int = 90
    maintenance_at: time = time(4, 0)
    migrate_on_start: bool = True
    application_name: str = "raceday-writer"

    @classmethod
    def from_env(cls, env: Env | None = None) -> WriterSettings:
        """Read every writer variable (raises ConfigError naming a bad one)."""
        env = env or Env()
        return cls(
            write_pool_size=env.integer(
                "RACEDAY_DB_WRITE_POOL_SIZE", DEFAULT_WRITE_POOL_SIZE, minimum=1, maximum=200
            ),
            read_pool_size=env.integer(
                "RACEDAY_DB_READ_POOL_SIZE", DEFAULT_READ_POOL_SIZE, minimum=1, maximum=200
            ),
            acquire_timeout_s=env.number("RACEDAY_DB_ACQUIRE_TIMEOUT_S", 2.0, minimum=0.05, maximum=60.0),
            statement_timeout_ms=env.integer(
                "RACEDAY_DB_STATEMENT_TIMEOUT_MS", 5000, minimum=1, maximum=600_000
            ),
            lock_timeout_ms=env.integer("RACEDAY_DB_LOCK_TIMEOUT_MS", 2000, minimum=1, maximum=600_000),
            idle_in_transaction_timeout_ms=env.integer(
                "RACEDAY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 30_000, minimum=0, maximum=3_600_000
            ),
            retention_days=env.integer("RETENTION_DAYS", 30, minimum=1, maximum=3650),
            archive_retention_days=env.integer("ARCHIVE_RETENTION_DAYS", 90, minimum=1, maximum=3650),
            maintenance_at=env.parsed("PARTITION_MAINTENANCE_AT", time(4, 0), parse_nz_clock),
            migrate_on_start=env.flag("RACEDAY_WRITER_MIGRATE_ON_START", True),
        )
