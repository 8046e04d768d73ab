"""Reading TAB payloads for the reference transform: decoding and lenient field access.

The rules (and the message texts) are the contract shared with the Rust core: optional
members degrade to None with an `invalid_field` finding, required ones raise
`PayloadSchemaError` naming the path, and anything that is not strict JSON raises
`PayloadDecodeError`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from raceday_core.errors import PayloadDecodeError, PayloadSchemaError
from services.transformer.records import QualityRecord
from services.transformer.refmath import hundredths


class _Missing:
    """Marks a member that is not in its object (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
I32_MAX: Final = 2_147_483_647
_MAX_INT_DIGITS: Final = 4300  # Python's int/str conversion limit; the Rust parser applies it too
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def kind(v: object) -> str:
    """The JSON type of a value as used in messages."""
    if v is MISSING:
        return "nothing"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _hex4(text: str, at: int) -> int | None:
    digits = text[at : at + 4]
    return int(digits, 16) if _HEX4.fullmatch(digits) else None


def lone_surrogate(text: str) -> int | None:
    """Index of the first `\\u` escape that is an unpaired UTF-16 surrogate, if any."""
    i = text.find("\\")
    while i != -1:
        if text[i + 1 : i + 2] == "u":
            unit = _hex4(text, i + 2)
            if unit is not None and 0xD800 <= unit <= 0xDBFF:
                low = _hex4(text, i + 8) if text[i + 6 : i + 8] == "\\u" else None
                if low is None or not 0xDC00 <= low <= 0xDFFF:
                    return i
                i = text.find("\\", i + 12)
                continue
            if unit is not None and 0xDC00 <= unit <= 0xDFFF:
                return i
            i = text.find("\\", i + 6)
        else:
            i = text.find("\\", i + 2)
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(payload: bytes) -> dict[str, Any]:
    """Strict JSON object from UTF-8 bytes, or PayloadDecodeError."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PayloadDecodeError(f"payload: not valid UTF-8 (at byte {e.start})") from None
    if "\\ud" in text or "\\uD" in text:
        at = lone_surrogate(text)
        if at is not None:
            raise PayloadDecodeError(f"payload: not valid JSON: unpaired surrogate escape at {at}")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise PayloadDecodeError(f"payload: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PayloadDecodeError(f"payload: expected a JSON object, got {kind(doc)}")
    return doc


def member(obj: object, key: str) -> Any:
    """obj[key] if obj is an object holding key, else MISSING."""
    return obj.get(key, MISSING) if isinstance(obj, dict) else MISSING


def as_number(v: object) -> float | None:
    """A number as a double (integers rounded to nearest, overflowing ones to ±inf)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    if isinstance(v, int):
        try:
            return float(v)
        except OverflowError:
            return math.inf if v > 0 else -math.inf
    return v


def is_missing(v: object) -> bool:
    """Absent or null."""
    return v is MISSING or v is None


class Findings:
    """Data-quality findings of one transform."""

    def __init__(self) -> None:
        self.items: list[QualityRecord] = []

    def add(self, check: str, level: str, message: str, value: float | None = None) -> None:
        """Adds a finding."""
        self.items.append({"check": check, "level": level, "message": message, "value": value})

    def invalid(self, message: str) -> None:
        """Adds an `invalid_field` warning."""
        self.add("invalid_field", "warning", message)

    def sorted(self) -> list[QualityRecord]:
        """The findings in the canonical order (check, then message)."""
        return sorted(self.items, key=lambda f: (f["check"], f["message"]))


def opt_text(path: str, v: object, out: Findings) -> str | None:
    """Optional descriptive text: absent, null and "" are None."""
    if isinstance(v, str):
        return v or None
    if not is_missing(v):
        out.invalid(f"{path}: expected string, got {kind(v)}")
    return None


def text_or_empty(path: str, v: object, out: Findings) -> str:
    """Text that is never null: absent or mistyped become ""."""
    if isinstance(v, str):
        return v
    if not is_missing(v):
        out.invalid(f"{path}: expected string, got {kind(v)}")
    return ""


def _int_in(v: object, lo: int, hi: int) -> tuple[int | None, str | None]:
    if is_missing(v):
        return None, None
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, None) if lo <= v <= hi else (None, "integer out of range")
    return None, f"expected integer, got {kind(v)}"


def opt_int(path: str, v: object, lo: int, hi: int, out: Findings) -> int | None:
    """Optional integer within lo..hi."""
    value, why = _int_in(v, lo, hi)
    if why is not None:
        out.invalid(f"{path}: {why}")
    return value


def opt_epoch_ms(path: str, v: object, max_s: int, out: Findings) -> int | None:
    """Optional epoch seconds (0 = none), returned in milliseconds."""
    s = opt_int(path, v, 0, max_s, out)
    return s * 1000 if s else None


def flag(path: str, v: object, out: Findings) -> bool:
    """A boolean flag: absent, null or mistyped are False."""
    if isinstance(v, bool):
        return v
    if not is_missing(v):
        out.invalid(f"{path}: expected boolean, got {kind(v)}")
    return False


def object_or_none(path: str, v: object, out: Findings) -> dict[str, Any] | None:
    """The value if it is an object; reports any other non-null value."""
    if isinstance(v, dict):
        return v
    if not is_missing(v):
        out.invalid(f"{path}: expected object, got {kind(v)}")
    return None


def array_or_empty(path: str, v: object, out: Findings) -> list[Any]:
    """The value if it is an array, else []; reports any other non-null value."""
    if isinstance(v, list):
        return v
    if not is_missing(v):
        out.invalid(f"{path}: expected array, got {kind(v)}")
    return []


def req_text(path: str, v: object) -> str:
    """A required non-empty string."""
    if isinstance(v, str):
        if not v:
            raise PayloadSchemaError(f"{path}: expected a non-empty string")
        return v
    if is_missing(v):
        raise PayloadSchemaError(f"{path}: missing")
    raise PayloadSchemaError(f"{path}: expected string, got {kind(v)}")


def req_int(path: str, v: object, lo: int, hi: int) -> int:
    """A required integer within lo..hi."""
    value, why = _int_in(v, lo, hi)
    if why is not None:
        raise PayloadSchemaError(f"{path}: {why}")
    if value is None:
        raise PayloadSchemaError(f"{path}: missing")
    return value


def req_object(path: str, v: object) -> dict[str, Any]:
    """A required object."""
    if isinstance(v, dict):
        return v
    if is_missing(v):
        raise PayloadSchemaError(f"{path}: missing")
    raise PayloadSchemaError(f"{path}: expected object, got {kind(v)}")


PRODUCTS: Final = ("win", "place", "quinella", "trifecta", "exacta", "first4")
_PRODUCT_KEYS: Final = {
    "win": 0,
    "place": 1,
    "quinella": 2,
    "trifecta": 3,
    "exacta": 4,
    "firstfour": 5,
    "first4": 5,
}


def product_index(name: str) -> int | None:
    """One of the six single-race products (§2.1), or None."""
    key = name.lower().replace(" ", "").replace("_", "").replace("-", "").removeprefix("pool")
    return _PRODUCT_KEYS.get(key)


def odds_hundredths(v: object) -> int | None:
    """Odds normalisation (§9.1): a number in (0, 10^7) whose hundredths are at least 1."""
    x = as_number(v)
    if x is None or not 0 < x < 1e7:
        return None
    h = hundredths(x)
    return h if h >= 1 else None
