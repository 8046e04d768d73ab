"""Moves (rest-api.md §4.1) for the reference transform: an oracle written from the dashboard's rule.

This follows services/gateway/static/js/indicators.js (moneyIndicatorValues and
oddsIndicatorValues) for the one column a poll lands in, independently of the Rust core's
`moves.rs`. The arithmetic is the same: shares are `positive * 100 / total` with exact integer
cents (every value involved is below 2**53, so Python's int arithmetic and true division give
the same doubles as the browser's), and the price move is `(before - now) * 100 / before`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from services.transformer.records import MoveCell, MoveRecord, MoveRunner

# The timeline's columns before the start; post-start columns -1, -2, ... follow 0.
PRE_START_COLUMNS = (60, 55, 50, 45, 40, 35, 30, 25, 20, 15, 10, 5, 4, 3, 2, 1, 0)
KINDS = ("win_money", "place_money", "win_price")
AmountKey = Literal["incremental_win_amount", "incremental_place_amount"]


def previous_column(b: int) -> int | None:
    """The column before `b` in the timeline, or None for the first one."""
    if b in PRE_START_COLUMNS:
        index = PRE_START_COLUMNS.index(b)
        return PRE_START_COLUMNS[index - 1] if index > 0 else None
    return b + 1 if b < 0 else None


def _price(cell: MoveCell | None) -> float | None:
    """Fixed win price, else the tote one (a fixed price of 0 is kept, as `??` keeps it)."""
    if cell is None:
        return None
    return cell["fixed_win_odds"] if cell["fixed_win_odds"] is not None else cell["pool_win_odds"]


def moves(
    time_interval: int,
    runners: Sequence[MoveRunner],
    previous: Mapping[str, MoveCell],
    current: Mapping[str, MoveCell],
) -> list[MoveRecord]:
    """Every defined move of column `time_interval` against the one before it.

    Runner order, then win_money, place_money, win_price; scratched runners count in
    neither column, a runner without a row in a column has 0 there and no price.
    """
    before = previous_column(time_interval)
    if before is None:
        return []
    ids = [runner["entrant_id"] for runner in runners if not runner["scratched"]]

    def shares(column: Mapping[str, MoveCell], key: AmountKey) -> dict[str, float] | None:
        positive = {i: max(0, column[i][key]) if i in column else 0 for i in ids}
        total = sum(positive.values())
        return {i: value * 100 / total for i, value in positive.items()} if total > 0 else None

    money: dict[str, tuple[dict[str, float] | None, dict[str, float] | None]] = {
        "win_money": (shares(previous, "incremental_win_amount"), shares(current, "incremental_win_amount")),
        "place_money": (
            shares(previous, "incremental_place_amount"),
            shares(current, "incremental_place_amount"),
        ),
    }
    out: list[MoveRecord] = []
    for entrant_id in ids:
        values: dict[str, float] = {}
        for kind, (old, new) in money.items():
            if old is not None and new is not None:
                values[kind] = new[entrant_id] - old[entrant_id]
        old_price, new_price = _price(previous.get(entrant_id)), _price(current.get(entrant_id))
        if old_price is not None and new_price is not None and old_price > 0:
            values["win_price"] = (old_price - new_price) * 100 / old_price
        out.extend(
            {
                "entrant_id": entrant_id,
                "kind": kind,
                "time_interval": time_interval,
                "previous_interval": before,
                "value": values[kind],
            }
            for kind in KINDS
            if kind in values
        )
    return out
