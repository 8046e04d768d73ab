"""The transform's records as JSON documents, the form `raceday transform` reads and writes.

Field names are the storage column names (records.py). Instants are ISO-8601 UTC strings
with milliseconds (`2025-07-17T00:40:00.000Z`); a state document read back accepts any
ISO-8601 instant with an explicit offset. Upstream JSON documents inside the records
(runner_change, results_data, ...) are passed through untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from services.common.nztime import from_epoch_ms, to_epoch_ms
from services.transformer.records import (
    BucketLatestRecord,
    LastOddsRecord,
    PoolsRecord,
    PriorState,
    RaceUpdateRecord,
    empty_state,
)

T = TypeVar("T")

# Keys of the update document, in output order.
UPDATE_KEYS = ("race", "meeting", "entrants", "money_flow", "odds", "pools", "results", "quality", "moves")

# Record fields that hold instants (epoch ms in records, ISO strings in documents). Only the
# records' own fields are converted, never keys inside upstream documents.
INSTANT_FIELDS = frozenset(
    {
        "polled_at",
        "source_generated_at",
        "start_time",
        "actual_start",
        "scratch_time",
        "money_flow_at",
        "event_timestamp",
        "advertised_start",
        "last_updated",
        "result_time",
    }
)


class DocumentError(ValueError):
    """A JSON document does not have the expected shape; the message names the field."""


def iso_from_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds, e.g. 2025-07-17T00:40:00.000Z."""
    try:
        instant = from_epoch_ms(ms)
    except OverflowError:
        raise ValueError(f"instant {ms} ms since the epoch is outside years 1 to 9999") from None
    return f"{instant:%Y-%m-%dT%H:%M:%S}.{instant.microsecond // 1000:03d}Z"


def ms_from_iso(text: str) -> int:
    """Epoch ms of an ISO-8601 instant with an explicit offset (`Z` or `+12:00`).

    A time without an offset is refused: its meaning would depend on the machine's zone.
    """
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO-8601 instant: {text!r}") from None
    if instant.tzinfo is None:
        raise ValueError(f"instant {text!r} has no UTC offset (add Z or +12:00)")
    try:
        return to_epoch_ms(instant.astimezone(UTC))
    except OverflowError:
        raise ValueError(f"instant {text!r} is outside years 1 to 9999 in UTC") from None


def update_document(update: RaceUpdateRecord) -> dict[str, Any]:
    """The update as one JSON-ready object with exactly the keys of UPDATE_KEYS."""
    pools = update["pools"]
    results = update["results"]
    return {
        "race": _instants_to_iso(update["race"]),
        "meeting": _instants_to_iso(update["meeting"]),
        "entrants": [_instants_to_iso(entrant) for entrant in update["entrants"]],
        "money_flow": [_instants_to_iso(row) for row in update["money_flow"]],
        "odds": [_instants_to_iso(row) for row in update["odds"]],
        "pools": None if pools is None else _instants_to_iso(pools),
        "results": None if results is None else _instants_to_iso(results),
        "quality": [dict(finding) for finding in update["quality"]],
        "moves": [dict(move) for move in update["moves"]],
    }


def state_document(state: PriorState) -> dict[str, Any]:
    """A prior state as a JSON-ready object (the shape `state_from_document` reads)."""
    document = _instants_to_iso(state)
    document["buckets"] = [_instants_to_iso(bucket) for bucket in state["buckets"]]
    document["odds"] = [dict(odds) for odds in state["odds"]]
    pools = state["pools"]
    document["pools"] = None if pools is None else _instants_to_iso(pools)
    return document


def _instants_to_iso(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: iso_from_ms(value) if key in INSTANT_FIELDS and isinstance(value, int) else value
        for key, value in record.items()
    }


def state_from_document(document: object) -> PriorState:
    """Validate a state document and return the prior-state record.

    Missing keys take the values of a race never seen before; unknown keys and wrong
    types raise DocumentError naming the field.
    """
    root = _object(document, "state")
    _no_unknown_keys(root, frozenset(empty_state("").keys()), "state")
    race_id = _text(root.get("race_id"), "state.race_id")
    state = empty_state(race_id)
    if "buckets" in root:
        state["buckets"] = [
            _bucket(item, f"state.buckets[{index}]")
            for index, item in enumerate(_array(root["buckets"], "state.buckets"))
        ]
    if "odds" in root:
        state["odds"] = [
            _last_odds(item, f"state.odds[{index}]")
            for index, item in enumerate(_array(root["odds"], "state.odds"))
        ]
    state["status"] = _optional(root.get("status"), _text, "state.status")
    state["start_time"] = _optional(root.get("start_time"), _instant, "state.start_time")
    state["protest"] = _flag(root.get("protest", False), "state.protest")
    state["pools"] = _optional(root.get("pools"), _pools, "state.pools")
    state["photo_finish"] = _flag(root.get("photo_finish", False), "state.photo_finish")
    state["stewards_inquiry"] = _flag(root.get("stewards_inquiry", False), "state.stewards_inquiry")
    state["protest_lodged"] = _flag(root.get("protest_lodged", False), "state.protest_lodged")
    state["result_status"] = _optional(root.get("result_status"), _text, "state.result_status")
    state["result_time"] = _optional(root.get("result_time"), _instant, "state.result_time")
    return state


