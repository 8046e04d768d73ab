"""The recorded event through a real TransformerService on loopback."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from services.common.config import ConfigError, Env
from services.common.health import SERVING, check_health
from services.common.proto.raceday.v1 import race_pb2, transformer_pb2, transformer_pb2_grpc
from services.transformer.app import create_app
from services.transformer.service import (
    SERVICE_NAME,
    TransformerService,
    add_transformer_servicer,
    transform_encoded,
)
from tests.transformer.conftest import TransformerServer
from tests.transformer.payloads import recorded_payload

RACE_ID = "0f57e087-00d9-4c61-9549-835abe2ae2ed"
START_MS = 1_752_713_400_000
# Half an hour after the start: the recording is the Final race.
POLLED_AT_MS = START_MS + 30 * 60_000


def _stamp(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def _count(outcome: str) -> float:
    return REGISTRY.get_sample_value("raceday_transforms_total", {"outcome": outcome}) or 0.0


async def _transform(server: TransformerServer, payload: bytes, polled_at_ms: int) -> race_pb2.RaceUpdate:
    response: transformer_pb2.TransformResponse = await server.stub.Transform(
        transformer_pb2.TransformRequest(
            payload=payload, polled_at=_stamp(polled_at_ms), prior_state=race_pb2.RaceState(race_id=RACE_ID)
        ),
        timeout=10,
    )
    return response.update


async def test_health_and_reflection_list_the_transformer(transformer: TransformerServer) -> None:
    assert SERVICE_NAME == "raceday.v1.TransformerService"
    assert transformer.running.services == (SERVICE_NAME,)
    assert await check_health(transformer.channel, SERVICE_NAME, deadline_s=5) == SERVING


async def test_recorded_event_becomes_a_full_update(transformer: TransformerServer) -> None:
    before = _count("ok")
    update = await _transform(transformer, recorded_payload(), POLLED_AT_MS)

    assert update.race_id == RACE_ID
    assert update.polled_at.ToMilliseconds() == POLLED_AT_MS
    assert update.HasField("source_generated_at")

    race = update.race
    assert (race.race_id, race.status, race.status_raw) == (RACE_ID, "final", "Final")
    assert race.start_time.ToMilliseconds() == START_MS
    assert race.actual_start.ToMilliseconds() == 1_752_713_566_000
    assert (race.race_number, race.name, race.race_date_nz) == (1, "PRYDA HANDICAP 1700", "2025-07-17")
    assert race.distance == 1700
    assert race.total_prize_money == 1_700_000
    assert list(race.video_channels) == ["Trackside1"]
    assert update.meeting.meeting_id == "e9f2039d-d489-4a7d-aae1-d66225f1a5f4"
    assert update.meeting.meeting_name == "Awapuni Synthetic"

    # Golden pool totals (money-flow.md 2.6): Early Quadrella excluded, no truncation.
    pools = update.pools
    assert (pools.win_pool_total, pools.place_pool_total) == (915138, 392351)
    assert (pools.quinella_pool_total, pools.trifecta_pool_total) == (534106, 797624)
    assert (pools.exacta_pool_total, pools.first4_pool_total) == (0, 461792)
    assert pools.total_race_pool == 3101011
    assert (pools.extracted_pools, pools.data_quality_score, pools.source) == (5, 100, "tote_pools")

    # A Final race produces no money flow; entrants are all there with their odds.
    assert len(update.money_flow) == 0
    assert len(update.entrants) == 8
    tickford = next(entrant for entrant in update.entrants if entrant.runner_number == 1)
    assert tickford.name == "Tickford"
    assert (tickford.fixed_win_odds, tickford.fixed_place_odds) == (5.0, 1.8)
    assert (tickford.pool_win_odds, tickford.pool_place_odds) == (4.4, 1.5)
    assert json.loads(tickford.runner_change_json) is not None
    assert not tickford.has_money_flow
    # Odds rows are first sightings; every row is stamped with the poll time.
    assert update.odds
    assert {row.event_timestamp.ToMilliseconds() for row in update.odds} == {POLLED_AT_MS}
    assert {row.type for row in update.odds} <= {"fixed_win", "fixed_place", "pool_win", "pool_place"}

    # Results golden (money-flow.md section 10).
    results = update.results
    assert results.results_available
    results_data = json.loads(results.results_data_json)
    assert len(results_data) == 8
    assert (results_data[0]["name"], results_data[0]["runner_number"]) == ("Frosbie", 2)
    dividends = json.loads(results.dividends_data_json)
    assert len(dividends) == 7
    assert {row["status"] for row in dividends} == {"Final"}
    fixed_odds = json.loads(results.fixed_odds_data_json)
    assert len(fixed_odds) == 8
    assert fixed_odds["2"] == {
        "entrant_id": "a8cc87d4-5a53-47b2-bb26-58d555aac7c0",
        "runner_name": "Frosbie",
        "fixed_win_odds": 7.5,
        "fixed_place_odds": 2.3,
    }
    assert results.result_status == "final"
    assert results.result_time.ToMilliseconds() == POLLED_AT_MS
    assert not (results.photo_finish or results.stewards_inquiry or results.protest_lodged)

    # The new state carries what the next poll needs.
    assert update.state.race_id == RACE_ID
    assert update.state.status == "final"
    assert update.state.pools.total_race_pool == 3101011
    assert len(update.state.odds) == len(update.odds)
    assert _count("ok") == before + 1


async def test_concurrent_calls_are_answered(transformer: TransformerServer) -> None:
    payload = recorded_payload()
    updates = await asyncio.gather(*(_transform(transformer, payload, POLLED_AT_MS + i) for i in range(6)))
    assert [update.polled_at.ToMilliseconds() for update in updates] == [POLLED_AT_MS + i for i in range(6)]
    assert {update.pools.total_race_pool for update in updates} == {3101011}


async def test_missing_poll_time_is_invalid_argument(transformer: TransformerServer) -> None:
    before = _count("invalid")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await transformer.stub.Transform(
            transformer_pb2.TransformRequest(payload=recorded_payload()), timeout=10
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "polled_at" in (error.value.details() or "")
    assert _count("invalid") == before + 1


def _faulty_on_odd_poll_times(request: bytes) -> bytes:
    """The real bytes path, failing (as a bug would, not bad input) on odd poll times."""
    polled_at = transformer_pb2.TransformRequest.FromString(request).polled_at
    if polled_at.ToMilliseconds() % 2:
        raise RuntimeError("a fault inside the transformer")
    return transform_encoded(request)


@pytest.mark.parametrize("threads", [0, 1], ids=["on-the-loop", "on-a-thread"])
async def test_an_internal_fault_answers_internal_and_the_server_keeps_serving(
    caplog: pytest.LogCaptureFixture, threads: int
) -> None:
    server = grpc.aio.server()
    with ThreadPoolExecutor(max_workers=1) as pool:
        executor = pool if threads else None
        add_transformer_servicer(TransformerService(executor, transform=_faulty_on_odd_poll_times), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = transformer_pb2_grpc.TransformerServiceStub(channel)
                before = _count("error")
                request = transformer_pb2.TransformRequest(
                    payload=recorded_payload(), polled_at=_stamp(POLLED_AT_MS + 1)
                )
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await stub.Transform(request, timeout=10)
                assert error.value.code() == grpc.StatusCode.INTERNAL
                assert error.value.details() == "transform failed: internal error (see server log)"
                assert _count("error") == before + 1
                assert any(
                    record.message == "transform_failed" and record.exc_info for record in caplog.records
                )

                request.polled_at.CopyFrom(_stamp(POLLED_AT_MS))
                response = await stub.Transform(request, timeout=10)
                assert response.update.pools.total_race_pool == 3101011
        finally:
            await server.stop(0)


def test_worker_count_is_validated() -> None:
    # 0, the default: transforms run on the event loop.
    assert create_app(Env({})).settings.workers == 0
    assert create_app(Env({"RACEDAY_TRANSFORMER_WORKERS": "8"})).settings.workers == 8
    for bad in ("-1", "65", "four"):
        with pytest.raises(ConfigError, match="RACEDAY_TRANSFORMER_WORKERS"):
            create_app(Env({"RACEDAY_TRANSFORMER_WORKERS": bad}))
