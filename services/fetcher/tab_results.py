"""What a TAB fetch returns: the payload and its summary, or a typed failure (spec nztab-api §9.2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, Literal

from services.transformer.records import EventSummary

FailureKind = Literal[
    "timeout",
    "connect",
    "http_5xx",
    "http_429",
    "http_4xx",
    "upstream_error",
    "decode",
    "schema",
    "circuit_open",
]
# Causes that say the upstream is unhealthy (table 9.2): they count toward the breaker.
BREAKER_CAUSES: Final[frozenset[FailureKind]] = frozenset(
    {"timeout", "connect", "http_5xx", "http_429", "decode"}
)
# Causes worth retrying within the same fetch.
RETRYABLE: Final[frozenset[FailureKind]] = frozenset({"timeout", "connect", "http_5xx", "http_429"})
# Causes that may well be gone by the next poll.
TRANSIENT: Final[frozenset[FailureKind]] = frozenset(
    {"timeout", "connect", "http_5xx", "http_429", "upstream_error", "decode", "circuit_open"}
)
MESSAGE_LIMIT: Final = 200


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """A logical fetch that ended without a usable payload. Never raised: returned."""

    kind: FailureKind
    http_status: int | None
    attempts: int
    duration_ms: float
    transient: bool
    message: str
    endpoint: str = ""
    target: str = ""

    @classmethod
    def of(
        cls,
        kind: FailureKind,
        message: str,
        *,
        http_status: int | None = None,
        attempts: int = 0,
        duration_ms: float = 0.0,
        endpoint: str = "",
        target: str = "",
    ) -> FetchFailure:
        """A failure with `transient` derived from its kind and the message cut to 200 characters."""
        return cls(
            kind=kind,
            http_status=http_status,
            attempts=attempts,
            duration_ms=duration_ms,
            transient=kind in TRANSIENT,
            message=message[:MESSAGE_LIMIT],
            endpoint=endpoint,
            target=target,
        )

    @property
    def counts_for_breaker(self) -> bool:
        """True when this cause counts toward opening the circuit breaker."""
        return self.kind in BREAKER_CAUSES


@dataclass(frozen=True, slots=True)
class EventFetch:
    """One race's event payload: the raw bytes, unmodified, and the digest the fetcher logs."""

    race_id: str
    payload: bytes
    # The payload's HTTP Content-Encoding: "" (plain JSON) or "gzip".
    encoding: str
    received_at_ms: int
    summary: EventSummary
    attempts: int
    duration_ms: float
    status_code: int


@dataclass(frozen=True, slots=True)
class MeetingsFetch:
    """The meetings of one NZ racing day: every page, de-duplicated, validated per item, filtered.

    `meetings` are the upstream meeting objects (dicts) that passed validation and the
    country/category filter; malformed race summaries were removed from their `races`.
    """

    nz_date: date
    meetings: list[dict[str, Any]]
    total_meetings: int
    dropped_meetings: int
    dropped_races: int
    pages: int
    attempts: int
    duration_ms: float
    response_bytes: int
    kept_by_country: dict[str, int] = field(default_factory=dict)
