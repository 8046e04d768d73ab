"""The fetcher's settings: scheduling, day-level jobs, sharding and stage deadlines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from pathlib import Path

from services.common.config import ConfigError, Env
from services.common.settings import data_dir
from services.fetcher.shard import Shard


def _parse_hh_mm(value: str) -> time:
    try:
        hour, minute = (int(part, 10) for part in value.split(":"))
        return time(hour, minute)
    except ValueError:
        raise ValueError(f"must be HH:MM, got {value!r}") from None


def _check_not_in_dst_gap(name: str, at: time) -> time:
    # Nothing is scheduled between 02:00 and 03:00 NZ: that hour is skipped or doubled on DST days.
    if at.hour == 2:
        raise ConfigError(name, "must not be between 02:00 and 03:00 NZ (daylight-saving changes)")
    return at


@dataclass(frozen=True, slots=True)
class FetcherSettings:
    """Scheduling settings (spec/scheduling.md §12) and pipeline deadlines."""

    lookahead_min: int
    post_start_max_min: int
    evaluate_every_s: float
    max_concurrent_polls: int
    shard: Shard
    scheduler_enabled: bool
    day_jobs_enabled: bool
    baseline_at: time
    meetings_refresh_every_min: int
    evening_backfill_enabled: bool
    evening_backfill_at: time
    transform_deadline_s: float
    write_deadline_s: float
    state_deadline_s: float
    spool_dir: Path
    spool_max_bytes: int
    spool_max_age_s: int
    cache_align: bool
    cache_align_margin_s: float

    @classmethod
    def from_env(cls, env: Env | None = None) -> FetcherSettings:
        """Read and validate the fetcher's variables."""
        env = env or Env()
        shard = env.parsed("RACEDAY_FETCHER_SHARD", Shard(0, 1), Shard.parse)
        return cls(
            lookahead_min=env.integer("SCHED_LOOKAHEAD_MIN", 90, minimum=65, maximum=24 * 60),
            post_start_max_min=env.integer("SCHED_POST_START_MAX_MIN", 120, minimum=5, maximum=24 * 60),
            evaluate_every_s=env.number("SCHED_EVALUATE_EVERY_S", 60.0, minimum=0.1, maximum=3600.0),
            max_concurrent_polls=env.integer("SCHED_MAX_CONCURRENT_POLLS", 6, minimum=1, maximum=256),
            shard=shard,
            scheduler_enabled=env.flag("RACEDAY_FETCHER_SCHEDULER_ENABLED", True),
            # Day-level jobs run on exactly one replica: shard 0.
            day_jobs_enabled=env.flag("RACEDAY_FETCHER_DAY_JOBS_ENABLED", shard.index == 0),
            baseline_at=_check_not_in_dst_gap(
                "BASELINE_AT", env.parsed("BASELINE_AT", time(6, 0), _parse_hh_mm)
            ),
            meetings_refresh_every_min=env.integer(
                "MEETINGS_REFRESH_EVERY_MIN", 30, minimum=0, maximum=24 * 60
            ),
            evening_backfill_enabled=env.flag("EVENING_BACKFILL_ENABLED", False),
            evening_backfill_at=_check_not_in_dst_gap(
                "EVENING_BACKFILL_AT", env.parsed("EVENING_BACKFILL_AT", time(21, 0), _parse_hh_mm)
            ),
            transform_deadline_s=env.number("RACEDAY_TRANSFORM_DEADLINE_S", 2.0, minimum=0.05, maximum=60.0),
            write_deadline_s=env.number("RACEDAY_WRITE_DEADLINE_S", 5.0, minimum=0.05, maximum=60.0),
            state_deadline_s=env.number("RACEDAY_STATE_DEADLINE_S", 2.0, minimum=0.05, maximum=60.0),
            # Each shard its own spool: a restarted replica of the same shard finds its polls.
            spool_dir=Path(
                env.text("RACEDAY_SPOOL_DIR", str(data_dir(env) / "spool" / f"shard-{shard.index}"))
            ),
            spool_max_bytes=env.integer("RACEDAY_SPOOL_MAX_MB", 512, minimum=1, maximum=1024 * 1024) * 2**20,
            spool_max_age_s=env.integer("RACEDAY_SPOOL_MAX_AGE_MIN", 360, minimum=1, maximum=7 * 24 * 60)
            * 60,
            cache_align=env.flag("RACEDAY_CACHE_ALIGN", True),
            cache_align_margin_s=env.number("RACEDAY_CACHE_ALIGN_MARGIN_S", 1.0, minimum=0.0, maximum=10.0),
        )
