"""What a recorded poll sequence stores is exactly what the code before the hot-path rewrite stored.

The goldens were recorded from commit 47f0bbe with `python -m tests.stored_rows --tree DIR`;
see tests/stored_rows.py for the sequence and what is compared (every column of every table
the write path touches, but the instants that record when a row was written).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.stored_rows import GOLDEN, record

ROOT = Path(__file__).resolve().parent.parent
# Columns added since the goldens were recorded, by table: compared by what they must hold.
ADDED_COLUMNS = {"race_polls": {"generated_at"}}


def _first_difference(table: str, expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> str:
    if len(expected) != len(actual):
        return f"{table}: {len(actual)} rows stored, {len(expected)} expected"
    for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
        columns = sorted(name for name in want.keys() | got.keys() if want.get(name) != got.get(name))
        if columns:
            detail = ", ".join(f"{name}: {got.get(name)!r} != {want.get(name)!r}" for name in columns[:3])
            return f"{table} row {index}: {detail}"
    return ""


async def test_the_recorded_sequence_stores_the_golden_rows(fresh_database_url: str) -> None:
    golden = json.loads(GOLDEN.read_text())
    stored = await record(ROOT, Path(sys.executable), fresh_database_url)
    assert stored["written"] == golden["written"]
    assert set(stored["tables"]) == set(golden["tables"])
    for table, added in ADDED_COLUMNS.items():
        for row in stored["tables"][table]:
            assert set(row) - set(golden["tables"][table][0]) == added
    # Every poll of the sequence carries the generated_time of its payload's header.
    assert all(row["generated_at"] for row in stored["tables"]["race_polls"])
    stored_without_added = {
        table: [{k: v for k, v in row.items() if k not in ADDED_COLUMNS.get(table, set())} for row in rows]
        for table, rows in stored["tables"].items()
    }
    differences = [
        _first_difference(table, rows, stored_without_added[table])
        for table, rows in golden["tables"].items()
    ]
    assert not any(differences), "\n".join(d for d in differences if d)
    # The sequence exercises what it is meant to: series rows, results and a re-delivery.
    assert len(stored["tables"]["money_flow_history"]) > 100 and stored["tables"]["race_results"]
    assert stored["written"].count(False) == 1
