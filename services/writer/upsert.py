"""Multi-row upserts that skip unchanged rows (storage §6.2, §6.4).

Rows travel as one JSON array parameter expanded by `json_to_recordset` with typed
columns, so a statement has a fixed text and a single parameter whatever the row count
(psycopg prepares it after a few uses); building the document is one C-level json.dumps,
several times cheaper than adapting one array parameter per column.
`ON CONFLICT DO UPDATE ... WHERE (stored) IS DISTINCT
FROM (incoming)` leaves unchanged rows untouched, so `updated_at` means "last real
change". Each column says how a conflict treats it:

- `set`: the incoming value replaces the stored one (null included);
- `keep`: the incoming value replaces the stored one unless it is null (absent);
- `insert`: written on insert only;
- `custom`: an explicit expression over `t` (the stored row) and `EXCLUDED`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar

from psycopg import sql

from services.common.logs import log_event

logger = logging.getLogger(__name__)

CHUNK_ROWS = 1000

Mode = Literal["set", "keep", "insert", "custom"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Col:
    """One column of an upsert: its type in the JSON record, an optional cast and its conflict mode."""

    name: str
    param_type: str
    cast: str | None = None
    mode: Mode = "set"
    expr: str | None = None


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} in an upsert document")


def rows_document(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """The JSON array of row objects restricted to `names` (instants as ISO-8601 with offset)."""
    return json.dumps(
        [{n: row[n] for n in names} for row in rows], default=_json_default, separators=(",", ":")
    )


@dataclass(frozen=True, slots=True)
class Upsert:
    """A compiled multi-row upsert over `table` keyed by `key`."""

    table: str
    key: tuple[str, ...]
    columns: tuple[Col, ...]
    # Rendered once: composing a statement of this size on every execution costs a millisecond.
    query: bytes

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in parameter order."""
        return tuple(c.name for c in self.columns)

    def params(self, rows: Sequence[dict[str, Any]]) -> tuple[str]:
        """The statement's single parameter: the rows as a JSON document."""
        return (rows_document(rows, self.names),)


def _update_expr(col: Col) -> sql.Composable:
    name = sql.Identifier(col.name)
    if col.mode == "set":
        return sql.SQL("EXCLUDED.{}").format(name)
    if col.mode == "keep":
        return sql.SQL("COALESCE(EXCLUDED.{0}, t.{0})").format(name)
    if col.mode == "custom" and col.expr is not None:
        return sql.SQL(col.expr)
    raise ValueError(f"column {col.name} has no update expression")


def build_upsert(
    table: str, key: Sequence[str], columns: Sequence[Col], *, returning: Sequence[str] = ()
) -> Upsert:
    """Compile the statement once (at import time of the caller)."""
    cols = tuple(columns)
    names = [sql.Identifier(c.name) for c in cols]
    select_items = [
        sql.SQL("s.{}::{}").format(sql.Identifier(c.name), sql.SQL(c.cast))
        if c.cast
        else sql.SQL("s.{}").format(sql.Identifier(c.name))
        for c in cols
    ]
    record = [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.param_type)) for c in cols]
    updated = [c for c in cols if c.mode != "insert" and c.name not in key]
    set_items = [sql.SQL("{} = {}").format(sql.Identifier(c.name), _update_expr(c)) for c in updated]
    stored = [sql.SQL("t.{}").format(sql.Identifier(c.name)) for c in updated]
    incoming = [_update_expr(c) for c in updated]
    query = sql.SQL(
        "INSERT INTO {table} AS t ({names}) SELECT {select} FROM json_to_recordset(%s::json) AS s ({record}) "
        "ON CONFLICT ({key}) DO UPDATE SET {sets}, updated_at = now() "
        "WHERE ({stored}) IS DISTINCT FROM ({incoming})"
    ).format(
        table=sql.Identifier(table),
        names=sql.SQL(", ").join(names),
        select=sql.SQL(", ").join(select_items),
        record=sql.SQL(", ").join(record),
        key=sql.SQL(", ").join(sql.Identifier(k) for k in key),
        sets=sql.SQL(", ").join(set_items),
        stored=sql.SQL(", ").join(stored),
        incoming=sql.SQL(", ").join(incoming),
    )
    if returning:
        query = query + sql.SQL(" RETURNING {}").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(r)) for r in returning)
        )
    return Upsert(table=table, key=tuple(key), columns=cols, query=query.as_bytes(None))


def dedupe(rows: Sequence[T], key: Callable[[T], object], *, what: str) -> list[T]:
    """Rows with unique keys, the last occurrence winning; a warning names each duplicate."""
    by_key: dict[object, T] = {}
    for row in rows:
        k = key(row)
        if k in by_key:
            log_event(logger, "duplicate_key_in_batch", logging.WARNING, what=what, key=str(k))
            del by_key[k]  # re-insert so the survivor keeps the position of its last occurrence
        by_key[k] = row
    return list(by_key.values())


def chunks(rows: Sequence[T], size: int = CHUNK_ROWS) -> list[Sequence[T]]:
    """Consecutive slices of at most `size` rows."""
    return [rows[i : i + size] for i in range(0, len(rows), size)]
