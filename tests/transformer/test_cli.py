"""`raceday transform`: the update as one JSON object, state files, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.transformer import bench as transform_bench
from services.transformer import cli as transform_cli
from services.transformer.documents import UPDATE_KEYS, state_from_document
from tests.transformer.conftest import raceday
from tests.transformer.payloads import RECORDED_EVENT, open_race_polls

AT = "2025-07-17T01:20:00Z"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = raceday(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_recorded_event_prints_one_object_with_storage_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_out = tmp_path / "state.json"
    code, out, err = _run(
        ["transform", str(RECORDED_EVENT), "--at", AT, "--state-out", str(state_out)], capsys
    )
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert tuple(document) == UPDATE_KEYS
    race = document["race"]
    assert race["race_id"] == "0f57e087-00d9-4c61-9549-835abe2ae2ed"
    assert race["start_time"] == "2025-07-17T00:50:00.000Z"
    assert race["actual_start"] == "2025-07-17T00:52:46.000Z"
    assert race["status"] == "final"
    pools = document["pools"]
    assert pools["total_race_pool"] == 3101011
    assert pools["win_pool_total"] == 915138
    assert pools["last_updated"] == "2025-07-17T01:20:00.000Z"
    assert document["money_flow"] == []
    assert {row["event_timestamp"] for row in document["odds"]} == {"2025-07-17T01:20:00.000Z"}
    entrant = document["entrants"][0]
    assert {"entrant_id", "runner_number", "fixed_win_odds", "is_scratched", "runner_change"} <= set(entrant)
    assert document["results"]["result_time"] == "2025-07-17T01:20:00.000Z"
    assert document["results"]["results_data"][0]["name"] == "Frosbie"
    state = state_from_document(json.loads(state_out.read_text()))
    assert state["race_id"] == race["race_id"]
    assert state["status"] == "final"


def test_open_poll_prints_money_flow_rows_with_column_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    poll = open_race_polls()[0]
    payload = tmp_path / "open.json"
    payload.write_bytes(poll.payload)
    code, out, err = _run(
        ["transform", str(payload), "--at", "2030-03-17T16:31:40+00:00", "--compact"], capsys
    )
    assert (code, err) == (0, "")
    assert out.count("\n") == 1
    rows = json.loads(out)["money_flow"]
    assert len(rows) == 8
    row = rows[0]
    for column in (
        "entrant_id",
        "time_interval",
        "time_to_start",
        "interval_type",
        "win_pool_amount",
        "place_pool_amount",
        "incremental_win_amount",
        "incremental_place_amount",
        "total_pool_amount",
        "is_baseline",
    ):
        assert column in row, column
    assert row["event_timestamp"] == "2030-03-17T16:31:40.000Z"
    assert (row["time_to_start"], row["time_interval"], row["interval_type"]) == (75, 60, "5m")
    assert all(row["is_baseline"] for row in rows)


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("2025-07-17T00:40:00", "--at: instant '2025-07-17T00:40:00' has no UTC offset (add Z or +12:00)"),
        ("soon", "--at: not an ISO-8601 instant: 'soon'"),
    ],
)
def test_bad_poll_time_is_one_line_exit_2(at: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["transform", str(RECORDED_EVENT), "--at", at], capsys)
    assert (code, out) == (2, "")
    assert err == f"raceday transform: {message}\n"


def test_missing_payload_file_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    code, out, err = _run(["transform", str(missing), "--at", AT], capsys)
    assert (code, out) == (2, "")
    assert err == f"raceday transform: cannot read payload {missing}: No such file or directory\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe", "is not valid JSON"),
        (b"[]", "state must be an object"),
        (b'{"race_id": "r", "buckets": [{"entrant_id": 1}]}', "state.buckets[0].entrant_id must be a string"),
        (b'{"race_id": "r", "start_time": 1752713400000}', "state.start_time must be a string"),
        (b'{"race_id": "r", "extra": 1}', "unknown keys: extra"),
    ],
)
def test_bad_state_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(content)
    code, out, err = _run(["transform", str(RECORDED_EVENT), "--at", AT, "--state", str(state)], capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith(f"raceday transform: state {state}")
    assert message in err


def test_state_of_another_race_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"race_id": "another-race"}')
    code, out, err = _run(["transform", str(RECORDED_EVENT), "--at", AT, "--state", str(state)], capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith(f"raceday transform: cannot transform {RECORDED_EVENT}: ")
    assert "another-race" in err


def test_missing_state_file_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "absent.json"
    code, out, err = _run(["transform", str(RECORDED_EVENT), "--at", AT, "--state", str(state)], capsys)
    assert (code, out) == (2, "")
    assert err == f"raceday transform: cannot read state {state}: No such file or directory\n"


def test_unwritable_state_out_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no-such-dir" / "state.json"
    code, out, err = _run(["transform", str(RECORDED_EVENT), "--at", AT, "--state-out", str(target)], capsys)
    assert (code, out) == (1, "")
    assert err == f"raceday transform: cannot write state to {target}: No such file or directory\n"


def test_help_documents_the_state_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        raceday(["transform", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--state-out" in out and "ISO-8601" in out and "buckets" in out


def test_real_process_prints_json_and_fails_without_traceback(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "services.cli", "transform", str(RECORDED_EVENT), "--at", AT, "--compact"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert tuple(json.loads(ok.stdout)) == UPDATE_KEYS

    broken = tmp_path / "broken.json"
    broken.write_bytes(RECORDED_EVENT.read_bytes()[:1000])
    failed = subprocess.run(
        [sys.executable, "-m", "services.cli", "transform", str(broken), "--at", AT],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert failed.stderr.count("\n") == 1
    assert failed.stderr.startswith(f"raceday transform: invalid payload {broken}: ")
    assert "Traceback" not in failed.stderr


def test_the_raceday_command_registers_transform_and_its_benchmark() -> None:
    from services.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["transform", str(RECORDED_EVENT), "--at", AT])
    assert args.handler is transform_cli.run
    args = parser.parse_args(["bench", "transform", "--iterations", "5"])
    assert args.handler is transform_bench.run
