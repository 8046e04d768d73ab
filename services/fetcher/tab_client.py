"""The NZ TAB client: meetings of an NZ day and race events, with the failure policy of nztab-api §9.

One pooled aiohttp session per instance (pool size = the concurrency cap), the
identification headers sent verbatim, retries with exponential backoff and jitter
inside a retry budget, Retry-After and a client-wide pause after a 429, and a
circuit breaker for the host. Every fetch returns a result object; failures are
`FetchFailure` values, never exceptions.

The event hot path keeps the payload as bytes, exactly as received (gzip stays gzip:
the transformer inflates it where it parses it); the only parse here is the Rust
`event_summary`, which inflates and yields the few fields the fetcher logs and checks.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import random
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, TypeVar
from urllib.parse import quote

import aiohttp

from raceday_core import PayloadDecodeError, PayloadSchemaError, event_summary
from services.common.logs import log_event
from services.fetcher import tab_metrics
from services.fetcher.tab_breaker import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_OPEN_S,
    BreakerState,
    CircuitBreaker,
)
from services.fetcher.tab_meetings import (
    PageDecodeError,
    PageSchemaError,
    ValidationReport,
    decode_page,
    keep_meeting,
    validate_meeting,
)
from services.fetcher.tab_results import (
    MESSAGE_LIMIT,
    RETRYABLE,
    EventFetch,
    FailureKind,
    FetchFailure,
    MeetingsFetch,
)
from services.fetcher.tab_retry import Pause, backoff_s, retry_after_s
from services.fetcher.tab_settings import API_PREFIX, TabSettings
from services.transformer.records import EventSummary

__all__ = ["EventFetch", "FetchFailure", "MeetingsFetch", "TabClient", "TabSettings"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The one flag set for every event poll (nztab-api §3.2; status-dependent sets bought nothing).
EVENT_PARAMS: Final[Mapping[str, str]] = {"with_money_tracker": "true", "with_tote_trends_data": "true"}
MEETINGS_PAGE_SIZE: Final = 100
MEETINGS_MAX_PAGES: Final = 20
MAX_BUDGET_S: Final = 10.0
MIN_ATTEMPT_S: Final = 1.0
MAX_ATTEMPTS: Final = 3
BACKOFF_BASE_S: Final = 0.1
BACKOFF_JITTER_S: Final = 0.05
CONNECT_TIMEOUT_S: Final = 2.0
PAUSE_CAP_S: Final = 60.0


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class _Get:
    """One logical GET: which endpoint (for metrics), what it is for (for logs), path and query."""

    endpoint: str
    target: str
    path: str
    params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Http:
    """A 2xx answer of one logical fetch: the body as received and its Content-Encoding."""

    status: int
    body: bytes
    attempts: int
    received_at_ms: int
    encoding: str = ""

    def decoded(self) -> bytes:
        """The body without its content encoding (for the few bodies parsed in Python)."""
        return _decoded(self.body, self.encoding)


class TabClient:
    """Fetches from the TAB (or the simulated TAB). Safe to share across tasks of one event loop."""

    def __init__(
        self,
        settings: TabSettings,
        *,
        breaker_failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        breaker_open_s: float = DEFAULT_OPEN_S,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_jitter_s: float = BACKOFF_JITTER_S,
        max_attempts: int = MAX_ATTEMPTS,
        max_budget_s: float = MAX_BUDGET_S,
        min_attempt_s: float = MIN_ATTEMPT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        pause_cap_s: float = PAUSE_CAP_S,
        now_ms: Callable[[], int] = _wall_ms,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._backoff_base_s = backoff_base_s
        self._backoff_jitter_s = backoff_jitter_s
        self._max_attempts = max_attempts
        self._max_budget_s = max_budget_s
        self._min_attempt_s = min_attempt_s
        self._connect_timeout_s = connect_timeout_s
        self._now_ms = now_ms
        self._rng = rng or random.Random()
        self._pause = Pause(pause_cap_s)
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._breaker = CircuitBreaker(
            failure_threshold=breaker_failure_threshold,
            open_s=breaker_open_s,
            on_change=self._breaker_changed,
        )
        tab_metrics.TAB_CIRCUIT_OPEN.set(0.0)
        self._url = settings.base_url + API_PREFIX
        self._headers = settings.headers()
        # Created on first use, inside the event loop that will run the requests.
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.settings.max_concurrency, limit_per_host=self.settings.max_concurrency
            )
            # Bodies stay as received: events are forwarded compressed, inflated in the Rust core.
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    @property
    def breaker_state(self) -> BreakerState:
        """`closed`, `open` or `half_open`."""
        return self._breaker.state

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> TabClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ events

    async def fetch_event(self, race_id: str, *, budget_s: float) -> EventFetch | FetchFailure:
        """One race's event payload (raw bytes) and summary, within min(10 s, `budget_s`)."""
        started = time.monotonic()
        get = _Get("event", race_id, f"/racing/events/{quote(race_id, safe='')}", EVENT_PARAMS)
        outcome = await self._logical(get, budget_s, self._event_result(race_id))
        duration_ms = (time.monotonic() - started) * 1000
        if isinstance(outcome, FetchFailure):
            failure = _with_duration(outcome, duration_ms)
            self._log_failure(failure, race_id=race_id)
            return failure
        http, summary = outcome
        fetched = EventFetch(
            race_id=race_id,
            payload=http.body,
            encoding=http.encoding,
            received_at_ms=http.received_at_ms,
            summary=summary,
            attempts=http.attempts,
            duration_ms=duration_ms,
            status_code=http.status,
        )
        log_event(
            logger,
            "tab_fetch",
            endpoint="event",
            race_id=race_id,
            outcome="ok",
            http_status=http.status,
            attempts=http.attempts,
            duration_ms=round(duration_ms, 1),
            response_bytes=len(http.body),
            **_summary_fields(summary),
        )
        return fetched

    def _event_result(self, race_id: str) -> Callable[[_Http], tuple[_Http, EventSummary] | FetchFailure]:
        def interpret(http: _Http) -> tuple[_Http, EventSummary] | FetchFailure:
            try:
                summary = event_summary(http.body, http.encoding)
            except PayloadDecodeError as exc:
                body = _excerpt(http.body) if not http.encoding else f"({http.encoding} body)"
                return _failure("decode", f"event payload is not JSON: {exc}; body: {body}", http)
            except PayloadSchemaError as exc:
                return _failure("schema", f"event payload unusable: {exc}", http)
            if summary["error"]:
                return _failure("upstream_error", f"data.error: {summary['error']}", http)
            if summary["event_id"] != race_id:
                return _failure(
                    "schema", f"data.race.event_id {summary['event_id']!r} is not {race_id!r}", http
                )
            return http, summary

        return interpret

    # ---------------------------------------------------------------- meetings

    async def fetch_meetings(self, nz_date: date) -> MeetingsFetch | FetchFailure:
        """Every meeting of NZ day `nz_date` (all pages), validated, de-duplicated and filtered."""
        started = time.monotonic()
        day = nz_date.isoformat()
        seen: dict[str, Any] = {}
        order: list[Any] = []
        attempts = pages = response_bytes = 0
        report = ValidationReport()
        raw_items: list[tuple[str, Any]] = []
        for page in range(MEETINGS_MAX_PAGES):
            offset = page * MEETINGS_PAGE_SIZE
            params = {
                "date_from": day,
                "date_to": day,
                "limit": str(MEETINGS_PAGE_SIZE),
                "offset": str(offset),
            }
            get = _Get("meetings", day, "/racing/meetings", params)
            outcome = await self._logical(get, self._max_budget_s, _meetings_page)
            if isinstance(outcome, FetchFailure):
                failure = FetchFailure.of(
                    outcome.kind,
                    f"page {page + 1}: {outcome.message}",
                    http_status=outcome.http_status,
                    attempts=attempts + outcome.attempts,
                    duration_ms=(time.monotonic() - started) * 1000,
                    endpoint="meetings",
                    target=day,
                )
                self._log_failure(failure, nz_date=day, pages=pages)
                return failure
            http, items = outcome
            pages += 1
            attempts += http.attempts
            response_bytes += len(http.body)
            raw_items += [(f"data.meetings[{offset + i}]", item) for i, item in enumerate(items)]
            if len(items) < MEETINGS_PAGE_SIZE:
                break
        else:
            log_event(
                logger,
                "tab_meetings_page_cap",
                logging.ERROR,
                nz_date=day,
                pages=pages,
                cap=MEETINGS_MAX_PAGES,
            )
        for path, item in raw_items:
            meeting = validate_meeting(item, path, report)
            if meeting is None:
                report.dropped_meetings += 1
                continue
            if meeting["meeting"] in seen:
                continue
            seen[meeting["meeting"]] = meeting
            order.append(meeting)
        kept = [m for m in order if keep_meeting(m, self.settings.countries, self.settings.categories)]
        by_country = Counter(str(m["country"]) for m in kept)
        duration_ms = (time.monotonic() - started) * 1000
        result = MeetingsFetch(
            nz_date=nz_date,
            meetings=kept,
            total_meetings=len(order),
            dropped_meetings=report.dropped_meetings,
            dropped_races=report.dropped_races,
            pages=pages,
            attempts=attempts,
            duration_ms=duration_ms,
            response_bytes=response_bytes,
            kept_by_country=dict(by_country),
        )
        log_event(
            logger,
            "tab_fetch",
            endpoint="meetings",
            nz_date=day,
            outcome="ok",
            http_status=200,
            pages=pages,
            attempts=attempts,
            duration_ms=round(duration_ms, 1),
            response_bytes=response_bytes,
            meetings_total=len(order),
            meetings_kept=len(kept),
            races_kept=sum(len(m["races"]) for m in kept),
            kept_by_country=dict(by_country),
            dropped_meetings=report.dropped_meetings,
            dropped_races=report.dropped_races,
            removed_fields=report.removed_fields,
        )
        return result

    # ------------------------------------------------------------------- core

    async def _logical(
        self, get: _Get, budget_s: float, interpret: Callable[[_Http], T | FetchFailure]
    ) -> T | FetchFailure:
        """One logical fetch: breaker gate, attempts with retries, interpretation, breaker verdict."""
        if not self._breaker.allow():
            failure = FetchFailure.of(
                "circuit_open",
                f"circuit breaker open for {self.settings.base_url}; next trial in "
                f"{self._breaker.retry_in_s:.1f} s",
                endpoint=get.endpoint,
                target=get.target,
            )
            tab_metrics.TAB_REQUESTS.labels(get.endpoint, failure.kind).inc()
            return failure
        verdict = False
        try:
            http = await self._attempts(get, budget_s)
            result = http if isinstance(http, FetchFailure) else interpret(http)
            if isinstance(result, FetchFailure):
                if result.attempts == 0:
                    # Nothing reached the upstream (client-wide pause, no budget, no slot): no verdict.
                    self._breaker.release()
                elif result.counts_for_breaker:
                    self._breaker.record_failure(result.kind)
                else:
                    # The host answered (a 4xx, an in-band error, a schema problem): it is up.
                    self._breaker.record_success()
                tab_metrics.TAB_REQUESTS.labels(get.endpoint, result.kind).inc()
            else:
                self._breaker.record_success()
                tab_metrics.TAB_REQUESTS.labels(get.endpoint, "ok").inc()
            verdict = True
            return result
        finally:
            if not verdict:
                self._breaker.release()

    async def _attempts(self, get: _Get, budget_s: float) -> _Http | FetchFailure:
        """Up to `max_attempts` GETs inside the retry budget; retries only retryable causes."""
        start = time.monotonic()
        deadline = start + min(self._max_budget_s, budget_s)
        attempt = 0
        last: FetchFailure | None = None
        while True:
            now = time.monotonic()
            paused = self._pause.remaining(now)
            if paused > 0:
                if now + paused + self._min_attempt_s > deadline:
                    return FetchFailure.of(
                        "http_429",
                        f"client paused {paused:.1f} s after a 429; does not fit the retry budget",
                        http_status=last.http_status if last else None,
                        attempts=attempt,
                        endpoint=get.endpoint,
                        target=get.target,
                    )
                await asyncio.sleep(paused)
                continue
            left = deadline - time.monotonic()
            if left < self._min_attempt_s:
                if last is not None:
                    return last
                return FetchFailure.of(
                    "timeout",
                    f"retry budget {min(self._max_budget_s, budget_s):.2f} s leaves no room for an attempt",
                    endpoint=get.endpoint,
                    target=get.target,
                )
            attempt += 1
            outcome, wait_hint = await self._attempt(get, deadline, attempt)
            if isinstance(outcome, _Http):
                return outcome
            if outcome.attempts < attempt:
                # No slot of the concurrency cap freed up in time: nothing was sent.
                return last or outcome
            last = outcome
            if outcome.kind == "http_429":
                # Every 429 pauses the whole client, whether or not this fetch retries.
                self._pause.extend(time.monotonic(), wait_hint)
            if outcome.kind not in RETRYABLE or attempt >= self._max_attempts:
                return outcome
            if outcome.kind == "http_429":
                wait = wait_hint
            else:
                wait = backoff_s(attempt, self._backoff_base_s, self._backoff_jitter_s, self._rng)
            if time.monotonic() + wait + self._min_attempt_s > deadline:
                return outcome
            tab_metrics.TAB_RETRIES.labels(outcome.kind).inc()
            log_event(
                logger,
                "tab_retry",
                endpoint=get.endpoint,
                target=get.target,
                attempt=attempt,
                cause=outcome.kind,
                http_status=outcome.http_status,
                wait_ms=round(wait * 1000, 1),
            )
            if outcome.kind != "http_429":
                # A 429's wait is the client-wide pause, honoured at the top of the loop.
                await asyncio.sleep(wait)

    async def _attempt(self, get: _Get, deadline: float, attempt: int) -> tuple[_Http | FetchFailure, float]:
        """One GET with timeout min(NZTAB_TIMEOUT_S, budget left); the float is a 429's Retry-After."""

        def failed(kind: FailureKind, message: str, status: int | None = None) -> FetchFailure:
            return FetchFailure.of(
                kind, message, http_status=status, attempts=attempt, endpoint=get.endpoint, target=get.target
            )

        try:
            # Waiting for a slot of the concurrency cap spends budget but is not an upstream failure.
            async with asyncio.timeout(max(0.0, deadline - time.monotonic() - self._min_attempt_s)):
                await self._slots.acquire()
        except TimeoutError:
            unsent = FetchFailure.of(
                "timeout",
                f"no free slot of NZTAB_MAX_CONCURRENCY={self.settings.max_concurrency} within the budget",
                attempts=attempt - 1,
                endpoint=get.endpoint,
                target=get.target,
            )
            return unsent, 0.0
        timeout_s = min(self.settings.timeout_s, deadline - time.monotonic())
        try:
            async with asyncio.timeout(timeout_s):
                async with self._http().get(
                    self._url + get.path,
                    params=get.params,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        total=timeout_s, connect=min(self._connect_timeout_s, timeout_s)
                    ),
                ) as response:
                    body = await response.read()
                    status, headers = response.status, response.headers
            received_at_ms = self._now_ms()
        except TimeoutError:
            return failed("timeout", f"no complete answer within {timeout_s:.2f} s"), 0.0
        except aiohttp.ClientError as exc:
            return failed("connect", f"{type(exc).__name__}: {exc or 'connection failed'}"), 0.0
        finally:
            self._slots.release()
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if 200 <= status < 300:
            return _Http(
                status, body, attempt, received_at_ms, "" if encoding == "identity" else encoding
            ), 0.0
        text = _error_text(body, encoding)
        if status == 429:
            wait = retry_after_s(headers.get("Retry-After"))
            return failed("http_429", f"429 (Retry-After {wait:.1f} s): {text}", status), wait
        if status >= 500:
            return failed("http_5xx", f"{status}: {text}", status), 0.0
        return failed("http_4xx", f"{status}: {text}", status), 0.0

    # ----------------------------------------------------------------- helpers

    def _breaker_changed(self, old: BreakerState, new: BreakerState, reason: str) -> None:
        tab_metrics.TAB_CIRCUIT_OPEN.set(tab_metrics.CIRCUIT_GAUGE_VALUE[new])
        level = logging.WARNING if new == "open" else logging.INFO
        log_event(
            logger, "tab_circuit_state", level, host=self.settings.base_url, old=old, new=new, reason=reason
        )

    def _log_failure(self, failure: FetchFailure, **context: Any) -> None:
        log_event(
            logger,
            "tab_fetch",
            logging.WARNING,
            endpoint=failure.endpoint,
            outcome="failed",
            kind=failure.kind,
            transient=failure.transient,
            http_status=failure.http_status,
            attempts=failure.attempts,
            duration_ms=round(failure.duration_ms, 1),
            error=failure.message,
            breaker=self._breaker.state,
            **context,
        )


