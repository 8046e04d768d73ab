"""`raceday export`: a racing day's six tables as Parquet and CSV files that pyarrow and pandas open,
with every row of the day's races (and none of another day's) and money in integer cents."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from services.writer.db import Database
from services.writer.export import EXPORTS, export_day
from services.writer.maintenance import PartitionMaintainer
from tests.writer.builder import START, fetch, minutes_before, new_race, poll, raceday, write

DAY = date(2025, 7, 17)


async def _day_with_races(db: Database, maintainer: PartitionMaintainer) -> str:
    race = new_race()
    previous = None
    for index, minutes in enumerate((30, 10, 2)):
        update = poll(race, minutes_before(START, minutes), index=index, previous=previous)
        await write(db, maintainer, update)
        previous = update
    final = poll(
        race, START + timedelta(minutes=8), index=3, status="final", previous=previous, with_results=True
    )
    await write(db, maintainer, final)
    # Another NZ day's race: not exported.
    other = new_race(start=START + timedelta(days=3))
    await write(db, maintainer, poll(other, minutes_before(START + timedelta(days=3), 5)))
    return race.race_id


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
async def test_a_day_exports_to_files_pyarrow_and_pandas_open(
    db: Database, maintainer: PartitionMaintainer, tmp_path: Path, fmt: str
) -> None:
    race_id = await _day_with_races(db, maintainer)
    async with db.read_connection() as conn:
        files = await export_day(conn, DAY, fmt, tmp_path)
    assert [f.name for f in files] == list(EXPORTS)
    expected = {
        name: (await fetch(db, f"SELECT count(*) FROM {table} WHERE race_id = %s", race_id))[0][0]
        for name, (table, _, _) in EXPORTS.items()
    }
    assert {f.name: f.rows for f in files} == expected
    assert expected["money_flow"] == 48 and expected["results"] == 1
    stored = await fetch(
        db,
        "SELECT win_pool_amount, incremental_win_amount, hold_percentage FROM money_flow_history "
        "WHERE race_id = %s ORDER BY id",
        race_id,
    )
    for exported in files:
        frame = pd.read_parquet(exported.path) if fmt == "parquet" else pd.read_csv(exported.path)
        assert len(frame) == exported.rows
        if fmt == "parquet":
            assert pq.read_table(exported.path).num_rows == exported.rows
        if exported.name == "money_flow":
            assert set(frame["race_id"]) == {race_id}
            # Money is integer cents in both formats; percentages keep their two decimals.
            assert str(frame["win_pool_amount"].dtype) == "int64"
            assert list(frame["win_pool_amount"]) == [row[0] for row in stored]
            assert list(frame["incremental_win_amount"]) == [row[1] for row in stored]
            holds = [Decimal(str(value)).quantize(Decimal("0.01")) for value in frame["hold_percentage"]]
            assert holds == [row[2] for row in stored]
    if fmt == "parquet":
        schema = pq.read_schema(tmp_path / f"money_flow_{DAY}.parquet")
        assert str(schema.field("hold_percentage").type) == "decimal128(5, 2)"
        assert str(schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
        results = pd.read_parquet(tmp_path / f"results_{DAY}.parquet")
        assert str(results.loc[0, "results_data"]).startswith("[")  # JSON text


async def test_an_unknown_format_is_refused(db: Database, tmp_path: Path) -> None:
    async with db.read_connection() as conn:
        with pytest.raises(ValueError, match="format"):
            await export_day(conn, DAY, "xlsx", tmp_path)


async def test_the_export_command_writes_the_files(
    db: Database, maintainer: PartitionMaintainer, migrated_database_url: str, tmp_path: Path
) -> None:
    await _day_with_races(db, maintainer)
    code, output = await raceday(
        ["export", "--date", DAY.isoformat(), "--format", "csv", "--out", str(tmp_path)],
        migrated_database_url,
    )
    assert code == 0, output
    assert f"money_flow_{DAY}.csv: 48 rows" in output
    for name in EXPORTS:
        assert f"{tmp_path / f'{name}_{DAY}.csv'}: " in output
