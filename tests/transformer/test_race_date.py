"""A race without a valid race_date_nz gets the Pacific/Auckland date of its start.

The engines leave that date absent (the Rust core has no NZ calendar); `run_transform` fills
it in from services/common/nztime for the service and the CLI alike. The expected dates below
are written out by hand, not computed, so they check nztime's zone too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import raceday_core
from services.common.nztime import to_epoch_ms
from services.common.proto.raceday.v1 import race_pb2, transformer_pb2
from services.transformer import reference
from services.transformer.convert import timestamp_from_ms
from services.transformer.documents import iso_from_ms
from services.transformer.engine import MoneyFlowEngine, run_transform
from services.transformer.records import empty_state
from tests.transformer.conftest import TransformerServer, raceday
from tests.transformer.payloads import recorded_document

INVALID_DATE = (
    "invalid_field",
    "data.race.race_date_nz: expected YYYY-MM-DD, got a string that is not YYYY-MM-DD",
)
# 00:30 NZST on 18 July 2025 (UTC+12): the NZ date is a day after the UTC date.
AFTER_NZ_MIDNIGHT = datetime(2025, 7, 17, 12, 30, tzinfo=UTC)

# (advertised start, its NZ date): either side of NZ midnight in winter (NZST, UTC+12) and in
# summer (NZDT, UTC+13), where 11:30 UTC is already the next NZ day.
NZ_DATES = [
    pytest.param(datetime(2025, 7, 17, 11, 30, tzinfo=UTC), "2025-07-17", id="nzst-23:30"),
    pytest.param(AFTER_NZ_MIDNIGHT, "2025-07-18", id="nzst-00:30-next-day"),
    pytest.param(datetime(2025, 1, 10, 10, 30, tzinfo=UTC), "2025-01-10", id="nzdt-23:30"),
    pytest.param(datetime(2025, 1, 10, 11, 30, tzinfo=UTC), "2025-01-11", id="nzdt-00:30-next-day"),
]


def _payload(start: datetime, race_date_nz: Any = None, *, drop_date: bool = True) -> bytes:
    """The recorded event started at `start`, without race_date_nz unless one is given."""
    document = recorded_document()
    race = document["data"]["race"]
    race["advertised_start"] = int(start.timestamp())
    if drop_date:
        del race["race_date_nz"]
    else:
        race["race_date_nz"] = race_date_nz
    return json.dumps(document).encode()


def _polled_at_ms(start: datetime) -> int:
    # Half an hour after the start: the recording is a Final race.
    return to_epoch_ms(start) + 30 * 60_000


async def _update(server: TransformerServer, payload: bytes, polled_at_ms: int) -> race_pb2.RaceUpdate:
    response: transformer_pb2.TransformResponse = await server.stub.Transform(
        transformer_pb2.TransformRequest(
            payload=payload, polled_at=timestamp_from_ms(polled_at_ms), prior_state=race_pb2.RaceState()
        ),
        timeout=10,
    )
    return response.update


def _date_findings(update: race_pb2.RaceUpdate) -> list[tuple[str, str]]:
    return [(f.check, f.message) for f in update.quality if "race_date_nz" in f.message]


@pytest.mark.parametrize(("start", "nz_date"), NZ_DATES)
async def test_missing_race_date_is_the_nz_date_of_the_start(
    transformer: TransformerServer, start: datetime, nz_date: str
) -> None:
    update = await _update(transformer, _payload(start), _polled_at_ms(start))
    assert update.race.start_time.ToMilliseconds() == to_epoch_ms(start)
    assert (update.race.race_date_nz, update.meeting.date) == (nz_date, nz_date)
    # A missing date is normal upstream behaviour, not a data-quality problem.
    assert _date_findings(update) == []


@pytest.mark.parametrize(
    ("value", "findings"), [(None, []), ("17/07/2025", [INVALID_DATE]), ("2025-02-29", [INVALID_DATE])]
)
async def test_null_or_invalid_race_date_is_derived_and_an_invalid_one_is_reported(
    transformer: TransformerServer, value: str | None, findings: list[tuple[str, str]]
) -> None:
    payload = _payload(AFTER_NZ_MIDNIGHT, value, drop_date=False)
    update = await _update(transformer, payload, _polled_at_ms(AFTER_NZ_MIDNIGHT))
    assert (update.race.race_date_nz, update.meeting.date) == ("2025-07-18", "2025-07-18")
    assert _date_findings(update) == findings


async def test_a_valid_race_date_from_the_payload_is_kept(transformer: TransformerServer) -> None:
    payload = _payload(AFTER_NZ_MIDNIGHT, "2025-07-17", drop_date=False)
    update = await _update(transformer, payload, _polled_at_ms(AFTER_NZ_MIDNIGHT))
    assert (update.race.race_date_nz, update.meeting.date) == ("2025-07-17", "2025-07-17")
    assert _date_findings(update) == []


@pytest.mark.parametrize("engine", [raceday_core, reference], ids=["rust", "reference"])
def test_both_engines_leave_the_date_out_and_run_transform_fills_it_in(engine: MoneyFlowEngine) -> None:
    payload = _payload(AFTER_NZ_MIDNIGHT)
    polled_at_ms = _polled_at_ms(AFTER_NZ_MIDNIGHT)
    raw = engine.transform(payload, polled_at_ms, empty_state(""))
    assert (raw["race"]["race_date_nz"], raw["meeting"]["date"]) == (None, None)
    update = run_transform(engine, payload, polled_at_ms, empty_state(""))
    assert (update["race"]["race_date_nz"], update["meeting"]["date"]) == ("2025-07-18", "2025-07-18")


def test_the_cli_prints_the_derived_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = tmp_path / "no-date.json"
    payload.write_bytes(_payload(AFTER_NZ_MIDNIGHT))
    code = raceday(["transform", str(payload), "--at", iso_from_ms(_polled_at_ms(AFTER_NZ_MIDNIGHT))])
    captured = capsys.readouterr()
    assert (code, captured.err) == (0, "")
    document = json.loads(captured.out)
    assert (document["race"]["race_date_nz"], document["meeting"]["date"]) == ("2025-07-18", "2025-07-18")
