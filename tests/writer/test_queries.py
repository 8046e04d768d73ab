"""Every read RPC of QueryService with known data, through a real gRPC server on loopback."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.nztime import nz_date, to_epoch_ms
from services.common.proto.raceday.v1 import query_pb2, race_pb2, writer_pb2
from services.common.timestamps import timestamp_from_ms
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from services.writer.synthetic import SyntheticRace
from tests.writer.builder import ensure, poll, scalar, write
from tests.writer.conftest import Stubs

T0 = datetime(2025, 7, 17, 0, 0, tzinfo=UTC)  # 12:00 NZST on 2025-07-17


def ts(instant: datetime) -> Timestamp:
    return timestamp_from_ms(to_epoch_ms(instant))


def _summary(race_id: str, number: int, status: str, start: datetime, **extra: object) -> race_pb2.Race:
    race = race_pb2.Race(
        race_id=race_id,
        race_number=number,
        name=f"Race {race_id}",
        status=status,
        race_date_nz=nz_date(start).isoformat(),
        start_time=ts(start),
        field_size=9,
    )
    for key, value in extra.items():
        setattr(race, key, value)
    return race


def _meeting(meeting_id: str, name: str, day: str, country: str, category: str) -> race_pb2.Meeting:
    return race_pb2.Meeting(
        meeting_id=meeting_id,
        meeting_name=name,
        date=day,
        country=country,
        category=category,
        tote_status="open",
        weather="Fine",
    )


@dataclass
class Seeded:
    a2: SyntheticRace  # polled race of Alpha Park
    a2_polls: list[race_pb2.RaceUpdate]


async def seed(stubs: Stubs, db: Database, maintainer: PartitionMaintainer) -> Seeded:
    """Alpha Park (NZ, T): A1 final 12:00, A2 open 12:30, A3 open 13:00; Bravo Downs (AUS, H): B1 closed
    12:30, B2 open 13:30; Charlie (NZ, T) without races; Delta on the next day with D1."""
    await ensure(maintainer, T0.date())
    meetings = [
        writer_pb2.MeetingWithRaces(
            meeting=_meeting("m-alpha", "Alpha Park", "2025-07-17", "NZ", "T"),
            races=[
                _summary("a1", 1, "final", T0),
                _summary("a3", 3, "open", T0 + timedelta(minutes=60)),
            ],
        ),
        writer_pb2.MeetingWithRaces(
            meeting=_meeting("m-bravo", "Bravo Downs", "2025-07-17", "AUS", "H"),
            races=[
                _summary("b1", 1, "closed", T0 + timedelta(minutes=30), country="AUS"),
                _summary("b2", 2, "open", T0 + timedelta(minutes=90)),
            ],
        ),
        writer_pb2.MeetingWithRaces(meeting=_meeting("m-charlie", "Charlie", "2025-07-17", "NZ", "T")),
        writer_pb2.MeetingWithRaces(
            meeting=_meeting("m-delta", "Delta", "2025-07-18", "NZ", "T"),
            races=[_summary("d1", 1, "open", T0 + timedelta(hours=24))],
        ),
    ]
    await stubs.writer.UpsertMeetings(writer_pb2.UpsertMeetingsRequest(meetings=meetings), timeout=10)
    a2 = SyntheticRace(
        race_id="a2",
        start_ms=to_epoch_ms(T0 + timedelta(minutes=30)),
        meeting_id="m-alpha",
        meeting_name="Alpha Park",
        race_number=2,
        runners=3,
        scratched=frozenset({3}),
    )
    polls: list[race_pb2.RaceUpdate] = []
    previous = None
    for i, minutes in enumerate((40, 25, 12, 4)):
        update = poll(a2, T0 + timedelta(minutes=30 - minutes), index=i, previous=previous)
        await write(db, maintainer, update)
        polls.append(update)
        previous = update
    a1_results = poll(
        SyntheticRace(
            race_id="a1", start_ms=to_epoch_ms(T0), meeting_id="m-alpha", meeting_name="Alpha Park"
        ),
        T0 + timedelta(minutes=8),
        status="final",
        with_results=True,
        odds_rows="none",
    )
    await write(db, maintainer, a1_results)
    return Seeded(a2=a2, a2_polls=polls)


async def test_meetings_list_order_filters_and_detail(
    stubs: Stubs, db: Database, maintainer: PartitionMaintainer
) -> None:
    await seed(stubs, db, maintainer)
    response = await stubs.query.ListMeetings(query_pb2.ListMeetingsRequest(date="2025-07-17"), timeout=10)
    assert [m.meeting_name for m in response.meetings] == ["Alpha Park", "Bravo Downs", "Charlie"]
    alpha, bravo, charlie = response.meetings
    assert (alpha.race_count, alpha.first_race_time.ToMilliseconds()) == (3, to_epoch_ms(T0))
    assert (alpha.race_type, alpha.status, alpha.category) == ("thoroughbred", "active", "T")
    assert bravo.race_type == "harness" and bravo.country == "AUS"
    assert charlie.race_count == 0 and not charlie.HasField("first_race_time")
    harness = await stubs.query.ListMeetings(
        query_pb2.ListMeetingsRequest(date="2025-07-17", category="harness")
    )
    assert [m.meeting_id for m in harness.meetings] == ["m-bravo"]
    nz = await stubs.query.ListMeetings(query_pb2.ListMeetingsRequest(date="2025-07-17", country="nz"))
    assert [m.meeting_id for m in nz.meetings] == ["m-alpha", "m-charlie"]
    empty = await stubs.query.ListMeetings(query_pb2.ListMeetingsRequest(date="2025-07-19"))
    assert list(empty.meetings) == []
    for bad in (
        query_pb2.ListMeetingsRequest(date="17/07/2025"),
        query_pb2.ListMeetingsRequest(category="X"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stubs.query.ListMeetings(bad, timeout=10)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = (await stubs.query.GetMeeting(query_pb2.GetMeetingRequest(meeting_id="m-alpha"))).meeting
    assert (detail.meeting_name, detail.tote_status, detail.race_count, detail.weather) == (
        "Alpha Park",
        "open",
        3,
        "Fine",
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.GetMeeting(query_pb2.GetMeetingRequest(meeting_id="m-nope"))
    assert (
        failure.value.code() == grpc.StatusCode.NOT_FOUND and failure.value.details() == "Meeting not found"
    )


async def test_races_of_a_meeting_and_race_detail(
    stubs: Stubs, db: Database, maintainer: PartitionMaintainer
) -> None:
    await seed(stubs, db, maintainer)
    races = (await stubs.query.ListRaces(query_pb2.ListRacesRequest(meeting_id="m-alpha"))).races
    assert [r.race_id for r in races] == ["a1", "a2", "a3"]
    a1, a2, a3 = races
    assert a2.runner_count == 2  # three stored runners, one scratched
    assert a3.runner_count == 9  # none stored yet: field_size
    assert a1.results_available and not a2.results_available
    assert (a2.meeting_name, a2.race_type, a2.country, a2.status) == (
        "Alpha Park",
        "thoroughbred",
        "NZ",
        "open",
    )
    assert list((await stubs.query.ListRaces(query_pb2.ListRacesRequest(meeting_id="m-charlie"))).races) == []
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.ListRaces(query_pb2.ListRacesRequest(meeting_id="m-nope"))
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.ListRaces(query_pb2.ListRacesRequest(meeting_id=""))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    race = (await stubs.query.GetRace(query_pb2.GetRaceRequest(race_id="a2"))).race
    assert race.start_time.ToMilliseconds() == to_epoch_ms(T0 + timedelta(minutes=30))
    assert (race.race_date_nz, race.distance, race.track_condition, race.total_prize_money) == (
        "2025-07-17",
        1400,
        "Good 4",
        3_000_000,
    )
    assert list(race.video_channels) == ["Trackside 1"] and race.status_raw == "Open"
    b1 = (await stubs.query.GetRace(query_pb2.GetRaceRequest(race_id="b1"))).race
    assert b1.country == "AUS" and b1.race_type == "harness" and not b1.HasField("distance")
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.GetRace(query_pb2.GetRaceRequest(race_id="zz"))
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND and failure.value.details() == "Race not found"


async def test_navigation_upcoming_and_next_scheduled(
    stubs: Stubs, db: Database, maintainer: PartitionMaintainer
) -> None:
    await seed(stubs, db, maintainer)
    now = ts(T0 + timedelta(minutes=10))
    nav = await stubs.query.GetRaceNavigation(query_pb2.GetRaceNavigationRequest(race_id="a2", now=now))
    assert (nav.previous_race.race_id, nav.next_race.race_id, nav.next_scheduled_race.race_id) == (
        "a1",
        "b1",
        "a2",
    )
    assert nav.next_race.meeting_name == "Bravo Downs"
    nav = await stubs.query.GetRaceNavigation(query_pb2.GetRaceNavigationRequest(race_id="b1", now=now))
    assert (nav.previous_race.race_id, nav.next_race.race_id) == ("a2", "a3")
    nav = await stubs.query.GetRaceNavigation(
        query_pb2.GetRaceNavigationRequest(race_id="b2", now=ts(T0 + timedelta(minutes=31)))
    )
    assert nav.previous_race.race_id == "a3" and not nav.HasField("next_race")  # d1 is another NZ day
    assert nav.next_scheduled_race.race_id == "a3"
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.GetRaceNavigation(query_pb2.GetRaceNavigationRequest(race_id="zz"))
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND

    request = query_pb2.ListUpcomingRacesRequest(
        window_minutes=60,
        lookback_minutes=30,
        limit=10,
        now=ts(T0 + timedelta(minutes=20)),
    )
    upcoming = await stubs.query.ListUpcomingRaces(request)
    assert [r.race_id for r in upcoming.races] == ["a2", "b1", "a3"]  # a1 is final
    assert upcoming.races[1].meeting_name == "Bravo Downs" and upcoming.races[1].country == "AUS"
    assert upcoming.lower_bound.ToMilliseconds() == to_epoch_ms(T0 - timedelta(minutes=10))
    assert upcoming.upper_bound.ToMilliseconds() == to_epoch_ms(T0 + timedelta(minutes=80))
    assert upcoming.now.ToMilliseconds() == to_epoch_ms(T0 + timedelta(minutes=20))
    request.limit = 2
    assert [r.race_id for r in (await stubs.query.ListUpcomingRaces(request)).races] == ["a2", "b1"]
    request.window_minutes = 100_000  # clamped to 480: d1 (24 h away) stays out
    assert "d1" not in [r.race_id for r in (await stubs.query.ListUpcomingRaces(request)).races]

    nxt = await stubs.query.GetNextScheduledRace(
        query_pb2.GetNextScheduledRaceRequest(now=ts(T0 + timedelta(minutes=30)))
    )
    assert nxt.race.race_id == "a3" and nxt.race.meeting_name == "Alpha Park"  # b1 closed, start not > now
    none = await stubs.query.GetNextScheduledRace(
        query_pb2.GetNextScheduledRaceRequest(now=ts(T0 + timedelta(days=2)))
    )
    assert not none.HasField("race")


async def test_entrants_with_capped_histories(
    stubs: Stubs, db: Database, maintainer: PartitionMaintainer
) -> None:
    seeded = await seed(stubs, db, maintainer)
    response = await stubs.query.ListEntrants(query_pb2.ListEntrantsRequest(race_id="a2", history_limit=3))
    entrants = response.entrants
    assert [e.runner_number for e in entrants] == [1, 2, 3]
    first, _, scratched = entrants
    last = seeded.a2_polls[-1]
    assert first.fixed_win_odds == last.entrants[0].fixed_win_odds
    assert first.win_pool_amount == last.entrants[0].win_pool_amount
    assert first.money_flow_at.ToMilliseconds() == last.polled_at.ToMilliseconds()
    assert json.loads(first.runner_change_json) == {"gear": None}
    assert (
        scratched.is_scratched and not scratched.HasField("fixed_win_odds") and not scratched.has_money_flow
    )
    # Latest 3 money-flow polls, oldest first.
    stamps = [p.timestamp.ToMilliseconds() for p in first.money_flow_history]
    assert stamps == [p.polled_at.ToMilliseconds() for p in seeded.a2_polls[1:]]
    assert [p.time_interval for p in first.money_flow_history] == [25, 10, 4]
    assert first.money_flow_history[-1].win_pool_amount == last.money_flow[0].win_pool_amount
    # Latest 3 odds rows of all four types together, oldest first (all from the last poll).
    assert len(first.odds_history) == 3
    assert {p.timestamp.ToMilliseconds() for p in first.odds_history} == {last.polled_at.ToMilliseconds()}
    assert list(scratched.odds_history) == [] and list(scratched.money_flow_history) == []
    none = await stubs.query.ListEntrants(query_pb2.ListEntrantsRequest(race_id="a2", history_limit=0))
    assert all(not e.odds_history and not e.money_flow_history for e in none.entrants)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.ListEntrants(query_pb2.ListEntrantsRequest(race_id="zz", history_limit=5))
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


async def test_pools_results_and_status(stubs: Stubs, db: Database, maintainer: PartitionMaintainer) -> None:
    status = await stubs.query.GetStatus(query_pb2.GetStatusRequest())
    assert status.database_connected and not status.HasField("last_race_write")
    seeded = await seed(stubs, db, maintainer)
    pools = (await stubs.query.GetRacePools(query_pb2.GetRacePoolsRequest(race_id="a2"))).pools
    last = seeded.a2_polls[-1]
    assert (pools.win_pool_total, pools.total_race_pool, pools.source, pools.currency) == (
        last.pools.win_pool_total,
        last.pools.total_race_pool,
        "tote_pools",
        "$",
    )
    assert pools.last_updated.ToMilliseconds() == last.polled_at.ToMilliseconds()
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.GetRacePools(query_pb2.GetRacePoolsRequest(race_id="b1"))
    assert (
        failure.value.code() == grpc.StatusCode.NOT_FOUND and failure.value.details() == "Pool data not found"
    )
    results = (await stubs.query.GetRaceResults(query_pb2.GetRaceResultsRequest(race_id="a1"))).results
    assert results.results_available and results.result_status == "final"
    assert json.loads(results.results_data_json)[0]["name"] == "Runner 1"
    assert json.loads(results.dividends_data_json)[0]["product_name"] == "Pool Win"
    assert json.loads(results.fixed_odds_data_json)["1"]["fixed_win_odds"] == 2.25
    assert results.HasField("created_at") and results.HasField("result_time")
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.GetRaceResults(query_pb2.GetRaceResultsRequest(race_id="a2"))
    assert failure.value.details() == "Race results not found"
    status = await stubs.query.GetStatus(query_pb2.GetStatusRequest())
    newest = await scalar(db, "SELECT max(written_at) FROM race_polls")
    assert status.database_connected and status.last_race_write.ToDatetime(tzinfo=UTC) == newest
