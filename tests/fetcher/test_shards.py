"""Two fetcher shards against one simulated TAB, writer and transformer poll every race exactly once."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import grpc

from services.common.clock import Clock, real_now_ms
from services.common.config import Env
from services.common.health import wait_serving
from services.common.nztime import from_epoch_ms, nz_date
from services.common.proto.raceday.v1 import writer_pb2, writer_pb2_grpc
from services.common.timestamps import timestamp_from_ms
from services.fetcher.meetings import meeting_with_races
from services.fetcher.tab_client import TabClient
from services.fetcher.tab_results import FetchFailure
from services.fetcher.tab_settings import TabSettings
from services.tabsim.config import TabSimConfig
from services.tabsim.server import run_tabsim
from tests.conftest import free_port
from tests.e2e.stack import Process, start_process

SPEED = 20.0
EVENT_ROUTE = "events"
# Polls of each race observed before judging that no second shard polls it.
REPEATED_POLLS = 3
# Simulated minutes to the start beyond which a race surely stays scheduled while the test watches.
STAYS_SCHEDULED_MIN = 30


async def test_two_shards_poll_every_race_exactly_once(fresh_database_url: str, tmp_path: Path) -> None:
    clock = Clock(speed=SPEED, anchor_ms=real_now_ms())
    config = TabSimConfig(port=0, speed=SPEED, clock_anchor_ns=clock.anchor_ms * 1_000_000)
    processes: list[Process] = []
    async with run_tabsim(config) as tabsim:
        try:
            ports = {"writer": free_port(), "transformer": free_port()}
            common = {
                "RACEDAY_DATABASE_URL": fresh_database_url,
                "RACEDAY_WRITER_ADDR": f"127.0.0.1:{ports['writer']}",
                "RACEDAY_TRANSFORMER_ADDR": f"127.0.0.1:{ports['transformer']}",
                "NZTAB_BASE_URL": tabsim.url,
                "NZTAB_FROM": "shards@example.co.nz",
                "NZTAB_PARTNER": "Raceday shard test",
                **clock.env(),
            }
            for service, port in ports.items():
                env = {
                    **common,
                    f"RACEDAY_{service.upper()}_PORT": str(port),
                    f"RACEDAY_{service.upper()}_METRICS_PORT": str(free_port()),
                }
                processes.append(start_process(["serve", service], env, tmp_path / f"{service}.log"))
                await wait_serving(f"127.0.0.1:{port}", timeout_s=30, interval_s=0.1)

            # Seed the day's races (the baseline's first step) so both shards see the same candidates.
            tab_env = Env({**common, "NZTAB_PARTNER_ID": "seeder"})
            async with TabClient(TabSettings.from_env(tab_env)) as tab:
                fetched = await tab.fetch_meetings(nz_date(from_epoch_ms(clock.now_ms())))
            assert not isinstance(fetched, FetchFailure), fetched
            request = writer_pb2.UpsertMeetingsRequest()
            for item in fetched.meetings:
                converted = meeting_with_races(item)
                assert converted is not None
                request.meetings.append(converted)
            async with grpc.aio.insecure_channel(common["RACEDAY_WRITER_ADDR"]) as channel:
                writer = writer_pb2_grpc.WriterServiceStub(channel)
                await writer.UpsertMeetings(request, timeout=10)
                schedulable = await writer.ListSchedulableRaces(
                    writer_pb2.ListSchedulableRacesRequest(
                        lookahead_minutes=90,
                        post_start_max_minutes=120,
                        now=timestamp_from_ms(clock.now_ms()),
                    ),
                    timeout=10,
                )
            candidates = {race.race_id for race in schedulable.races}
            assert len(candidates) >= 4
            # A race near its start may go Final (or be abandoned) after one poll and never be polled
            # again; the races starting later stay on the schedule for the whole observation.
            later = clock.now_ms() + STAYS_SCHEDULED_MIN * 60_000
            repeated = {race.race_id for race in schedulable.races if race.start_time_ms > later}
            assert len(repeated) >= 2

            for shard in range(2):
                env = {
                    **common,
                    "NZTAB_PARTNER_ID": f"shard-{shard}",
                    "RACEDAY_FETCHER_SHARD": f"{shard}/2",
                    "RACEDAY_FETCHER_DAY_JOBS_ENABLED": "false",
                    "RACEDAY_FETCHER_PORT": str(free_port()),
                    "RACEDAY_FETCHER_METRICS_PORT": str(free_port()),
                }
                processes.append(start_process(["serve", "fetcher"], env, tmp_path / f"fetcher-{shard}.log"))

            # Every successful event request the simulator saw, by sequence number (its log is a ring).
            seen: dict[int, tuple[str, str]] = {}

            def observe() -> None:
                for entry in tabsim.state.log.to_json(route=EVENT_ROUTE)["requests"]:
                    if entry["race_id"] and entry["status"] == 200:
                        seen[entry["seq"]] = (entry["race_id"], str(entry["headers"].get("x-partner-id")))

            def polls_of(race_id: str) -> int:
                return sum(1 for race, _ in seen.values() if race == race_id)

            # Every race polled, and several polls of the races that stay scheduled, so a second shard
            # had every chance to join in.
            for _ in range(1200):
                observe()
                if {race for race, _ in seen.values()} >= candidates and all(
                    polls_of(race) >= REPEATED_POLLS for race in repeated
                ):
                    break
                await asyncio.sleep(0.1)
            pollers: dict[str, set[str]] = defaultdict(set)
            for race, partner in seen.values():
                pollers[race].add(partner)
        finally:
            for process in reversed(processes):
                process.stop()

    assert candidates <= set(pollers), f"never polled: {candidates - set(pollers)}"
    assert all(polls_of(race) >= REPEATED_POLLS for race in repeated), "too few polls to judge"
    assert all(len(by) == 1 for by in pollers.values()), {
        race: by for race, by in pollers.items() if len(by) > 1
    }
    by_shard = {next(iter(by)) for by in pollers.values()}
    assert by_shard == {"shard-0", "shard-1"}
