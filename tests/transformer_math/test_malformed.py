"""A corpus of malformed payloads: each gives the same exception class from both
implementations (and, for schema errors, the same message naming the field path), and the
extension keeps working afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from raceday_core.errors import PayloadDecodeError, PayloadError, PayloadSchemaError
from services.transformer.records import empty_state
from tests.transformer_math.conftest import EXTENSION, REFERENCE, recorded_event

POLLED_AT = 1_752_713_400_000


def _edit(change: Callable[[dict[str, Any]], None]) -> bytes:
    event = json.loads(recorded_event())
    change(event)
    return json.dumps(event).encode()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = event
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


_DELETE = object()
_TEXT = recorded_event().decode()
_POOL = json.loads(_TEXT)["data"]["tote_pools"]
_WIN = next(i for i, p in enumerate(_POOL) if p["product_type"] == "Win")

DECODE: dict[str, bytes] = {
    "truncated": recorded_event()[: len(recorded_event()) // 2],
    "empty body": b"",
    "html error page": b"<html><body>502 Bad Gateway</body></html>",
    "not utf-8": b'{"data": {"race": "\xff\xfe"}}',
    "root is an array": b"[1, 2, 3]",
    "root is a string": b'"Event Details"',
    "NaN in a pool total": _TEXT.replace('"total": 9151.38', '"total": NaN').encode(),
    "Infinity in an ignored member": _TEXT.replace('"guarantee": 0', '"guarantee": Infinity', 1).encode(),
    "unpaired surrogate": _TEXT.replace("Tickford", "Tick\\ud800ford", 1).encode(),
    "trailing garbage": recorded_event() + b"}",
    "two documents": recorded_event() + recorded_event(),
    "nested 5000 deep": ('{"data": ' + "[" * 5000 + "]" * 5000 + "}").encode(),
    "5000-digit integer": _TEXT.replace(
        '"race_number": 1,', '"race_number": ' + "9" * 5000 + ",", 1
    ).encode(),
    "single-quoted strings": b"{'data': {}}",
    "control character in a string": _TEXT.replace("Tickford", "Tick\tford", 1).encode(),
}

SCHEMA: dict[str, tuple[bytes, str]] = {
    "no data": (b'{"header": {}}', "data: missing"),
    "data is a string": (b'{"data": "none"}', "data: expected object, got string"),
    "no race": (_edit(_set("data.race", _DELETE)), "data.race: missing"),
    "race is an array": (_edit(_set("data.race", [])), "data.race: expected object, got array"),
    "event_id is a number": (
        _edit(_set("data.race.event_id", 7)),
        "data.race.event_id: expected string, got number",
    ),
    "event_id is empty": (
        _edit(_set("data.race.event_id", "")),
        "data.race.event_id: expected a non-empty string",
    ),
    "no meeting_id": (_edit(_set("data.race.meeting_id", None)), "data.race.meeting_id: missing"),
    "no advertised_start": (
        _edit(_set("data.race.advertised_start", _DELETE)),
        "data.race.advertised_start: missing",
    ),
    "advertised_start as text": (
        _edit(_set("data.race.advertised_start", "1752713400")),
        "data.race.advertised_start: expected integer, got string",
    ),
    "advertised_start fractional": (
        _edit(_set("data.race.advertised_start", 1752713400.5)),
        "data.race.advertised_start: expected integer, got number",
    ),
    "advertised_start huge": (
        _edit(_set("data.race.advertised_start", 10**20)),
        "data.race.advertised_start: integer out of range",
    ),
    "pool total huge": (
        _edit(_set(f"data.tote_pools.{_WIN}.total", 1e300)),
        f"data.tote_pools[{_WIN}].total: number out of range",
    ),
    "pool total overflows to infinity": (
        _TEXT.replace('"total": 9151.38', '"total": 1e400').encode(),
        f"data.tote_pools[{_WIN}].total: number out of range",
    ),
    "negative pool total": (
        _edit(_set(f"data.tote_pools.{_WIN}.total", -5)),
        f"data.tote_pools[{_WIN}].total: number out of range",
    ),
    "upstream error": (
        _edit(_set("data.error", "event not found")),
        "data.error: upstream reported an error: event not found",
    ),
    "infinity inside a result": (
        _TEXT.replace('"winning_time": 106.73', '"winning_time": 1e999', 1).encode(),
        "data.results[0]: number out of range",
    ),
}


def _raises(impl: Any, payload: bytes) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        impl.transform(payload, POLLED_AT, empty_state(""))
    return caught.value


def test_the_corpus_has_at_least_fifteen_kinds_of_each() -> None:
    assert len(DECODE) >= 15 and len(SCHEMA) >= 15


@pytest.mark.parametrize("name", list(DECODE))
def test_undecodable_payloads(name: str) -> None:
    payload = DECODE[name]
    for impl in (EXTENSION, REFERENCE):
        error = _raises(impl, payload)
        assert isinstance(error, PayloadDecodeError), (impl, error)
        assert isinstance(error, ValueError)
        assert str(error).startswith("payload: "), str(error)
    # The extension is unharmed: the next valid call works.
    assert EXTENSION.transform(recorded_event(), POLLED_AT, empty_state(""))["race_id"]


@pytest.mark.parametrize("name", list(SCHEMA))
def test_schema_errors_name_the_field(name: str) -> None:
    payload, message = SCHEMA[name]
    for impl in (EXTENSION, REFERENCE):
        error = _raises(impl, payload)
        assert isinstance(error, PayloadSchemaError), (impl, error)
        assert str(error) == message
    assert EXTENSION.transform(recorded_event(), POLLED_AT, empty_state(""))["race_id"]


@pytest.mark.parametrize(
    ("polled_at", "match"),
    [(-1, "polled_at_ms"), (10**15, "polled_at_ms")],
)
def test_bad_poll_times_are_value_errors(polled_at: int, match: str) -> None:
    for impl in (EXTENSION, REFERENCE):
        with pytest.raises(ValueError, match=match) as caught:
            impl.transform(recorded_event(), polled_at, empty_state(""))
        assert not isinstance(caught.value, PayloadError)


def test_a_state_of_another_race_is_refused() -> None:
    for impl in (EXTENSION, REFERENCE):
        with pytest.raises(ValueError, match="does not match"):
            impl.transform(recorded_event(), POLLED_AT, empty_state("another-race"))
