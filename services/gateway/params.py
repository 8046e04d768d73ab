"""Query parameters of rest-api.md §1.2 and §1.4, each declared once.

A parameter object both reads its value from a request (snake_case or camelCase, repeats and
conflicting spellings rejected, empty values treated as absent, integers clamped) and describes
itself for the OpenAPI document, so the documentation cannot drift from the parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from starlette.datastructures import QueryParams

from services.gateway.errors import ApiError, bad_request

MAX_ID_CHARS: Final = 64
MAX_USER_ID_CHARS: Final = 100
DEFAULT_USER: Final = "Default User"
EARLIEST_INSTANT: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT: Final = datetime(9998, 12, 31, tzinfo=UTC)
_INTEGER = re.compile(r"[+-]?\d{1,30}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

RACE_TYPES: Final[dict[str, str]] = {
    "thoroughbred": "T",
    "harness": "H",
    "greyhound": "G",
    "t": "T",
    "h": "H",
    "g": "G",
}


def camel_case(name: str) -> str:
    """`race_id` → `raceId`."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class Query:
    """The request's query string, read by snake_case name with its camelCase alias."""

    def __init__(self, params: QueryParams) -> None:
        self._params = params

    def _spellings(self, name: str) -> tuple[list[str], list[str]]:
        alias = camel_case(name)
        snake = [value for value in self._params.getlist(name) if value != ""]
        camel = [value for value in self._params.getlist(alias) if value != ""] if alias != name else []
        return snake, camel

    def single(self, name: str) -> str | None:
        """The parameter's one value, None when absent or empty; 400 on repeats or conflicts."""
        snake, camel = self._spellings(name)
        for given, spelling in ((snake, name), (camel, camel_case(name))):
            if len(given) > 1:
                raise bad_request("Parameter given more than once", param=spelling)
        if snake and camel and snake[0] != camel[0]:
            raise bad_request("Conflicting values for one parameter", param=name, alias=camel_case(name))
        if snake:
            return snake[0]
        return camel[0] if camel else None

    def many(self, name: str) -> list[str]:
        """Every value of a repeatable parameter, in both spellings."""
        snake, camel = self._spellings(name)
        return snake + camel


@dataclass(frozen=True, slots=True)
class Param:
    """What every parameter shares: its name, documentation and OpenAPI schema."""

    name: str
    description: str

    def schema(self) -> dict[str, Any]:
        """The OpenAPI schema of one value: a plain string unless a subclass says more."""
        return {"type": "string"}

    def openapi(self) -> list[dict[str, Any]]:
        """Both spellings as OpenAPI parameter objects (neither required: either may be used)."""
        alias = camel_case(self.name)
        documents = [
            {
                "name": self.name,
                "in": "query",
                "required": False,
                "description": self.description,
                "schema": self.schema(),
            }
        ]
        if alias != self.name:
            documents.append(
                {
                    "name": alias,
                    "in": "query",
                    "required": False,
                    "description": f"camelCase spelling of `{self.name}`.",
                    "schema": self.schema(),
                }
            )
        return documents


def _valid_id(value: str) -> bool:
    # Printable only: control characters (NUL above all) can never be stored ids.
    return len(value) <= MAX_ID_CHARS and "," not in value and value.strip() == value and value.isprintable()


@dataclass(frozen=True, slots=True)
class IdParam(Param):
    """An opaque id: non-empty, at most 64 characters, no commas."""

    missing_error: str = ""

    def schema(self) -> dict[str, Any]:
        """A bounded string."""
        return {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}

    def read_optional(self, query: Query) -> str | None:
        """The id, None when absent; 400 when malformed."""
        value = query.single(self.name)
        if value is not None and not _valid_id(value):
            raise bad_request(f"Invalid {self.name}", param=self.name)
        return value

    def read(self, query: Query) -> str:
        """The id; 400 with the endpoint's message when missing, 400 when malformed."""
        value = self.read_optional(query)
        if value is None:
            raise ApiError(400, self.missing_error or f"{self.name} query parameter is required")
        return value


def read_id(value: str, name: str) -> str:
    """Validate an id taken from a path segment."""
    if not value or not _valid_id(value):
        raise bad_request(f"Invalid {name}", param=name)
    return value


@dataclass(frozen=True, slots=True)
class IntParam(Param):
    """A base-10 integer, clamped to [minimum, maximum]."""

    minimum: int = 0
    maximum: int = 2**31 - 1
    default: int | None = None

    def schema(self) -> dict[str, Any]:
        """An integer (out-of-range values are clamped, so no bounds in the schema)."""
        schema: dict[str, Any] = {"type": "integer"}
        if self.default is not None:
            schema["default"] = self.default
        return schema

    def read_optional(self, query: Query) -> int | None:
        """The clamped value, or None when absent."""
        value = query.single(self.name)
        if value is None:
            return None
        if not _INTEGER.fullmatch(value):
            raise bad_request(f"Invalid {self.name}: expected an integer", param=self.name)
        return max(self.minimum, min(self.maximum, int(value, 10)))

    def read(self, query: Query) -> int:
        """The clamped value, or the default."""
        value = self.read_optional(query)
        if value is not None:
            return value
        if self.default is None:
            raise ApiError(400, f"{self.name} query parameter is required")
        return self.default


