"""Data-quality checks of one poll (§11) for the reference transform."""

from __future__ import annotations

from services.common.status import TERMINAL_STATUSES
from services.transformer.records import PoolsRecord, PriorState, RaceRecord
from services.transformer.refjson import PRODUCTS, Findings
from services.transformer.refsections import Runner, Tracker, totals


def quality_checks(
    race: RaceRecord,
    *,
    runners: list[Runner],
    tracker: Tracker | None,
    pools: PoolsRecord | None,
    prior: PriorState,
    out: Findings,
) -> None:
    """Adds the §11 findings of this poll to `out`."""
    is_open = race["status"] == "open"
    if tracker is not None:
        s = 0.0
        for h in tracker.hold.values():
            s += h
        if s != 0.0 and abs(s - 100.0) > 5.0:
            message = "hold percentages over all money-tracker ids do not sum to 100 ± 5"
            out.add("hold_sum", "warning", message, s)
        if tracker.unknown_ids > 0:
            n = tracker.unknown_ids
            out.add("unknown_tracker_ids", "info", f"{n} money-tracker ids are not runners", float(n))
        if tracker.invalid_rows > 0:
            n = tracker.invalid_rows
            out.add(
                "invalid_tracker_rows",
                "warning",
                f"{n} money-tracker rows have a missing entrant_id or a missing, non-numeric, "
                "negative or out-of-range percentage",
                float(n),
            )
    win = pools["win_pool_total"] if pools is not None else 0
    place = pools["place_pool_total"] if pools is not None else 0
    if is_open:
        if win == 0:
            out.add("win_place_pools", "warning", "win pool total is absent or 0")
        if place == 0:
            out.add("win_place_pools", "warning", "place pool total is absent or 0")
    if pools is not None and place > 3 * win:
        out.add("pool_ratio", "info", "place pool total exceeds 3 × the win pool total")
    previous = prior["pools"]
    if is_open and pools is not None and previous is not None:
        for name, c, p in zip(PRODUCTS, totals(pools), totals(previous), strict=True):
            if c < p and (p - c) * 100 > p:
                out.add("pools_shrink", "warning", f"{name} pool total fell from {p} to {c} cents")
    n = len(runners)
    if not 2 <= n <= 40:
        out.add("field_size", "warning", f"field has {n} runners", float(n))
    prev_status = prior["status"]
    if prev_status in TERMINAL_STATUSES and race["status"] not in TERMINAL_STATUSES:
        out.add("status_regression", "warning", f"status went from {prev_status} to {race['status']}")
    old = prior["start_time"]
    if old is not None and old != race["start_time"]:
        out.add(
            "start_time_change",
            "info",
            f"advertised start changed from {old} to {race['start_time']} (epoch ms)",
        )
