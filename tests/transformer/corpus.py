"""A corpus of malformed event payloads, each a different way a body can be broken.

Every entry must be refused with one clear message (never a panic, never a traceback)
by the service (INVALID_ARGUMENT) and by `raceday transform` (exit 2, one stderr line).
`hint` is a word the message must contain, so the message points at the problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.transformer.payloads import recorded_document, recorded_payload


@dataclass(frozen=True, slots=True)
class Malformed:
    """One broken payload."""

    kind: str
    payload: bytes
    hint: str


def _race(change: Callable[[dict[str, Any]], None]) -> bytes:
    document = recorded_document()
    change(document["data"]["race"])
    return json.dumps(document).encode()


def _data(change: Callable[[dict[str, Any]], None]) -> bytes:
    document = recorded_document()
    change(document["data"])
    return json.dumps(document).encode()


def _root(change: Callable[[dict[str, Any]], None]) -> bytes:
    document = recorded_document()
    change(document)
    return json.dumps(document).encode()


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(item: dict[str, Any]) -> None:
        item[key] = value

    return change


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def change(item: dict[str, Any]) -> None:
        del item[key]

    return change


def _advertised_start_text(replacement: str) -> bytes:
    """The recording with advertised_start's number replaced by raw JSON text (e.g. NaN)."""
    text = recorded_payload()
    needle = b'"advertised_start": 1752713400'
    if needle not in text:
        needle = b'"advertised_start":1752713400'
    assert needle in text
    return text.replace(needle, b'"advertised_start": ' + replacement.encode(), 1)


def corpus() -> list[Malformed]:
    """Every malformed kind (more than fifteen)."""
    whole = recorded_payload()
    return [
        Malformed("truncated JSON", whole[: len(whole) // 2], "json"),
        Malformed("empty body", b"", "json"),
        Malformed("whitespace only", b"  \n ", "json"),
        Malformed("string root", b'"Event Details"', "object"),
        Malformed("number root", b"42", "object"),
        Malformed("null root", b"null", "object"),
        Malformed("array root", json.dumps([json.loads(whole)]).encode(), "object"),
        Malformed("trailing garbage", whole + b"}", "json"),
        Malformed("missing data", _root(_drop("data")), "data"),
        Malformed("data is an array", _root(_set("data", [])), "data"),
        Malformed("missing data.race", _data(_drop("race")), "race"),
        Malformed("data.race is null", _data(_set("race", None)), "race"),
        Malformed("data.race is a string", _data(_set("race", "race 1")), "race"),
        Malformed("missing event_id", _race(_drop("event_id")), "event_id"),
        Malformed("event_id is a number", _race(_set("event_id", 12345)), "event_id"),
        Malformed("missing advertised_start", _race(_drop("advertised_start")), "advertised_start"),
        Malformed(
            "advertised_start is a string", _race(_set("advertised_start", "1752713400")), "advertised_start"
        ),
        Malformed("advertised_start is null", _race(_set("advertised_start", None)), "advertised_start"),
        Malformed("advertised_start is huge", _race(_set("advertised_start", 10**300)), "advertised_start"),
        Malformed("advertised_start is 1e300", _advertised_start_text("1e300"), "advertised_start"),
        Malformed(
            "advertised_start beyond int64", _race(_set("advertised_start", 2**70)), "advertised_start"
        ),
        Malformed("advertised_start is NaN", _advertised_start_text("NaN"), "json"),
        Malformed("advertised_start is Infinity", _advertised_start_text("Infinity"), "json"),
        Malformed("invalid UTF-8", whole.replace(b"Awapuni", b"Aw\xffpuni", 1), "utf-8"),
        Malformed("missing meeting_id", _race(_drop("meeting_id")), "meeting_id"),
        Malformed("meeting_id is a number", _race(_set("meeting_id", 7)), "meeting_id"),
        Malformed("advertised_start is negative", _race(_set("advertised_start", -5)), "advertised_start"),
        Malformed(
            "advertised_start is a fraction",
            _race(_set("advertised_start", 1752713400.5)),
            "advertised_start",
        ),
        Malformed("advertised_start is a boolean", _race(_set("advertised_start", True)), "advertised_start"),
        Malformed("data.race is an array", _data(_set("race", [1])), "race"),
        Malformed("in-band upstream error", _data(_set("error", "event not found")), "error"),
        Malformed(
            "arrays nested 100000 deep", b'{"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "payload"
        ),
    ]


def tolerated() -> list[Malformed]:
    """Wrong-typed optional collections: nztab-api.md 9.6 keeps the rest of the payload.

    The engine drops the member with an `invalid_field` quality warning naming its path
    (`hint`) instead of failing the poll; only the required fields fail the whole poll.
    """
    return [
        Malformed("runners is an object", _data(_set("runners", {"1": {}})), "runners"),
        Malformed("runners is a string", _data(_set("runners", "none")), "runners"),
        Malformed("tote_pools is an object", _data(_set("tote_pools", {"Win": 100})), "tote_pools"),
        Malformed("tote_pools is a number", _data(_set("tote_pools", 9151.38)), "tote_pools"),
        Malformed("money_tracker is an array", _data(_set("money_tracker", [1, 2])), "money_tracker"),
        Malformed("money_tracker is a string", _data(_set("money_tracker", "n/a")), "money_tracker"),
        Malformed(
            "money_tracker.entrants is an object",
            _data(_set("money_tracker", {"entrants": {"a": 1}})),
            "entrants",
        ),
    ]
