"""Poll cadence tiers and shard ownership."""

from __future__ import annotations

import uuid

import pytest

from services.common.config import ConfigError, Env
from services.fetcher.cadence import poll_tier
from services.fetcher.settings import FetcherSettings
from services.fetcher.shard import Shard


@pytest.mark.parametrize(
    ("status", "tts_s", "tier"),
    [
        ("open", 3600, "60s"),
        ("open", 901, "60s"),
        ("open", 900, "30s"),
        ("open", 301, "30s"),
        ("open", 300, "15s"),
        ("open", 0, "15s"),
        ("open", -240, "15s"),
        ("unknown", 1200, "60s"),
        ("closed", 3600, "15s"),
        ("interim", -600, "15s"),
        ("final", -600, None),
        ("abandoned", 600, None),
    ],
)
def test_poll_tier_follows_status_and_time_to_start(status: str, tts_s: float, tier: str | None) -> None:
    assert poll_tier(status, tts_s) == tier


def test_shards_partition_the_races() -> None:
    race_ids = [str(uuid.UUID(int=n * 7919 + 13)) for n in range(2000)]
    shards = [Shard(i, 3) for i in range(3)]
    owners = [[shard.index for shard in shards if shard.owns(race_id)] for race_id in race_ids]
    assert all(len(owner) == 1 for owner in owners)
    per_shard = [sum(1 for owner in owners if owner == [i]) for i in range(3)]
    assert all(550 < count < 780 for count in per_shard), per_shard
    assert all(Shard(0, 1).owns(race_id) for race_id in race_ids)


@pytest.mark.parametrize("text", ["2", "2/2", "-1/2", "a/b", "1/0", "0/2/3"])
def test_bad_shard_settings_name_the_variable(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        FetcherSettings.from_env(Env({"RACEDAY_FETCHER_SHARD": text}))
    assert error.value.name == "RACEDAY_FETCHER_SHARD"


def test_lookahead_must_cover_the_sixty_minute_bucket() -> None:
    with pytest.raises(ConfigError, match="SCHED_LOOKAHEAD_MIN"):
        FetcherSettings.from_env(Env({"SCHED_LOOKAHEAD_MIN": "60"}))
    assert FetcherSettings.from_env(Env({})).lookahead_min == 90


def test_day_jobs_run_on_shard_zero_only() -> None:
    assert FetcherSettings.from_env(Env({"RACEDAY_FETCHER_SHARD": "0/2"})).day_jobs_enabled
    assert not FetcherSettings.from_env(Env({"RACEDAY_FETCHER_SHARD": "1/2"})).day_jobs_enabled


def test_no_job_in_the_daylight_saving_hour() -> None:
    with pytest.raises(ConfigError, match="BASELINE_AT"):
        FetcherSettings.from_env(Env({"BASELINE_AT": "02:30"}))


@pytest.mark.parametrize(
    ("now_utc", "job", "at_utc"),
    [
        # 05:59 NZST on 2025-07-17 -> baseline at 06:00 NZST (18:00 UTC the day before).
        ("2025-07-16T17:59:00+00:00", "baseline", "2025-07-16T18:00:00+00:00"),
        # DST starts 2025-09-28 (NZDT +13): 06:00 NZ is 17:00 UTC on the 27th.
        ("2025-09-27T16:00:00+00:00", "baseline", "2025-09-27T17:00:00+00:00"),
        # DST ends 2026-04-05 (back to NZST +12): 06:00 NZ is 18:00 UTC on the 4th.
        ("2026-04-04T17:30:00+00:00", "baseline", "2026-04-04T18:00:00+00:00"),
        # After the baseline, the first refresh is at 06:30 NZ.
        ("2025-07-16T18:00:00+00:00", "refresh", "2025-07-16T18:30:00+00:00"),
    ],
)
def test_day_jobs_follow_nz_wall_clock_times(now_utc: str, job: str, at_utc: str) -> None:
    from datetime import datetime

    from services.fetcher.day_jobs import next_job

    settings = FetcherSettings.from_env(Env({}))
    next_name, at, _ = next_job(datetime.fromisoformat(now_utc), settings)
    assert (next_name, at.isoformat()) == (job, at_utc)
