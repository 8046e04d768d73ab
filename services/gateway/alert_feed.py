"""Alerts served to a user (issue 14): GET /api/alerts and the live push's `alert` events.

The writer stores every move of at least 5 once, unclassified (race_alerts). A user sees an alert
when one of their enabled indicators classifies its value: `classify` below is the one rule, the
same as the dashboard's pickIndicator (static/js/indicators.js; both are held to
tests/fixtures/alert_classification_golden.json). An alert no enabled range of the user holds is
not served to that user.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from services.common.proto.raceday.v1 import query_pb2
from services.gateway import serialize

# Only moves of at least this many points (or percent) colour a cell or make an alert (rest-api §4.1).
THRESHOLD: Final = 5.0
# GET /api/alerts scans at most this many writer pages to fill one page of a user's alerts, so a
# user who enabled few ranges gets a short page and a cursor rather than an unbounded scan.
MAX_SCANS: Final = 8
WRITER_PAGE_MAX: Final = 500

Indicators = Sequence[query_pb2.AlertIndicator]
Classified = tuple[query_pb2.RaceAlert, query_pb2.AlertIndicator | None]


def classify(indicators: Indicators, value: float) -> query_pb2.AlertIndicator | None:
    """The first enabled indicator, by display_order, whose range holds `value`, or None.

    A range holds `min <= value < max`, or `value >= min` when it has no max; values below
    THRESHOLD are never classified.
    """
    if not math.isfinite(value) or value < THRESHOLD:
        return None
    for indicator in sorted(indicators, key=lambda item: item.display_order):
        if not indicator.enabled:
            continue
        if value < indicator.percentage_range_min:
            continue
        if indicator.HasField("percentage_range_max") and value >= indicator.percentage_range_max:
            continue
        return indicator
    return None


def _number(value: float) -> str:
    # As JavaScript prints a number (the shortest round trip): 5 → "5", 7.5 → "7.5".
    text = repr(value)
    return text.removesuffix(".0")


def range_label(indicator: query_pb2.AlertIndicator) -> str:
    """`5–10%`, or `50%+` for a range without a max (the dashboard's rangeLabel)."""
    low = _number(indicator.percentage_range_min)
    if not indicator.HasField("percentage_range_max"):
        return f"{low}%+"
    return f"{low}–{_number(indicator.percentage_range_max)}%"


def indicator_document(indicator: query_pb2.AlertIndicator | None) -> dict[str, Any] | None:
    """The `indicator` object of an alert: which of the user's ranges classified it."""
    if indicator is None:
        return None
    return {
        "display_order": indicator.display_order,
        "color": indicator.color.upper(),
        "label": range_label(indicator),
    }


def alert_document(alert: query_pb2.RaceAlert, indicator: query_pb2.AlertIndicator | None) -> dict[str, Any]:
    """One alert as GET /api/alerts and the stream's `alert` event carry it."""
    return {
        "alert_id": alert.alert_id,
        "race_id": alert.race_id,
        "race_name": alert.race_name,
        "race_number": alert.race_number,
        "meeting_id": alert.meeting_id,
        "meeting_name": alert.meeting_name,
        "entrant_id": alert.entrant_id,
        "runner_number": alert.runner_number,
        "runner_name": alert.runner_name,
        "kind": alert.kind,
        "time_interval": alert.time_interval,
        "previous_interval": alert.previous_interval,
        "value": round(alert.value, 2),
        "polled_at": serialize.timestamp(alert.polled_at),
        "created_at": serialize.timestamp(alert.created_at),
        "indicator": indicator_document(indicator),
    }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a user's alerts and the cursor to the next one (None when none is older)."""

    alerts: list[Classified]
    next_cursor: int | None


FetchPage = Callable[[int | None, int], Awaitable[Sequence[query_pb2.RaceAlert]]]


async def user_page(fetch: FetchPage, indicators: Indicators, *, limit: int, cursor: int | None) -> Page:
    """Up to `limit` alerts the user's indicators classify, newest first, from writer pages.

    `fetch(cursor, size)` reads one writer page (alert_id below `cursor`, newest first). Alerts the
    user does not see are skipped, reading further pages (at most MAX_SCANS) to fill the page.
    """
    found: list[Classified] = []
    size = limit
    for _ in range(MAX_SCANS):
        rows = await fetch(cursor, size)
        for alert in rows:
            indicator = classify(indicators, alert.value)
            if indicator is None:
                continue
            found.append((alert, indicator))
            if len(found) == limit:
                # Older alerts may remain, in this writer page or beyond it.
                return Page(found, alert.alert_id)
        if len(rows) < size:
            return Page(found, None)  # the writer has nothing older
        cursor = rows[-1].alert_id
        # Later scans happen only when the user's ranges skipped alerts: read more at once.
        size = WRITER_PAGE_MAX
    return Page(found, cursor)


@dataclass
class ConfigCache:
    """Users' indicators for the live push, each kept `ttl_s` so a burst of alerts costs one read
    per user; a user's saved changes apply to the push within `ttl_s`."""

    load: Callable[[str], Awaitable[Indicators]]
    ttl_s: float = 10.0
    max_users: int = 1000
    _entries: dict[str, tuple[float, Indicators]] = field(default_factory=dict)

    async def get(self, user_id: str) -> Indicators:
        """The user's indicators, from the cache while fresh (a stale copy when a reload fails)."""
        now = time.monotonic()
        entry = self._entries.get(user_id)
        if entry is not None and now - entry[0] < self.ttl_s:
            return entry[1]
        try:
            indicators = await self.load(user_id)
        except Exception:
            if entry is not None:
                return entry[1]
            raise
        if len(self._entries) >= self.max_users:
            self._entries.clear()  # many distinct users in a few seconds: start afresh, stay bounded
        self._entries[user_id] = (now, indicators)
        return indicators
