"""Pure parts of the gateway: parameter parsing, body validation, serialization, coverage, health."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.datastructures import QueryParams

from services.common.config import ConfigError, Env
from services.common.proto.raceday.v1 import query_pb2, race_pb2
from services.gateway import alerts, serialize
from services.gateway.cache import EncodingCache, SingleFlight
from services.gateway.errors import ApiError
from services.gateway.health import build_report
from services.gateway.params import (
    DateParam,
    IdListParam,
    IdParam,
    InstantParam,
    IntParam,
    PoolTypeParam,
    Query,
    RaceTypeParam,
    camel_case,
)
from services.gateway.settings import GatewaySettings
from services.gateway.timeline import interval_coverage, timeline_envelope
from tests.gateway.contract import NZ_TIMESTAMP


def q(text: str) -> Query:
    return Query(QueryParams(text))


def stamp(instant: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(instant)
    return value


def test_camel_case() -> None:
    assert camel_case("race_id") == "raceId"
    assert camel_case("lookback_minutes") == "lookbackMinutes"
    assert camel_case("limit") == "limit"


def test_both_spellings_repeats_and_conflicts() -> None:
    param = IdParam("race_id", "", missing_error="race_id query parameter is required")
    assert param.read(q("race_id=a")) == "a"
    assert param.read(q("raceId=a")) == "a"
    assert param.read(q("race_id=a&raceId=a")) == "a"
    assert param.read(q("race_id=&raceId=b")) == "b"  # empty means absent
    for text, detail in (("race_id=a&raceId=b", "alias"), ("race_id=a&race_id=a", "param")):
        with pytest.raises(ApiError) as error:
            param.read(q(text))
        assert error.value.status == 400 and detail in (error.value.details or {})
    with pytest.raises(ApiError) as missing:
        param.read(q("other=1"))
    assert missing.value.error == "race_id query parameter is required"
    for bad in ("a,b", "x" * 65, "%00abc", "%20padded"):
        with pytest.raises(ApiError):
            param.read(q(f"race_id={bad}"))


def test_integers_are_base_ten_and_clamped() -> None:
    limit = IntParam("limit", "", 1, 100, 50)
    assert limit.read(q("")) == 50
    assert limit.read(q("limit=0")) == 1
    assert limit.read(q("limit=100000000000000000000")) == 100
    assert limit.read(q("limit=-5")) == 1
    assert limit.read(q("limit=%2B7")) == 7
    for bad in ("1.5", "ten", "0x10", "1e3", " 5"):
        with pytest.raises(ApiError):
            limit.read(q(f"limit={bad}"))
    cursor = IntParam("cursor_after", "", 0, 2**63 - 1)
    assert cursor.read_optional(q("cursorAfter=12")) == 12
    assert cursor.read_optional(q("cursorAfter=")) is None


def test_dates_race_types_pool_types() -> None:
    assert DateParam("date", "").read(q("date=2025-07-17")) == datetime(2025, 7, 17).date()
    for bad in ("2025-7-17", "2025-02-30", "17/07/2025"):
        with pytest.raises(ApiError) as error:
            DateParam("date", "").read(q(f"date={bad}"))
        assert error.value.body("r") == {"error": "Invalid date", "details": {"param": "date"}}
    race_type = RaceTypeParam("race_type", "")
    assert [race_type.read(q(f"raceType={value}")) for value in ("Thoroughbred", "h", "GREYHOUND")] == [
        "T",
        "H",
        "G",
    ]
    with pytest.raises(ApiError):
        race_type.read(q("race_type=camel"))
    pool = PoolTypeParam("pool_type", "")
    assert pool.read(q("")) == "win" and pool.read(q("poolType=Odds")) == "odds"
    with pytest.raises(ApiError) as error:
        pool.read(q("pool_type=show"))
    assert error.value.body("r") == {
        "error": "Invalid pool_type parameter",
        "message": "pool_type must be one of: win, place, odds",
        "received": "show",
    }


def test_instants_and_entrant_lists() -> None:
    instant = InstantParam("created_after", "")
    assert instant.read(q("created_after=2025-07-17T00:50:00Z")) == datetime(2025, 7, 17, 0, 50, tzinfo=UTC)
    assert instant.read(q("createdAfter=2025-07-17T12:50:00.123%2B12:00")) == datetime(
        2025, 7, 17, 0, 50, 0, 123000, tzinfo=UTC
    )
    assert instant.read(q("created_after=0001-01-01T00:00:00Z")) == datetime(1970, 1, 1, tzinfo=UTC)
    for bad in ("2025-07-17", "2025-07-17T00:50:00", "yesterday"):
        with pytest.raises(ApiError):
            instant.read(q(f"created_after={bad}"))
    entrants = IdListParam("entrants", "")
    assert entrants.read(q("entrants=a,%20b%20,,c&entrants=a,d")) == ["a", "b", "c", "d"]
    assert entrants.read(q("entrants=,,")) == []


def test_timestamps_are_nz_with_milliseconds_across_midnight_and_dst() -> None:
    cases = {
        datetime(2025, 7, 17, 0, 50, tzinfo=UTC): "2025-07-17T12:50:00.000+12:00",
        datetime(2025, 11, 30, 11, 5, 9, 120999, tzinfo=UTC): "2025-12-01T00:05:09.120+13:00",
        datetime(2025, 9, 27, 13, 59, 59, 999999, tzinfo=UTC): "2025-09-28T01:59:59.999+12:00",
        datetime(2025, 9, 27, 14, 0, tzinfo=UTC): "2025-09-28T03:00:00.000+13:00",
        datetime(2025, 4, 5, 13, 30, tzinfo=UTC): "2025-04-06T02:30:00.000+13:00",
        datetime(2025, 4, 5, 14, 30, tzinfo=UTC): "2025-04-06T02:30:00.000+12:00",
    }
    for instant, expected in cases.items():
        text = serialize.timestamp(stamp(instant))
        assert text == expected
        assert NZ_TIMESTAMP.fullmatch(text)


def test_entrant_serialization_fills_client_aliases() -> None:
    entrant = race_pb2.Entrant(
        entrant_id="e1",
        race_id="r1",
        runner_number=3,
        name="Frosbie",
        fixed_win_odds=7.5,
        fixed_place_odds=2.3,
        silk_url_64x64="https://silks/64.png",
        hold_percentage=11.123456,
        win_pool_amount=123456,
    )
    entrant.odds_history.add(odds=7.5, type="fixed_win", timestamp=stamp(datetime(2025, 7, 17, tzinfo=UTC)))
    body = serialize.entrant(entrant)
    assert body["win_odds"] == 7.5 and body["place_odds"] == 2.3
    assert body["silk_url"] == body["silk_url_64"] == "https://silks/64.png"
    assert body["silk_url_128"] is None
    assert body["hold_percentage"] == 11.12
    assert body["win_pool_amount"] == 123456 and body["place_pool_amount"] is None
    assert body["odds_history"] == [
        {"odds": 7.5, "type": "fixed_win", "timestamp": "2025-07-17T12:00:00.000+12:00"}
    ]


def document(entrant: str, interval: int, doc_id: int, created: datetime) -> query_pb2.TimelineDocument:
    return query_pb2.TimelineDocument(
        id=doc_id,
        row_id=doc_id,
        race_id="r",
        entrant_id=entrant,
        time_interval=interval,
        event_timestamp=stamp(created),
        created_at=stamp(created),
    )


def test_interval_coverage_and_paging() -> None:
    base = datetime(2025, 7, 17, tzinfo=UTC)
    docs = [
        document("a", value, index, base + timedelta(seconds=index))
        for index, value in enumerate((5, 4, 3, 2, 1, 0))
    ]
    docs += [document("b", 10, 10, base), document("b", 2, 11, base + timedelta(minutes=1))]
    coverage = interval_coverage(docs)
    assert coverage["summary"]["coverage_report"] == "Missing coverage in critical 5-minute window"
    assert coverage["summary"]["critical_period_gaps"] == [
        {"entrant_id": "b", "missing_intervals": [5, 4, 3, 1, 0]}
    ]
    assert coverage["summary"]["intervals_covered"] == [10, 5, 4, 3, 2, 1, 0]
    assert coverage["entrants"][0]["missing_critical_intervals"] == []
    assert (
        interval_coverage(docs[:6])["summary"]["coverage_report"]
        == "Full coverage of critical 5-minute window"
    )
    assert interval_coverage([])["summary"]["coverage_report"] == "No documents to analyze"

    response = query_pb2.GetMoneyFlowTimelineResponse(documents=docs, entrant_ids=["a", "b"])
    full = timeline_envelope(response, race_id="r", pool_type="win", limit=8, created_after=None)
    assert full["next_cursor"] == "11" and full["next_created_at"] == "2025-07-17T12:01:00.000+12:00"
    short = timeline_envelope(response, race_id="r", pool_type="win", limit=9, created_after=base)
    assert short["next_cursor"] is None and short["created_after"] == "2025-07-17T12:00:00.000+12:00"


def test_alert_body_validation_builds_the_request() -> None:
    request = alerts.save_request(
        {
            "userId": " trader ",
            "indicators": [
                {
                    "$id": "0b4a8f4e-8f8a-4c1f-9d2b-0d5c8a9e6f10",
                    "displayOrder": 1.0,
                    "percentageRangeMin": 5,
                    "color": "#e5e7eb",
                    "enabled": "FALSE",
                    "audibleAlertsEnabled": "true",
                },
                {
                    "indicator_id": "not-a-uuid",
                    "display_order": 6,
                    "percentage_range_min": 50,
                    "color": "#F3E8FF",
                },
            ],
        }
    )
    assert request.user_id == "trader" and request.audible_alerts_enabled is True
    first, second = request.indicators
    assert first.indicator_id == "0b4a8f4e-8f8a-4c1f-9d2b-0d5c8a9e6f10" and first.color == "#E5E7EB"
    assert first.enabled is False and first.display_order == 1 and not first.HasField("percentage_range_max")
    assert second.indicator_id == "" and second.indicator_type == "percentage_range"
    assert alerts.reset_user({"userId": "x"}, "y") == "x"
    assert alerts.reset_user(None, "y") == "y" and alerts.reset_user(None, None) == "Default User"
    with pytest.raises(ApiError):
        alerts.save_request(
            {"indicators": [{"display_order": True, "percentage_range_min": 5, "color": "#FFFFFF"}]}
        )
    with pytest.raises(ApiError):
        alerts.save_request(
            {"indicators": [{"display_order": 1, "percentage_range_min": 101, "color": "#FFFFFF"}]}
        )


def test_health_report_rules() -> None:
    now = datetime(2025, 7, 17, tzinfo=UTC)
    status = query_pb2.GetStatusResponse(
        database_connected=True, last_race_write=stamp(now - timedelta(seconds=42))
    )
    serving, down = 1, grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, None, None)
    ok = build_report(status, serving, serving, serving, now)
    assert ok.status_code == 200 and ok.body["workers"] == "operational" and ok.body["data_age_seconds"] == 42
    degraded = build_report(status, serving, serving, down, now)
    assert degraded.status_code == 200 and degraded.body["workers"] == "degraded"
    assert degraded.body["services"]["fetcher"] == "unknown"
    no_db = build_report(
        query_pb2.GetStatusResponse(database_connected=False), serving, serving, serving, now
    )
    assert no_db.status_code == 503 and no_db.body["database"] == "disconnected"
    no_writer = build_report(down, down, serving, serving, now)
    assert no_writer.status_code == 503 and no_writer.body["error"] == "writer unavailable"


def test_settings_validate_origins() -> None:
    settings = GatewaySettings.from_env(Env({"API_CORS_ORIGINS": "https://a.nz, http://b.nz:3000/"}))
    assert settings.cors_origins == ("https://a.nz", "http://b.nz:3000")
    assert settings.http_port == 8080 and settings.compat_aliases is True and settings.hsts is False
    assert settings.deadline_s == 2.0
    with pytest.raises(ConfigError, match="API_CORS_ORIGINS"):
        GatewaySettings.from_env(Env({"API_CORS_ORIGINS": "a.nz/path"}))
    with pytest.raises(ConfigError, match="RACEDAY_GATEWAY_DEADLINE_S"):
        GatewaySettings.from_env(Env({"RACEDAY_GATEWAY_DEADLINE_S": "0"}))


async def test_single_flight_shares_one_call_and_survives_a_cancelled_waiter() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def slow() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    waiters = [asyncio.create_task(flight.run("k", slow)) for _ in range(5)]
    await asyncio.sleep(0)
    waiters[0].cancel()  # the caller that started the call goes away
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters[1:])
    assert results == [42] * 4 and calls == 1
    assert await flight.run("k", slow) == 42 and calls == 2  # a later call runs again

    async def broken() -> int:
        raise ValueError("upstream")

    outcomes = await asyncio.gather(*(flight.run("e", broken) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(item, ValueError) for item in outcomes)


def test_encoding_cache_is_keyed_by_the_data() -> None:
    cache = EncodingCache(max_bytes=64 * 1024)
    small = query_pb2.GetRaceResponse(race=race_pb2.Race(race_id="a"))
    other = query_pb2.GetRaceResponse(race=race_pb2.Race(race_id="b"))
    built: list[str] = []

    def build(text: str) -> bytes:
        built.append(text)
        return text.encode()

    first = cache.get(EncodingCache.key("race", small, ()), lambda: build("a" * 10))
    again = cache.get(EncodingCache.key("race", small, ()), lambda: build("never"))
    assert again is first and built == ["a" * 10] and first.compressed is None  # below 1 KB
    shaped = cache.get(EncodingCache.key("race", small, ("limit", 5)), lambda: build("x" * 2000))
    assert shaped is not first and shaped.compressed is not None
    assert shaped.etag != first.etag and shaped.etag.startswith('W/"')
    changed = cache.get(EncodingCache.key("race", other, ()), lambda: build("b" * 10))
    assert changed.body == b"b" * 10 and cache.hits == 1 and cache.misses == 3
    for index in range(40):  # overflow the byte budget: the oldest entries go
        cache.get(EncodingCache.key("race", other, (index,)), lambda: build("y" * 4000))
    cache.get(EncodingCache.key("race", small, ()), lambda: build("rebuilt"))
    assert built[-1] == "rebuilt"
