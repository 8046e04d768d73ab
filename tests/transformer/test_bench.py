"""`raceday bench transform` reports figures as JSON and fails when a check fails.

Only the plumbing is tested here, with a handful of iterations: the figures themselves
come from running the benchmark, never from a timed unit test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.transformer.conftest import raceday
from tests.transformer.payloads import RECORDED_EVENT


def _bench(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = raceday(["bench", "transform", "--iterations", "3", "--warmup", "1", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_report_has_both_engines_and_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _bench(["--json", "--min-ratio", "0", "--payload", str(RECORDED_EVENT)], capsys)
    report = json.loads(out)
    assert code == 0, report["failures"]
    assert report["ok"] is True
    assert set(report["cases"]) == {"final", "open"}
    for case in report["cases"].values():
        assert case["identical"] is True
        assert case["rust"]["median_ms"] > 0 and case["reference"]["median_ms"] > 0
        assert case["rust"]["p95_ms"] >= case["rust"]["median_ms"]
        assert case["ratio"] == case["reference"]["median_ms"] / case["rust"]["median_ms"]
    assert report["cases"]["final"]["money_flow_rows"] == 0
    assert report["cases"]["open"]["money_flow_rows"] == 8


def test_a_ratio_below_the_threshold_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _bench(["--min-ratio", "1e9"], capsys)
    assert code == 1
    assert "FAILED: final: ratio" in out and "FAILED: open: ratio" in out


def test_a_run_that_fails_makes_the_benchmark_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"data": {"race": {}}}')
    code, out, _ = _bench(["--json", "--min-ratio", "0", "--payload", str(broken)], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["failures"]


def test_a_missing_payload_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _bench(["--payload", str(tmp_path / "none.json")], capsys)
    assert code == 2
    assert err.startswith("raceday bench transform: cannot read")
