"""The service's bytes path encodes exactly the update the records path encodes.

`raceday_core.transform_encoded` (request bytes in, response bytes out, no Python objects) must
answer byte for byte what the records path answers: `update_to_proto` of
`engine.run_transform` with the prior state `state_from_proto` reads. Checked on the recorded
event, a whole poll sequence with its states handed on, races without a date, generated
payloads and gzip bodies, and for every malformed payload the same error.
"""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings

import raceday_core
from raceday_core.errors import PayloadError
from services.common.proto.raceday.v1 import race_pb2, transformer_pb2
from services.transformer.convert import state_from_proto, timestamp_from_ms, update_to_proto
from services.transformer.engine import nz_date_text, run_transform
from tests.transformer.corpus import corpus
from tests.transformer.payloads import open_race_polls, recorded_document, recorded_payload
from tests.transformer_math.strategies import ADVERTISED_START, encode, payloads, poll_sequences

RACE_ID = "0f57e087-00d9-4c61-9549-835abe2ae2ed"
FAST = settings(
    deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def _request(payload: bytes, polled_at_ms: int, state: race_pb2.RaceState, encoding: str = "") -> bytes:
    body = gzip.compress(payload, 1) if encoding == "gzip" else payload
    return transformer_pb2.TransformRequest(
        payload=body, polled_at=timestamp_from_ms(polled_at_ms), prior_state=state, payload_encoding=encoding
    ).SerializeToString()


def _records_path(payload: bytes, polled_at_ms: int, state: race_pb2.RaceState) -> bytes:
    update = run_transform(raceday_core, payload, polled_at_ms, state_from_proto(state))
    return transformer_pb2.TransformResponse(update=update_to_proto(update)).SerializeToString()


def _bytes_path(request: bytes) -> bytes:
    return raceday_core.transform_encoded(request, nz_date_text)


def _same(payload: bytes, polled_at_ms: int, state: race_pb2.RaceState) -> race_pb2.RaceUpdate:
    expected = _records_path(payload, polled_at_ms, state)
    for encoding in ("", "gzip"):
        assert _bytes_path(_request(payload, polled_at_ms, state, encoding)) == expected, encoding
    return transformer_pb2.TransformResponse.FromString(expected).update


def test_the_recorded_final_event() -> None:
    update = _same(recorded_payload(), 1_752_713_400_000 + 1_800_000, race_pb2.RaceState(race_id=RACE_ID))
    # The documents took the JSON path: results, dividends and fixed odds are all there.
    assert update.results.results_data_json and update.results.fixed_odds_data_json
    assert any(entrant.HasField("runner_change_json") for entrant in update.entrants)


def test_a_poll_sequence_with_its_states_handed_on() -> None:
    state = race_pb2.RaceState(race_id=RACE_ID)
    for poll in open_race_polls():
        update = _same(poll.payload, poll.polled_at_ms, state)
        state = update.state
    assert len(state.buckets) > 20 and state.odds


@pytest.mark.parametrize("race_date", [None, "", "17/07/2025", "2025-02-30"])
def test_a_race_without_a_valid_date_gets_the_nz_date_of_its_start(race_date: str | None) -> None:
    document = recorded_document()
    race = document["data"]["race"]
    if race_date is None:
        del race["race_date_nz"]
    else:
        race["race_date_nz"] = race_date
    # 12:30 UTC on the 16th is already 00:30 on the 17th in Auckland.
    race["advertised_start"] = 1_752_669_000
    update = _same(json.dumps(document).encode(), 1_752_668_600_000, race_pb2.RaceState(race_id=RACE_ID))
    assert (update.race.race_date_nz, update.meeting.date) == ("2025-07-17", "2025-07-17")


@FAST
@given(payload=payloads())
def test_generated_payloads(payload: dict[str, object]) -> None:
    raw = encode(payload)
    state = race_pb2.RaceState(race_id="")
    polled_at_ms = ADVERTISED_START * 1000 - 4 * 60_000
    try:
        expected = _records_path(raw, polled_at_ms, state)
    except PayloadError as refused:
        with pytest.raises(type(refused)) as also_refused:
            _bytes_path(_request(raw, polled_at_ms, state))
        assert str(also_refused.value) == str(refused)
        return
    assert _bytes_path(_request(raw, polled_at_ms, state)) == expected


@FAST
@given(polls=poll_sequences())
def test_generated_poll_sequences(polls: list[tuple[int, bytes]]) -> None:
    state = race_pb2.RaceState(race_id="race-seq")
    for polled_at_ms, payload in polls:
        state = _same(payload, polled_at_ms, state).state


@pytest.mark.parametrize("malformed", corpus(), ids=lambda m: m.kind)
def test_a_malformed_payload_is_refused_alike(malformed: object) -> None:
    payload: bytes = malformed.payload  # type: ignore[attr-defined]
    state = race_pb2.RaceState(race_id=RACE_ID)
    with pytest.raises(PayloadError) as refused:
        run_transform(raceday_core, payload, 1_752_713_400_000, state_from_proto(state))
    with pytest.raises(type(refused.value)) as also_refused:
        _bytes_path(_request(payload, 1_752_713_400_000, state))
    assert str(also_refused.value) == str(refused.value)


def test_a_bad_request_is_a_value_error_naming_the_problem() -> None:
    state = race_pb2.RaceState(race_id=RACE_ID)
    no_time = transformer_pb2.TransformRequest(payload=recorded_payload(), prior_state=state)
    with pytest.raises(ValueError, match="polled_at is required"):
        _bytes_path(no_time.SerializeToString())
    brotli = transformer_pb2.TransformRequest.FromString(
        _request(recorded_payload(), 1_752_713_400_000, state)
    )
    brotli.payload_encoding = "br"
    with pytest.raises(ValueError, match="not supported"):
        _bytes_path(brotli.SerializeToString())
    with pytest.raises(ValueError, match="not a TransformRequest"):
        _bytes_path(b"\xff\xff\xff")
    other_race = race_pb2.RaceState(race_id="another-race")
    with pytest.raises(ValueError, match="bad request"):
        _bytes_path(_request(recorded_payload(), 1_752_713_400_000, other_race))


def test_a_corrupt_gzip_body_is_a_decode_error() -> None:
    body = gzip.compress(recorded_payload(), 1)
    request = transformer_pb2.TransformRequest(
        payload=body[: len(body) // 2],
        payload_encoding="gzip",
        polled_at=timestamp_from_ms(1_752_713_400_000),
        prior_state=race_pb2.RaceState(race_id=RACE_ID),
    )
    with pytest.raises(raceday_core.PayloadDecodeError, match="gzip"):
        _bytes_path(request.SerializeToString())
    assert raceday_core.event_summary(body, "gzip") == raceday_core.event_summary(recorded_payload())
