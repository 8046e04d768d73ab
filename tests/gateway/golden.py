"""The golden files shared by the gateway's classifier, the dashboard and the writer's move detection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.common.proto.raceday.v1 import query_pb2

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CLASSIFICATION = FIXTURES / "alert_classification_golden.json"
# Written with the server's move detection (issue 14); the dashboard's indicator values must match it.
MOVES = FIXTURES / "moves_golden.json"


def load(path: Path) -> dict[str, Any]:
    """A golden file; a missing one fails the test that needs it, naming the file."""
    assert path.exists(), f"golden file {path.relative_to(FIXTURES.parents[1])} is missing"
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def indicators(config: list[dict[str, Any]]) -> list[query_pb2.AlertIndicator]:
    """A golden config's indicators as the writer returns them."""
    result = []
    for item in config:
        indicator = query_pb2.AlertIndicator(
            display_order=item["display_order"],
            percentage_range_min=item["percentage_range_min"],
            color=item["color"],
            enabled=item["enabled"],
        )
        if item["percentage_range_max"] is not None:
            indicator.percentage_range_max = item["percentage_range_max"]
        result.append(indicator)
    return result