@dataclass(frozen=True, slots=True)
class DateParam(Param):
    """A calendar date, YYYY-MM-DD."""

    def schema(self) -> dict[str, Any]:
        """An ISO date."""
        return {"type": "string", "format": "date"}

    def read(self, query: Query) -> date | None:
        """The date, None when absent; 400 {"error": "Invalid date"} when malformed."""
        value = query.single(self.name)
        if value is None:
            return None
        try:
            if not _DATE.fullmatch(value):
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError:
            raise bad_request("Invalid date", param=self.name) from None


@dataclass(frozen=True, slots=True)
class RaceTypeParam(Param):
    """thoroughbred, harness, greyhound or T, H, G (any case), read as the category letter."""

    def read(self, query: Query) -> str | None:
        """The category letter, None when absent."""
        value = query.single(self.name)
        if value is None:
            return None
        category = RACE_TYPES.get(value.strip().lower())
        if category is None:
            raise bad_request(
                "Invalid race_type", param=self.name, allowed=["thoroughbred", "harness", "greyhound"]
            )
        return category


@dataclass(frozen=True, slots=True)
class TextParam(Param):
    """Free text, trimmed, at most `max_chars` characters."""

    max_chars: int = 100

    def read(self, query: Query) -> str | None:
        """The trimmed text, None when absent or blank."""
        value = query.single(self.name)
        if value is None:
            return None
        value = value.strip()
        if not value.isprintable():
            raise bad_request(f"Invalid {self.name}: control characters are not allowed", param=self.name)
        if len(value) > self.max_chars:
            raise bad_request(f"{self.name} must be at most {self.max_chars} characters", param=self.name)
        return value or None


@dataclass(frozen=True, slots=True)
class InstantParam(Param):
    """An ISO-8601 instant with an offset or `Z`."""

    def schema(self) -> dict[str, Any]:
        """A date-time string."""
        return {"type": "string", "format": "date-time"}

    def read(self, query: Query) -> datetime | None:
        """The instant, None when absent; 400 when unparsable or without an offset."""
        value = query.single(self.name)
        if value is None:
            return None
        return parse_instant(value, self.name)


def parse_instant(value: str, name: str) -> datetime:
    """Parse an ISO-8601 instant that names its offset (or Z)."""
    try:
        if "T" not in value.upper():
            raise ValueError(value)
        instant = datetime.fromisoformat(value.strip())
    except ValueError:
        raise bad_request(f"Invalid {name}: expected an ISO-8601 instant", param=name) from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise bad_request(f"Invalid {name}: the instant needs an offset or Z", param=name)
    # No row predates 1970 or follows 9998, so clamping changes no filter result, and keeps the
    # echoed value inside the range the NZ formatter renders with a whole-minute offset.
    return min(max(instant.astimezone(UTC), EARLIEST_INSTANT), LATEST_INSTANT)


@dataclass(frozen=True, slots=True)
class IdListParam(Param):
    """Comma-separated ids, repeatable; items trimmed, empty items dropped."""

    def read(self, query: Query) -> list[str]:
        """Every id given, in order, without duplicates."""
        seen: dict[str, None] = {}
        for value in query.many(self.name):
            for item in value.split(","):
                entrant_id = item.strip()
                if not entrant_id:
                    continue
                if not _valid_id(entrant_id):
                    raise bad_request(
                        f"Invalid {self.name}: ids are printable, at most 64 characters", param=self.name
                    )
                seen.setdefault(entrant_id, None)
        return list(seen)


@dataclass(frozen=True, slots=True)
class PoolTypeParam(Param):
    """win, place or odds (any case); echoed by the timeline."""

    def schema(self) -> dict[str, Any]:
        """The three values."""
        return {"type": "string", "default": "win"}

    def read(self, query: Query) -> str:
        """The lower-case pool type, `win` when absent."""
        value = query.single(self.name)
        if value is None:
            return "win"
        pool_type = value.strip().lower()
        if pool_type not in ("win", "place", "odds"):
            raise ApiError(
                400,
                "Invalid pool_type parameter",
                extra={"message": "pool_type must be one of: win, place, odds", "received": value},
            )
        return pool_type


USER_ID: Final = TextParam(
    "user_id",
    f"User; trimmed, at most {MAX_USER_ID_CHARS} characters; default `{DEFAULT_USER}`.",
    max_chars=MAX_USER_ID_CHARS,
)
