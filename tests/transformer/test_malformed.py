"""Malformed payloads: INVALID_ARGUMENT from the service, exit 2 from the CLI, one line each."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from services.common.proto.raceday.v1 import race_pb2, transformer_pb2
from tests.transformer.conftest import TransformerServer, raceday
from tests.transformer.corpus import Malformed, corpus, tolerated
from tests.transformer.payloads import recorded_payload

POLLED_AT_MS = 1_752_713_400_000 - 5 * 60_000
CASES = corpus()
TOLERATED = tolerated()


def _request(payload: bytes) -> transformer_pb2.TransformRequest:
    stamp = Timestamp()
    stamp.FromMilliseconds(POLLED_AT_MS)
    return transformer_pb2.TransformRequest(
        payload=payload,
        polled_at=stamp,
        prior_state=race_pb2.RaceState(race_id="0f57e087-00d9-4c61-9549-835abe2ae2ed"),
    )


def _assert_one_clear_line(message: str, case: Malformed) -> None:
    assert message, case.kind
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message and "panicked" not in message, message
    assert len(message) < 600, message
    assert case.hint.lower() in message.lower(), f"{case.kind}: {message!r} lacks {case.hint!r}"


def test_corpus_has_at_least_fifteen_kinds() -> None:
    assert len({case.kind for case in CASES}) == len(CASES) >= 15
    assert len({case.payload for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
async def test_service_refuses_then_keeps_serving(transformer: TransformerServer, case: Malformed) -> None:
    invalid_before = REGISTRY.get_sample_value("raceday_transforms_total", {"outcome": "invalid"}) or 0.0
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await transformer.stub.Transform(_request(case.payload), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    _assert_one_clear_line(error.value.details() or "", case)
    assert REGISTRY.get_sample_value("raceday_transforms_total", {"outcome": "invalid"}) == invalid_before + 1

    response = await transformer.stub.Transform(_request(recorded_payload()), timeout=10)
    assert response.update.pools.total_race_pool == 3101011


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
def test_cli_refuses_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: Malformed
) -> None:
    path = tmp_path / "payload.json"
    path.write_bytes(case.payload)
    state_out = tmp_path / "state.json"
    code = raceday(["transform", str(path), "--at", "2025-07-17T00:45:00Z", "--state-out", str(state_out)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"raceday transform: invalid payload {path}: ")
    _assert_one_clear_line(lines[0], case)
    assert not state_out.exists()


@pytest.mark.parametrize("case", TOLERATED, ids=[case.kind for case in TOLERATED])
async def test_wrong_typed_optional_members_are_dropped_with_a_warning(
    transformer: TransformerServer, case: Malformed
) -> None:
    response = await transformer.stub.Transform(_request(case.payload), timeout=10)
    findings = [finding for finding in response.update.quality if finding.check == "invalid_field"]
    assert len(findings) == 1
    assert findings[0].level == "warning"
    assert case.hint in findings[0].message
    assert response.update.race.race_id == "0f57e087-00d9-4c61-9549-835abe2ae2ed"