def _bucket(value: object, where: str) -> BucketLatestRecord:
    item = _object(value, where)
    _no_unknown_keys(item, frozenset(BucketLatestRecord.__annotations__), where)
    return {
        "entrant_id": _text(item.get("entrant_id"), f"{where}.entrant_id"),
        "time_interval": _integer(item.get("time_interval"), f"{where}.time_interval"),
        "polled_at": _instant(item.get("polled_at"), f"{where}.polled_at"),
        "row_id": _optional(item.get("row_id"), _integer, f"{where}.row_id"),
        "win_pool_amount": _integer(item.get("win_pool_amount"), f"{where}.win_pool_amount"),
        "place_pool_amount": _integer(item.get("place_pool_amount"), f"{where}.place_pool_amount"),
        # Absent from state files written before moves existed: a column without money or prices.
        "incremental_win_amount": _integer(
            item.get("incremental_win_amount", 0), f"{where}.incremental_win_amount"
        ),
        "incremental_place_amount": _integer(
            item.get("incremental_place_amount", 0), f"{where}.incremental_place_amount"
        ),
        "fixed_win_odds": _optional(item.get("fixed_win_odds"), _number, f"{where}.fixed_win_odds"),
        "pool_win_odds": _optional(item.get("pool_win_odds"), _number, f"{where}.pool_win_odds"),
    }


def _last_odds(value: object, where: str) -> LastOddsRecord:
    item = _object(value, where)
    _no_unknown_keys(item, frozenset(LastOddsRecord.__annotations__), where)
    if "odds" not in item:
        raise DocumentError(f"{where}.odds is required (null for a stored null)")
    return {
        "entrant_id": _text(item.get("entrant_id"), f"{where}.entrant_id"),
        "type": _text(item.get("type"), f"{where}.type"),
        "odds": _optional(item["odds"], _number, f"{where}.odds"),
    }


def _pools(value: object, where: str) -> PoolsRecord:
    item = _object(value, where)
    _no_unknown_keys(item, frozenset(PoolsRecord.__annotations__), where)
    return {
        "race_id": _text(item.get("race_id"), f"{where}.race_id"),
        "win_pool_total": _integer(item.get("win_pool_total"), f"{where}.win_pool_total"),
        "place_pool_total": _integer(item.get("place_pool_total"), f"{where}.place_pool_total"),
        "quinella_pool_total": _integer(item.get("quinella_pool_total"), f"{where}.quinella_pool_total"),
        "trifecta_pool_total": _integer(item.get("trifecta_pool_total"), f"{where}.trifecta_pool_total"),
        "exacta_pool_total": _integer(item.get("exacta_pool_total"), f"{where}.exacta_pool_total"),
        "first4_pool_total": _integer(item.get("first4_pool_total"), f"{where}.first4_pool_total"),
        "total_race_pool": _integer(item.get("total_race_pool"), f"{where}.total_race_pool"),
        "currency": _text(item.get("currency", "$"), f"{where}.currency"),
        "extracted_pools": _integer(item.get("extracted_pools"), f"{where}.extracted_pools"),
        "data_quality_score": _integer(item.get("data_quality_score"), f"{where}.data_quality_score"),
        "source": _text(item.get("source"), f"{where}.source"),
        "last_updated": _instant(item.get("last_updated"), f"{where}.last_updated"),
    }


def _optional(value: object, read: Callable[[object, str], T], where: str) -> T | None:
    return None if value is None else read(value, where)


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise DocumentError(f"{where} must be an object, got {_kind(value)}")
    return value


def _array(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise DocumentError(f"{where} must be an array, got {_kind(value)}")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise DocumentError(f"{where} must be a string, got {_kind(value)}")
    return value


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DocumentError(f"{where} must be an integer, got {_kind(value)}")
    if not -(2**63) <= value < 2**63:
        raise DocumentError(f"{where} is out of the 64-bit range: {value}")
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DocumentError(f"{where} must be a number, got {_kind(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise DocumentError(f"{where} must be a finite number, got {value}")
    return number


def _flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise DocumentError(f"{where} must be true or false, got {_kind(value)}")
    return value


def _instant(value: object, where: str) -> int:
    text = _text(value, where)
    try:
        return ms_from_iso(text)
    except ValueError as exc:
        raise DocumentError(f"{where}: {exc}") from None


def _no_unknown_keys(item: dict[str, object], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(item) - known)
    if unknown:
        raise DocumentError(f"{where} has unknown keys: {', '.join(unknown)}")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
