"""`raceday export --date D --format parquet|csv`: one NZ racing day's data as files for notebooks.

Six files, one per table, for the races of NZ date D (`races.race_date_nz`): races, entrants,
money_flow (money_flow_history), odds (odds_history), pools (race_pools) and results
(race_results). Every column is exported with its type: money stays integer cents (int64),
percentages and odds are decimals of the column's precision and scale, instants are UTC
timestamps, dates are dates, JSON columns are JSON text. The series rows are those of the
day's races within a day either side of their start (the range every series query uses,
storage §4), in the order they were written.

pyarrow writes the files; it is an optional dependency (`pip install 'raceday[export]'`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from psycopg import AsyncConnection, sql

from services.common.nztime import nz_day_bounds

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS: Final = ("parquet", "csv")

# Exported file -> (table, the day's rows of it, order).
_RACES: Final = "race_id IN (SELECT race_id FROM races WHERE race_date_nz = %(day)s)"
_SERIES: Final = _RACES + " AND event_timestamp >= %(lower)s AND event_timestamp < %(upper)s"
EXPORTS: Final = {
    "races": ("races", "race_date_nz = %(day)s", "start_time, race_id"),
    "entrants": ("entrants", _RACES, "race_id, runner_number, entrant_id"),
    "money_flow": ("money_flow_history", _SERIES, "id"),
    "odds": ("odds_history", _SERIES, "id"),
    "pools": ("race_pools", _RACES, "race_id"),
    "results": ("race_results", _RACES, "race_id"),
}


class ExportUnavailableError(RuntimeError):
    """pyarrow is not installed."""


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.csv
        import pyarrow.parquet
    except ImportError:
        raise ExportUnavailableError(
            "raceday export needs pyarrow: pip install 'raceday[export]' (or make install for development)"
        ) from None
    return pyarrow


@dataclass(frozen=True, slots=True)
class ExportedFile:
    """One file written."""

    name: str
    path: Path
    rows: int


# PostgreSQL type OIDs of the columns the schema uses.
_INT8, _INT4, _INT2, _BOOL, _NUMERIC = 20, 23, 21, 16, 1700
_TIMESTAMPTZ, _DATE, _JSON, _JSONB = 1184, 1082, 114, 3802


def _arrow_type(pa: Any, type_code: int, precision: int | None, scale: int | None) -> pa.DataType:
    if type_code == _INT8:
        return pa.int64()
    if type_code == _INT4:
        return pa.int32()
    if type_code == _INT2:
        return pa.int16()
    if type_code == _BOOL:
        return pa.bool_()
    if type_code == _NUMERIC:
        return pa.decimal128(precision or 38, scale or 0)
    if type_code == _TIMESTAMPTZ:
        return pa.timestamp("us", tz="UTC")
    if type_code == _DATE:
        return pa.date32()
    return pa.string()


def _cell(type_code: int, value: Any) -> Any:
    if value is not None and type_code in (_JSON, _JSONB):
        return json.dumps(value, sort_keys=True)
    return value


async def _table(conn: AsyncConnection[Any], pa: Any, name: str, params: dict[str, Any]) -> pa.Table:
    table, where, order = EXPORTS[name]
    query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY {}").format(
        sql.Identifier(table), sql.SQL(where), sql.SQL(order)
    )
    cur = await conn.execute(query, params)
    columns = list(cur.description or ())
    rows = await cur.fetchall()
    arrays = []
    fields = []
    for index, column in enumerate(columns):
        arrow_type = _arrow_type(pa, column.type_code, column.precision, column.scale)
        values = [_cell(column.type_code, row[index]) for row in rows]
        if arrow_type == pa.string():
            values = [None if v is None else str(v) for v in values]
        arrays.append(pa.array(values, type=arrow_type))
        fields.append(pa.field(column.name, arrow_type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


async def export_day(conn: AsyncConnection[Any], day: date, fmt: str, out: Path) -> list[ExportedFile]:
    """Write the day's six files into `out` (created); what was written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    pa = _pyarrow()
    lower, upper = nz_day_bounds(day)
    # A race's rows lie within a day of its start; its start lies within its NZ day.
    params = {"day": day, "lower": lower - (upper - lower), "upper": upper + (upper - lower)}
    tables = {name: await _table(conn, pa, name, params) for name in EXPORTS}
    return await asyncio.to_thread(_write, pa, tables, day, fmt, out)


def _write(pa: Any, tables: dict[str, Any], day: date, fmt: str, out: Path) -> list[ExportedFile]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[ExportedFile] = []
    for name, table in tables.items():
        path = out / f"{name}_{day.isoformat()}.{fmt}"
        if fmt == "parquet":
            pa.parquet.write_table(table, path)
        else:
            pa.csv.write_csv(table, path)
        written.append(ExportedFile(name=name, path=path, rows=table.num_rows))
    return written
