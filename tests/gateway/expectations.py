"""What the dashboard should show, computed independently from the API's JSON (rest-api.md §4.1)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

PRE_START = (60, 55, 50, 45, 40, 35, 30, 25, 20, 15, 10, 5, 4, 3, 2, 1, 0)
THRESHOLD = 5.0


def columns(documents: Sequence[Mapping[str, Any]]) -> list[int]:
    """Timeline columns: 60…0, then -1 down to the lowest post-start interval present."""
    lowest = min([0, *(doc["time_interval"] for doc in documents)])
    return [*PRE_START, *range(-1, lowest - 1, -1)]


def cell_text(doc: Mapping[str, Any] | None, view: str) -> str:
    """A cell's text: whole dollars (baseline in full, then +$), or the fixed win odds."""
    if doc is None:
        return "—"
    if view == "odds":
        price = _win_price(doc)
        return "—" if price is None else f"{price:.2f}"
    cents = doc["incremental_place_amount" if view == "place" else "incremental_win_amount"]
    if cents <= 0:
        return "—"
    dollars = f"{(cents + 50) // 100:,}"
    return f"${dollars}" if doc["is_baseline"] else f"+${dollars}"


def pick(indicators: Sequence[Mapping[str, Any]], value: float | None) -> int | None:
    """display_order of the first enabled indicator whose range holds `value` (>= 5)."""
    if value is None or value < THRESHOLD:
        return None
    for item in sorted(indicators, key=lambda entry: entry["display_order"]):
        if not item["enabled"]:
            continue
        maximum = item["percentage_range_max"]
        if value >= item["percentage_range_min"] and (maximum is None or value < maximum):
            return int(item["display_order"])
    return None


def _win_price(doc: Mapping[str, Any] | None) -> float | None:
    """Fixed win odds, else the tote's (a fixed price of 0 is a price, as in indicators.js)."""
    if doc is None:
        return None
    price = doc["fixed_win_odds"] if doc["fixed_win_odds"] is not None else doc["pool_win_odds"]
    return None if price is None else float(price)


def expected_indicators(
    documents: Sequence[Mapping[str, Any]],
    entrants: Sequence[Mapping[str, Any]],
    indicators: Sequence[Mapping[str, Any]],
    view: str,
) -> dict[tuple[str, int], int]:
    """(entrant_id, interval) → display_order of every cell the rule colours."""
    cells = {(doc["entrant_id"], doc["time_interval"]): doc for doc in documents}
    runners = [item["entrant_id"] for item in entrants if not item["is_scratched"]]
    cols = columns(documents)
    result: dict[tuple[str, int], int] = {}
    if view == "odds":
        for before, now in itertools.pairwise(cols):
            for runner in runners:
                old, new = cells.get((runner, before)), cells.get((runner, now))
                old_price, new_price = _win_price(old), _win_price(new)
                if old_price is None or new_price is None or old_price <= 0:
                    continue
                order = pick(indicators, (old_price - new_price) * 100 / old_price)
                if order is not None:
                    result[(runner, now)] = order
        return result
    key = "incremental_place_amount" if view == "place" else "incremental_win_amount"

    def shares(column: int) -> tuple[int, dict[str, float]]:
        positive = {
            runner: max(0, cells[(runner, column)][key]) if (runner, column) in cells else 0
            for runner in runners
        }
        total = sum(positive.values())
        return total, {runner: (value * 100 / total if total else 0.0) for runner, value in positive.items()}

    for before, now in itertools.pairwise(cols):
        previous_total, previous = shares(before)
        current_total, current = shares(now)
        if previous_total == 0 or current_total == 0:
            continue
        for runner in runners:
            order = pick(indicators, current[runner] - previous[runner])
            if order is not None:
                result[(runner, now)] = order
    return result
