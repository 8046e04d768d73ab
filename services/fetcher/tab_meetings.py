"""The meetings list: page decoding, per-item validation, the baseline filter.

Spec nztab-api §3.1, §5.1-5.2 and §9.6.

Validation covers only what is consumed. A meeting or race summary whose required
fields are unusable is dropped with a warning naming the field path, the expected
type and the value; an optional field of the wrong type is removed (read as absent)
with the same warning. Everything else in an item is passed through untouched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final, TypeGuard

from services.common.logs import log_event

logger = logging.getLogger(__name__)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_int(value: Any) -> bool:
    # bool is an int subclass in Python; JSON true/false is never a number here.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


# (field, expected type name, check): required members, and optional ones (wrong types are removed).
_Check = tuple[str, str, Callable[[Any], bool]]
_OPTIONAL_MEETING: Final[tuple[_Check, ...]] = (
    ("category_name", "string", _is_str),
    ("state", "string", _is_str),
    ("track_condition", "string", _is_str),
    ("tote_status", "string", _is_str),
    ("tote_meeting_number", "integer", _is_int),
    ("tote_raceday_date", "string", _is_str),
)
_OPTIONAL_RACE: Final[tuple[_Check, ...]] = (
    ("name", "string", _is_str),
    ("status", "string", _is_str),
    ("distance", "integer", _is_int),
    ("track_condition", "string", _is_str),
    ("weather", "string", _is_str),
    ("country", "string", _is_str),
    ("state", "string", _is_str),
    ("tote_start_time", "string", _is_str),
    ("protest", "boolean", _is_bool),
    ("protest_reason", "string", _is_str),
)


class PageDecodeError(ValueError):
    """The body is not JSON."""


class PageSchemaError(ValueError):
    """Valid JSON without a usable `data.meetings`."""


def decode_page(body: bytes) -> list[Any]:
    """`data.meetings` of one page (null reads as no meetings)."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PageDecodeError(f"meetings page is not JSON: {exc}") from None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or "meetings" not in data:
        raise PageSchemaError("meetings page has no data.meetings")
    meetings = data["meetings"]
    if meetings is None:
        return []
    if not isinstance(meetings, list):
        raise PageSchemaError(f"data.meetings must be an array, got {type(meetings).__name__}")
    return meetings


@dataclass(slots=True)
class ValidationReport:
    """Counts of what validation dropped."""

    dropped_meetings: int = 0
    dropped_races: int = 0
    removed_fields: int = 0
    problems: list[str] = field(default_factory=list)


def _warn(report: ValidationReport, path: str, expected: str, value: Any, action: str) -> None:
    excerpt = repr(value)
    excerpt = excerpt if len(excerpt) <= 100 else excerpt[:97] + "..."
    report.problems.append(path)
    log_event(
        logger,
        "tab_item_invalid",
        logging.WARNING,
        path=path,
        expected=expected,
        value=excerpt,
        action=action,
    )


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_iso_date(value: Any) -> bool:
    if not isinstance(value, str) or len(value) < 10:
        return False
    try:
        date.fromisoformat(value[:10])
    except ValueError:
        return False
    return True


def _is_instant(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


_REQUIRED_RACE: Final[tuple[_Check, ...]] = (
    ("id", "non-empty string", _text),
    ("race_number", "integer", _is_int),
    ("start_time", "RFC 3339 instant", _is_instant),
)
_REQUIRED_MEETING: Final[tuple[_Check, ...]] = (
    ("meeting", "non-empty string", _text),
    ("name", "non-empty string", _text),
    ("date", "date string (YYYY-MM-DD...)", _is_iso_date),
    ("country", "non-empty string", _text),
    ("category", "non-empty string", _text),
)


def _has_required(
    item: Any, path: str, required: Iterable[_Check], report: ValidationReport, action: str
) -> TypeGuard[dict[str, Any]]:
    """True when `item` is an object whose required members all pass; else one warning, False."""
    if not isinstance(item, dict):
        _warn(report, path, "object", item, action)
        return False
    for name, expected, check in required:
        if not check(item.get(name)):
            _warn(report, f"{path}.{name}", expected, item.get(name), action)
            return False
    return True


def validate_race(item: Any, path: str, report: ValidationReport) -> dict[str, Any] | None:
    """A race summary with usable id, number and start; None (and a warning) otherwise."""
    if not _has_required(item, path, _REQUIRED_RACE, report, "race dropped"):
        return None
    return _strip_optional(item, path, _OPTIONAL_RACE, report)


def validate_meeting(item: Any, path: str, report: ValidationReport) -> dict[str, Any] | None:
    """A meeting with usable id, name, date, country and category, its bad race summaries removed."""
    if not _has_required(item, path, _REQUIRED_MEETING, report, "meeting dropped"):
        return None
    meeting = _strip_optional(item, path, _OPTIONAL_MEETING, report)
    races = item.get("races")
    if races is None:
        meeting["races"] = []
    elif not isinstance(races, list):
        _warn(report, f"{path}.races", "array", races, "races ignored")
        meeting["races"] = []
    else:
        kept = []
        for index, race in enumerate(races):
            valid = validate_race(race, f"{path}.races[{index}]", report)
            if valid is None:
                report.dropped_races += 1
            else:
                kept.append(valid)
        meeting["races"] = kept
    return meeting


def _strip_optional(
    item: dict[str, Any],
    path: str,
    optional: Iterable[_Check],
    report: ValidationReport,
) -> dict[str, Any]:
    result = dict(item)
    for name, expected, check in optional:
        value = result.get(name)
        if value is not None and not check(value):
            _warn(report, f"{path}.{name}", expected, value, "field ignored")
            report.removed_fields += 1
            del result[name]
    return result


def keep_meeting(meeting: dict[str, Any], countries: Collection[str], categories: Collection[str]) -> bool:
    """The baseline filter: country and category in the configured sets (e.g. NZ/AUS, T/H)."""
    # Membership on the configured collections directly: no set is rebuilt for every meeting.
    return meeting.get("country") in countries and meeting.get("category") in categories
