"""Conversions between the transform's plain records and the protobuf messages.

The service never takes this path: the Rust core encodes the response itself
(`raceday_core.transform_encoded`). This is the records path it must equal byte for byte
(tests/transformer/test_encoded.py), and the way tools turn records into messages.

The records (`records.py`) carry instants as epoch milliseconds and JSON documents as
Python values; the messages carry `google.protobuf.Timestamp`s and JSON text in the
`*_json` fields. A record key with no matching message field is a programming error and
raises at once, so a record shape and the proto cannot drift apart silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypeVar, cast

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.common import timestamps
from services.common.proto.raceday.v1 import race_pb2
from services.common.timestamps import ms_from_timestamp
from services.transformer.records import (
    BucketLatestRecord,
    LastOddsRecord,
    PoolsRecord,
    PriorState,
    RaceUpdateRecord,
)

M = TypeVar("M", bound=Message)

_TIMESTAMP = "google.protobuf.Timestamp"
# The range a Timestamp can hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z.
MIN_TIMESTAMP_MS = -62_135_596_800_000
MAX_TIMESTAMP_MS = 253_402_300_799_999


class ConversionError(ValueError):
    """A record value does not fit its message field (an instant or integer out of range)."""


def timestamp_from_ms(ms: int) -> Timestamp:
    """A Timestamp from epoch milliseconds; ConversionError outside years 1..9999."""
    if not MIN_TIMESTAMP_MS <= ms <= MAX_TIMESTAMP_MS:
        raise ConversionError(f"instant {ms} ms since the epoch is outside years 1 to 9999")
    return timestamps.timestamp_from_ms(ms)


def json_text(value: object) -> str:
    """Compact JSON text of a document, as stored in the `*_json` fields."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def update_to_proto(update: RaceUpdateRecord) -> race_pb2.RaceUpdate:
    """The RaceUpdate message of a transform's output record."""
    return _build(race_pb2.RaceUpdate, update)


def state_to_proto(state: PriorState) -> race_pb2.RaceState:
    """The RaceState message of a prior-state record."""
    return _build(race_pb2.RaceState, state)


def state_from_proto(message: race_pb2.RaceState) -> PriorState:
    """The prior-state record of a RaceState message (absent optionals become None)."""
    return {
        "race_id": message.race_id,
        "buckets": [_bucket_from_proto(bucket) for bucket in message.buckets],
        "odds": [_odds_from_proto(odds) for odds in message.odds],
        "status": message.status if message.HasField("status") else None,
        "start_time": ms_from_timestamp(message.start_time) if message.HasField("start_time") else None,
        "protest": message.protest,
        "pools": pools_from_proto(message.pools) if message.HasField("pools") else None,
        "photo_finish": message.photo_finish,
        "stewards_inquiry": message.stewards_inquiry,
        "protest_lodged": message.protest_lodged,
        "result_status": message.result_status if message.HasField("result_status") else None,
        "result_time": ms_from_timestamp(message.result_time) if message.HasField("result_time") else None,
    }


def pools_from_proto(message: race_pb2.RacePools) -> PoolsRecord:
    """The pool-totals record of a RacePools message."""
    return {
        "race_id": message.race_id,
        "win_pool_total": message.win_pool_total,
        "place_pool_total": message.place_pool_total,
        "quinella_pool_total": message.quinella_pool_total,
        "trifecta_pool_total": message.trifecta_pool_total,
        "exacta_pool_total": message.exacta_pool_total,
        "first4_pool_total": message.first4_pool_total,
        "total_race_pool": message.total_race_pool,
        "currency": message.currency,
        "extracted_pools": message.extracted_pools,
        "data_quality_score": message.data_quality_score,
        "source": message.source,
        "last_updated": ms_from_timestamp(message.last_updated),
    }


def _bucket_from_proto(message: race_pb2.BucketLatest) -> BucketLatestRecord:
    return {
        "entrant_id": message.entrant_id,
        "time_interval": message.time_interval,
        "polled_at": ms_from_timestamp(message.polled_at),
        "row_id": message.row_id if message.HasField("row_id") else None,
        "win_pool_amount": message.win_pool_amount,
        "place_pool_amount": message.place_pool_amount,
        "incremental_win_amount": message.incremental_win_amount,
        "incremental_place_amount": message.incremental_place_amount,
        "fixed_win_odds": message.fixed_win_odds if message.HasField("fixed_win_odds") else None,
        "pool_win_odds": message.pool_win_odds if message.HasField("pool_win_odds") else None,
    }


def _odds_from_proto(message: race_pb2.LastOdds) -> LastOddsRecord:
    return {
        "entrant_id": message.entrant_id,
        "type": message.type,
        "odds": message.odds if message.HasField("odds") else None,
    }


# How each message field is filled from a record value (planned once per message type).
_SCALAR, _REPEATED_SCALAR, _INSTANT, _JSON, _MESSAGE, _REPEATED_MESSAGE = range(6)
_Plan = dict[str, tuple[str, int, Descriptor | None]]
_PLANS: dict[str, _Plan] = {}


