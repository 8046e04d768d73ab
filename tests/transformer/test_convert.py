"""Records <-> protobuf messages, and records <-> JSON documents."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.proto.raceday.v1 import race_pb2
from services.common.timestamps import ms_from_timestamp
from services.transformer.convert import (
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    ConversionError,
    _build,
    state_from_proto,
    state_to_proto,
    timestamp_from_ms,
)
from services.transformer.documents import (
    DocumentError,
    iso_from_ms,
    ms_from_iso,
    state_document,
    state_from_document,
)
from services.transformer.records import PriorState, empty_state


def full_state() -> PriorState:
    """A state with every kind of value: ids and no ids, null odds, pools, flags."""
    return {
        "race_id": "race-1",
        "buckets": [
            {
                "entrant_id": "e1",
                "time_interval": 60,
                "polled_at": 1_752_709_800_123,
                "row_id": 41,
                "win_pool_amount": 10_000,
                "place_pool_amount": 5_000,
                "incremental_win_amount": 10_000,
                "incremental_place_amount": 5_000,
                "fixed_win_odds": 2.6,
                "pool_win_odds": None,
            },
            {
                "entrant_id": "e1",
                "time_interval": -3,
                "polled_at": 1_752_713_580_000,
                "row_id": None,
                "win_pool_amount": 0,
                "place_pool_amount": -1,
                "incremental_win_amount": -250,
                "incremental_place_amount": 0,
                "fixed_win_odds": None,
                "pool_win_odds": 0.0,
            },
        ],
        "odds": [
            {"entrant_id": "e1", "type": "fixed_win", "odds": 2.51},
            {"entrant_id": "e1", "type": "pool_win", "odds": None},
        ],
        "status": "open",
        "start_time": 1_752_713_400_000,
        "protest": True,
        "pools": {
            "race_id": "race-1",
            "win_pool_total": 915138,
            "place_pool_total": 392351,
            "quinella_pool_total": 534106,
            "trifecta_pool_total": 797624,
            "exacta_pool_total": 0,
            "first4_pool_total": 461792,
            "total_race_pool": 3101011,
            "currency": "$",
            "extracted_pools": 5,
            "data_quality_score": 100,
            "source": "tote_pools",
            "last_updated": 1_752_713_000_000,
        },
        "photo_finish": False,
        "stewards_inquiry": True,
        "protest_lodged": False,
        "result_status": "interim",
        "result_time": 1_752_714_000_000,
    }


@pytest.mark.parametrize("ms", [0, 1, -1, 1_752_713_400_123, -86_400_001, MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS])
def test_timestamps_round_trip_exactly(ms: int) -> None:
    assert ms_from_timestamp(timestamp_from_ms(ms)) == ms


@pytest.mark.parametrize("ms", [MIN_TIMESTAMP_MS - 1, MAX_TIMESTAMP_MS + 1, 10**18])
def test_timestamps_out_of_range_are_refused(ms: int) -> None:
    with pytest.raises(ConversionError, match="outside years 1 to 9999"):
        timestamp_from_ms(ms)


def test_sub_millisecond_nanos_round_down() -> None:
    assert ms_from_timestamp(Timestamp(seconds=-1, nanos=999_999_999)) == -1
    assert ms_from_timestamp(Timestamp(seconds=1, nanos=1)) == 1000


def test_state_round_trips_through_the_message() -> None:
    state = full_state()
    message = state_to_proto(state)
    assert message.buckets[0].row_id == 41
    assert not message.buckets[1].HasField("row_id")
    assert not message.buckets[0].HasField("pool_win_odds") and message.buckets[1].HasField("pool_win_odds")
    assert not message.odds[1].HasField("odds")
    assert message.pools.last_updated.ToMilliseconds() == 1_752_713_000_000
    assert state_from_proto(message) == state
    assert state_from_proto(race_pb2.RaceState.FromString(message.SerializeToString())) == state


def test_empty_state_round_trips_with_absent_optionals() -> None:
    message = state_to_proto(empty_state("race-2"))
    for name in ("status", "start_time", "pools", "result_status", "result_time"):
        assert not message.HasField(name), name
    assert state_from_proto(message) == empty_state("race-2")
    assert state_from_proto(race_pb2.RaceState()) == empty_state("")


def test_documents_go_to_json_fields_and_unknown_keys_fail() -> None:
    entrant = _build(
        race_pb2.Entrant, {"entrant_id": "e1", "runner_change": {"12/11/2020": "Gelding"}, "barrier": None}
    )
    assert json.loads(entrant.runner_change_json) == {"12/11/2020": "Gelding"}
    assert not entrant.HasField("barrier")
    results = _build(
        race_pb2.RaceResults,
        {"results_data": [], "dividends_data": [{"dividend": 6.6}], "fixed_odds_data": {}},
    )
    assert (results.results_data_json, results.dividends_data_json) == ("[]", '[{"dividend":6.6}]')
    with pytest.raises(KeyError, match="no_such_column"):
        _build(race_pb2.Entrant, {"no_such_column": 1})


def test_values_that_do_not_fit_are_conversion_errors_naming_the_field() -> None:
    with pytest.raises(ConversionError, match=r"^distance: Value out of range"):
        _build(race_pb2.Race, {"race_id": "r", "distance": 2**40})
    with pytest.raises(ConversionError, match=r"^start_time: instant .* outside years 1 to 9999"):
        _build(race_pb2.Race, {"start_time": 10**17})
    with pytest.raises(ConversionError, match=r"^video_channels: expected a list"):
        _build(race_pb2.Race, {"video_channels": "Trackside1"})
    with pytest.raises(ConversionError, match=r"^entrants\[1\]\.barrier: Value out of range"):
        _build(
            race_pb2.RaceUpdate,
            {"race_id": "r", "entrants": [{"barrier": 1}, {"entrant_id": "e2", "barrier": -(2**40)}]},
        )
    with pytest.raises(ConversionError, match=r"^race\.name: "):
        _build(race_pb2.RaceUpdate, {"race": {"race_id": "r", "name": 7}})
    with pytest.raises(
        ConversionError, match=r"^state\.buckets\[0\]\.polled_at: expected epoch milliseconds"
    ):
        _build(race_pb2.RaceUpdate, {"state": {"buckets": [{"polled_at": "2025-07-17"}]}})


def test_iso_instants_are_utc_with_milliseconds() -> None:
    assert iso_from_ms(1_752_712_800_000) == "2025-07-17T00:40:00.000Z"
    assert iso_from_ms(1_752_712_800_007) == "2025-07-17T00:40:00.007Z"
    assert iso_from_ms(-1) == "1969-12-31T23:59:59.999Z"
    assert ms_from_iso("2025-07-17T00:40:00Z") == 1_752_712_800_000
    assert ms_from_iso("2025-07-17T12:40:00.5+12:00") == 1_752_712_800_500
    assert ms_from_iso(iso_from_ms(1_752_712_800_007)) == 1_752_712_800_007


@pytest.mark.parametrize(
    "text", ["2025-07-17T00:40:00", "yesterday", "", "2025-13-01T00:00:00Z", "0001-01-01T00:00:00+01:00"]
)
def test_iso_instants_need_a_valid_date_and_an_offset(text: str) -> None:
    with pytest.raises(ValueError, match=r"offset|not an ISO|outside years"):
        ms_from_iso(text)


def test_state_document_round_trip() -> None:
    state = full_state()
    document = json.loads(json.dumps(state_document(state)))
    assert document["start_time"] == "2025-07-17T00:50:00.000Z"
    assert document["buckets"][0]["polled_at"] == "2025-07-16T23:50:00.123Z"
    assert document["pools"]["last_updated"] == "2025-07-17T00:43:20.000Z"
    assert state_from_document(document) == state


def test_state_document_may_leave_out_keys() -> None:
    assert state_from_document({"race_id": "r"}) == empty_state("r")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "state must be an object"),
        ({}, "state.race_id must be a string"),
        ({"race_id": "r", "bucket": []}, "unknown keys: bucket"),
        ({"race_id": "r", "buckets": {}}, "state.buckets must be an array"),
        ({"race_id": "r", "protest": 1}, "state.protest must be true or false"),
        ({"race_id": "r", "start_time": 1752713400000}, "state.start_time must be a string"),
        ({"race_id": "r", "start_time": "2025-07-17 00:50"}, "no UTC offset"),
        (
            {"race_id": "r", "buckets": [{"entrant_id": "e", "time_interval": True}]},
            "state.buckets[0].time_interval must be an integer",
        ),
        (
            {"race_id": "r", "buckets": [{"entrant_id": "e", "time_interval": 5, "polled_at": None}]},
            "state.buckets[0].polled_at must be a string",
        ),
        (
            {"race_id": "r", "odds": [{"entrant_id": "e", "type": "fixed_win"}]},
            "state.odds[0].odds is required",
        ),
        (
            {"race_id": "r", "odds": [{"entrant_id": "e", "type": "fixed_win", "odds": "2.5"}]},
            "state.odds[0].odds must be a number",
        ),
        ({"race_id": "r", "pools": {"race_id": "r"}}, "state.pools.win_pool_total must be an integer"),
    ],
)
def test_bad_state_documents_name_the_field(document: Any, message: str) -> None:
    with pytest.raises(DocumentError) as error:
        state_from_document(document)
    assert message in str(error.value)
