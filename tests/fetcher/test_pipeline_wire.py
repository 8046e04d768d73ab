"""The pipeline forwards the transformer's answer to the writer as bytes; the contract allows it."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor

from services.common.proto.raceday.v1 import race_pb2, transformer_pb2, writer_pb2
from services.common.timestamps import timestamp_from_ms
from services.fetcher.pipeline import BASELINE_FIELD


def test_a_transform_response_is_a_write_request_field_for_field() -> None:
    response = transformer_pb2.TransformResponse.DESCRIPTOR.fields_by_name["update"]
    request = writer_pb2.WriteRaceUpdateRequest.DESCRIPTOR.fields_by_name["update"]
    assert (response.number, response.message_type) == (request.number, request.message_type)
    assert {f.name for f in transformer_pb2.TransformResponse.DESCRIPTOR.fields} == {"update"}
    baseline = writer_pb2.WriteRaceUpdateRequest.DESCRIPTOR.fields_by_name["baseline"]
    assert (baseline.number, baseline.type) == (2, FieldDescriptor.TYPE_BOOL)


def test_forwarded_bytes_decode_as_the_write_request() -> None:
    update = race_pb2.RaceUpdate(race_id="r1", polled_at=timestamp_from_ms(1_752_713_400_000))
    update.money_flow.add(entrant_id="e1", time_interval=5, win_pool_amount=1234)
    answer = transformer_pb2.TransformResponse(update=update).SerializeToString()
    assert writer_pb2.WriteRaceUpdateRequest.FromString(answer) == writer_pb2.WriteRaceUpdateRequest(
        update=update
    )
    baseline = writer_pb2.WriteRaceUpdateRequest.FromString(answer + BASELINE_FIELD)
    assert baseline == writer_pb2.WriteRaceUpdateRequest(update=update, baseline=True)