def _build(message_class: type[M], record: Mapping[str, object]) -> M:
    """A message from a record in one constructor call (nested records become nested dicts).

    None leaves an optional field absent; an int under a Timestamp field is epoch ms; a key
    `k` without a field of its own goes to the JSON-text field `k_json`. Building the whole
    tree in one call is several times faster than setting fields one by one.
    """
    try:
        kwargs = _kwargs(cast(Descriptor, message_class.DESCRIPTOR), record)
    except _FieldError as exc:
        raise ConversionError(f"{exc.where()}: {exc.problem}") from None
    try:
        return message_class(**kwargs)
    except (TypeError, ValueError) as exc:
        # The constructor's message does not say which field failed: find it for the caller.
        raise ConversionError(f"{_locate(message_class, kwargs, '')}: {exc}") from None


class _FieldError(Exception):
    """A value that cannot be converted; the path is filled in on the way out."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []

    def at(self, part: str) -> _FieldError:
        self.path.insert(0, part)
        return self

    def where(self) -> str:
        return "".join(
            part if part.startswith("[") or not index else f".{part}" for index, part in enumerate(self.path)
        )


def _plan(descriptor: Descriptor) -> _Plan:
    plan = _PLANS.get(descriptor.full_name)
    if plan is not None:
        return plan
    plan = {}
    for field in descriptor.fields:
        sub = field.message_type
        if sub is None:
            plan[field.name] = (field.name, _REPEATED_SCALAR if field.is_repeated else _SCALAR, None)
            if field.name.endswith("_json"):
                plan[field.name.removesuffix("_json")] = (field.name, _JSON, None)
        elif sub.full_name == _TIMESTAMP and not field.is_repeated:
            plan[field.name] = (field.name, _INSTANT, None)
        else:
            plan[field.name] = (field.name, _REPEATED_MESSAGE if field.is_repeated else _MESSAGE, sub)
    _PLANS[descriptor.full_name] = plan
    return plan


def _kwargs(descriptor: Descriptor, record: Mapping[str, object]) -> dict[str, object]:
    plan = _plan(descriptor)
    kwargs: dict[str, object] = {}
    for key, value in record.items():
        entry = plan.get(key)
        if entry is None:
            raise KeyError(f"{descriptor.full_name} has no field for record key {key!r}")
        if value is None:
            continue
        name, kind, sub = entry
        if kind == _SCALAR:
            kwargs[name] = value
            continue
        try:
            kwargs[name] = _convert(kind, sub, value)
        except _FieldError as exc:
            raise exc.at(key) from None
    return kwargs


def _convert(kind: int, sub: Descriptor | None, value: object) -> object:
    if kind == _INSTANT:
        return _instant(value)
    if kind == _JSON:
        try:
            return json_text(value)
        except (TypeError, ValueError) as exc:
            raise _FieldError(str(exc)) from None
    if kind == _REPEATED_SCALAR:
        return _items(value)
    if sub is None:
        raise _FieldError("no message type")
    if kind == _MESSAGE:
        return _kwargs(sub, _mapping(value))
    items = []
    for index, item in enumerate(_items(value)):
        try:
            items.append(_kwargs(sub, _mapping(item)))
        except _FieldError as exc:
            raise exc.at(f"[{index}]") from None
    return items


def _instant(value: object) -> dict[str, int]:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FieldError(f"expected epoch milliseconds, got {type(value).__name__}")
    if not MIN_TIMESTAMP_MS <= value <= MAX_TIMESTAMP_MS:
        raise _FieldError(f"instant {value} ms since the epoch is outside years 1 to 9999")
    # Floor division keeps nanos in [0, 1e9) for instants before 1970, as Timestamp requires.
    return {"seconds": value // 1000, "nanos": value % 1000 * 1_000_000}


def _locate(message_class: type[Message], kwargs: Mapping[str, object], path: str) -> str:
    """The path of the first field the constructor refuses (only called after a failure)."""
    for key, value in kwargs.items():
        try:
            message_class(**{key: value})
        except (TypeError, ValueError):
            pass
        else:
            continue
        where = f"{path}{key}"
        if isinstance(value, dict):
            return _locate(type(getattr(message_class(), key)), value, f"{where}.")
        if isinstance(value, list) and value and isinstance(value[0], dict):
            item_class = type(getattr(message_class(), key).add())
            for index, item in enumerate(value):
                try:
                    item_class(**item)
                except (TypeError, ValueError):
                    return _locate(item_class, item, f"{where}[{index}].")
        return where
    return path.rstrip(".") or message_class.DESCRIPTOR.name


def _items(value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise _FieldError(f"expected a list, got {type(value).__name__}")
    return list(value)


def _mapping(value: object) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise _FieldError(f"expected a record, got {type(value).__name__}")
    return value