def _meetings_page(http: _Http) -> tuple[_Http, list[Any]] | FetchFailure:
    try:
        body = http.decoded()
    except (OSError, EOFError, zlib.error) as exc:
        return _failure("decode", f"meetings page could not be inflated: {exc}", http)
    try:
        return http, decode_page(body)
    except PageDecodeError as exc:
        return _failure("decode", f"{exc}; body: {_excerpt(body)}", http)
    except PageSchemaError as exc:
        return _failure("schema", str(exc), http)


def _failure(kind: FailureKind, message: str, http: _Http) -> FetchFailure:
    return FetchFailure.of(kind, message, http_status=http.status, attempts=http.attempts)


def _with_duration(failure: FetchFailure, duration_ms: float) -> FetchFailure:
    return FetchFailure(
        kind=failure.kind,
        http_status=failure.http_status,
        attempts=failure.attempts,
        duration_ms=duration_ms,
        transient=failure.transient,
        message=failure.message,
        endpoint=failure.endpoint or "event",
        target=failure.target,
    )


def _excerpt(body: bytes) -> str:
    return body[:MESSAGE_LIMIT].decode("utf-8", errors="replace")


def _decoded(body: bytes, encoding: str) -> bytes:
    """`body` without its Content-Encoding (only gzip is asked for; anything else is passed on)."""
    return gzip.decompress(body) if encoding == "gzip" else body


def _error_text(raw: bytes, encoding: str) -> str:
    """The upstream error message (header.error) when the body has one, else a body excerpt."""
    try:
        body = _decoded(raw, encoding)
    except (OSError, EOFError, zlib.error):
        return f"({encoding} body that does not inflate)"
    if len(body) < 4096:
        try:
            header = json.loads(body).get("header", {})
            if isinstance(header, dict) and isinstance(header.get("error"), str):
                code = header.get("error_code")
                return f"{header['error']} ({code})" if code else str(header["error"])
        except (ValueError, AttributeError):
            pass
    return _excerpt(body)


def _summary_fields(summary: EventSummary) -> dict[str, Any]:
    return {
        "status_raw": summary["status_raw"],
        "status": summary["status"],
        "advertised_start": summary["advertised_start"],
        "runner_count": summary["runner_count"],
        "scratched_count": summary["scratched_count"],
        "tracker_rows": summary["tracker_rows"],
        "tracker_unknown_ids": summary["tracker_unknown_ids"],
        "pool_products": summary["pool_products"],
        "results_count": summary["results_count"],
        "dividends_count": summary["dividends_count"],
        "generated_time": summary["generated_time"],
    }
