"""The TAB client against the simulated TAB over real HTTP on loopback (spec nztab-api §9)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs

from prometheus_client import REGISTRY

from services.fetcher.tab_client import EventFetch, FetchFailure, MeetingsFetch, TabClient
from services.fetcher.tab_settings import TabSettings
from services.tabsim.admin_client import TabSimAdmin
from services.tabsim.config import TabSimConfig
from services.tabsim.server import RunningTabSim, run_tabsim
from tests.conftest import free_port
from tests.tab.conftest import IDENTITY, NZTAB_FIXTURES, ClientFactory, inflated, open_race_id, tab_settings


async def _race_id(admin: TabSimAdmin) -> str:
    clock = await admin.clock()
    return open_race_id(await admin.scenario(), after_ms=clock["now_epoch_ms"])


async def _sim_day(admin: TabSimAdmin) -> date:
    """The NZ date of the simulator's clock (the day its scenario lays out)."""
    return date.fromisoformat((await admin.clock())["nz_date"])


async def _event_requests(admin: TabSimAdmin) -> list[dict[str, object]]:
    return list((await admin.requests(route="events"))["requests"])


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _state(client: TabClient) -> str:
    return client.breaker_state


class _RetrySignal(logging.Handler):
    """Sets an event when the client logs a retry for `cause`."""

    def __init__(self, cause: str) -> None:
        super().__init__()
        self.cause = cause
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "tab_retry" and getattr(record, "cause", None) == self.cause:
            self.event.set()

    async def wait(self) -> None:
        await asyncio.wait_for(self.event.wait(), timeout=10)


@contextlib.contextmanager
def _retry_logged(cause: str) -> Iterator[_RetrySignal]:
    signal = _RetrySignal(cause)
    logger = logging.getLogger("services.fetcher.tab_client")
    previous = logger.level
    logger.addHandler(signal)
    logger.setLevel(logging.INFO)
    try:
        yield signal
    finally:
        logger.removeHandler(signal)
        logger.setLevel(previous)


async def test_event_success_returns_raw_payload_and_summary(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    client = make_client()
    fetched = await client.fetch_event(race_id, budget_s=10)
    assert isinstance(fetched, EventFetch), fetched
    assert fetched.attempts == 1 and fetched.status_code == 200
    # The simulated TAB compresses as the real one does; the body is kept as received.
    assert fetched.encoding == "gzip"
    document = json.loads(inflated(fetched))
    assert document["header"]["title"] == f"Event Details: {race_id}"
    assert document["data"]["race"]["event_id"] == race_id
    plan = await admin.race(race_id)
    summary = fetched.summary
    assert summary["event_id"] == race_id
    assert summary["status"] == "open" and summary["status_raw"] == "Open"
    assert summary["runner_count"] == plan["runner_count"] == len(document["data"]["runners"])
    assert summary["tracker_rows"] == len(document["data"]["money_tracker"]["entrants"])
    assert summary["tracker_unknown_ids"] == len(plan["extra_tracker_ids"])
    assert "EarlyQuadrella" in summary["pool_products"] and "Win" in summary["pool_products"]
    assert summary["results_count"] == 0 and summary["dividends_count"] == 0
    assert abs(fetched.received_at_ms - time.time() * 1000) < 60_000
    # The whole event, every section the recorded one has (its size follows the field: 200-400 KB).
    recorded = json.loads((NZTAB_FIXTURES / "race-event-final.json").read_bytes())
    assert set(document["data"]) == set(recorded["data"])
    assert len(fetched.payload) < len(inflated(fetched)) // 4  # and it travels compressed

    (request,) = await _event_requests(admin)
    query = parse_qs(str(request["query"]))
    assert query == {"with_money_tracker": ["true"], "with_tote_trends_data": ["true"]}
    assert request["path"] == f"/affiliates/v1/racing/events/{race_id}"


async def test_identification_headers_are_sent_verbatim(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    # The base URL carries the prefix and a slash: the client must not double it.
    client = make_client(tab_settings(sim.url + "/affiliates/v1/"))
    fetched = await client.fetch_meetings(await _sim_day(admin))
    assert isinstance(fetched, MeetingsFetch)
    (request,) = (await admin.requests())["requests"]
    assert request["path"] == "/affiliates/v1/racing/meetings"
    assert request["headers"] == {
        "from": IDENTITY["from_"],
        "x-partner": IDENTITY["partner"],
        "x-partner-id": IDENTITY["partner_id"],
        "user-agent": IDENTITY["user_agent"],
        "accept": "application/json",
        "accept-encoding": "gzip",
    }


async def test_missing_identification_is_a_403_and_not_retried(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    client = make_client(TabSettings(base_url=sim.url))
    failure = await client.fetch_event(await _race_id(admin), budget_s=10)
    assert isinstance(failure, FetchFailure)
    assert (failure.kind, failure.http_status, failure.attempts) == ("http_4xx", 403, 1)
    assert "identification" in failure.message
    assert len(await _event_requests(admin)) == 1


async def test_connect_error_recovers_when_the_server_comes_up(make_client: ClientFactory) -> None:
    port = free_port()
    client = make_client(tab_settings(f"http://127.0.0.1:{port}"), backoff_base_s=0.4, backoff_jitter_s=0.0)
    with _retry_logged("connect") as retrying:
        fetch = asyncio.create_task(client.fetch_meetings(date(2025, 7, 17)))
        await retrying.wait()  # the first attempt found nothing listening
    async with run_tabsim(TabSimConfig(port=port, replay=True)):
        fetched = await fetch
    assert isinstance(fetched, MeetingsFetch), fetched
    assert fetched.attempts == 2 and fetched.total_meetings == 76


async def test_connect_error_exhausts_attempts(make_client: ClientFactory) -> None:
    client = make_client(tab_settings(f"http://127.0.0.1:{free_port()}"))
    failure = await client.fetch_event("0f57e087-00d9-4c61-9549-835abe2ae2ed", budget_s=10)
    assert isinstance(failure, FetchFailure)
    assert (failure.kind, failure.attempts, failure.transient, failure.http_status) == (
        "connect",
        3,
        True,
        None,
    )


async def test_timeout_recovers(sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(slow={"count": 1, "delay_s": 5.0})
    client = make_client(tab_settings(sim.url, timeout_s=1.5))
    fetched = await client.fetch_event(race_id, budget_s=10)
    assert isinstance(fetched, EventFetch), fetched
    assert fetched.attempts == 2
    assert [r["fault"] for r in await _event_requests(admin)] == ["slow", None]


async def test_5xx_recovers(sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(http_5xx={"count": 2, "status": 502})
    fetched = await make_client().fetch_event(race_id, budget_s=10)
    assert isinstance(fetched, EventFetch), fetched
    assert fetched.attempts == 3
    assert [r["status"] for r in await _event_requests(admin)] == [502, 502, 200]


async def test_5xx_gives_up_after_three_attempts(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    await admin.set_faults(http_5xx={"rate": 1.0})
    failure = await make_client().fetch_event(await _race_id(admin), budget_s=10)
    assert isinstance(failure, FetchFailure)
    assert (failure.kind, failure.http_status, failure.attempts, failure.transient) == (
        "http_5xx",
        503,
        3,
        True,
    )
    assert len(await _event_requests(admin)) == 3


async def test_429_waits_for_retry_after_seconds(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(http_429={"count": 1, "retry_after": "1"})
    fetched = await make_client().fetch_event(race_id, budget_s=10)
    assert isinstance(fetched, EventFetch), fetched
    assert fetched.attempts == 2
    first, second = await _event_requests(admin)
    assert first["status"] == 429 and second["status"] == 200
    assert int(str(second["received_at_ms"])) - int(str(first["received_at_ms"])) >= 1000


async def test_429_waits_for_retry_after_http_date(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    await admin.set_faults(http_429={"count": 1, "retry_after": format_datetime(when, usegmt=True)})
    fetched = await make_client().fetch_event(race_id, budget_s=10)
    assert isinstance(fetched, EventFetch), fetched
    _, second = await _event_requests(admin)
    assert int(str(second["received_at_ms"])) >= int(when.timestamp() * 1000) - 50


async def test_429_that_does_not_fit_the_budget_fails_and_pauses_the_client(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(http_429={"count": 1, "retry_after": "30"})
    client = make_client()
    failure = await client.fetch_event(race_id, budget_s=10)
    assert isinstance(failure, FetchFailure)
    assert (failure.kind, failure.http_status, failure.attempts) == ("http_429", 429, 1)
    assert failure.duration_ms < 5000  # it did not sit out a wait it could never finish
    # The client-wide pause: a new request fails fast without reaching the server.
    again = await client.fetch_event(race_id, budget_s=10)
    assert isinstance(again, FetchFailure) and again.kind == "http_429" and again.attempts == 0
    assert len(await _event_requests(admin)) == 1


async def test_429_pauses_other_requests_of_the_client(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(http_429={"count": 1, "retry_after": "1", "route": "meetings"})
    client = make_client()
    day = await _sim_day(admin)
    with _retry_logged("http_429") as retrying:
        meetings = asyncio.create_task(client.fetch_meetings(day))
        await retrying.wait()
    event = await client.fetch_event(race_id, budget_s=10)  # issued during the pause
    assert isinstance(event, EventFetch) and event.attempts == 1
    assert isinstance(await meetings, MeetingsFetch)
    log = (await admin.requests())["requests"]
    limited = next(r for r in log if r["status"] == 429)
    first_event = next(r for r in log if r["route"] == "events")
    assert int(str(first_event["received_at_ms"])) - int(str(limited["received_at_ms"])) >= 950


async def test_4xx_is_not_retried(sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory) -> None:
    failure = await make_client().fetch_event("no-such-race", budget_s=10)
    assert isinstance(failure, FetchFailure)
    assert (failure.kind, failure.http_status, failure.attempts, failure.transient) == (
        "http_4xx",
        404,
        1,
        False,
    )
    assert "event not found" in failure.message
    assert len(await _event_requests(admin)) == 1


async def test_budget_exhaustion_stops_retrying(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(http_5xx={"rate": 1.0})
    client = make_client(backoff_base_s=0.5, backoff_jitter_s=0.0)
    # 2 s: attempt, 0.5 s backoff, attempt; the next 1 s backoff would leave < 1 s: stop.
    failure = await client.fetch_event(race_id, budget_s=2.0)
    assert isinstance(failure, FetchFailure)
    assert failure.kind == "http_5xx" and failure.attempts == 2
    assert len(await _event_requests(admin)) == 2


async def test_slow_answer_is_cut_at_the_budget(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(slow={"rate": 1.0, "delay_s": 10.0})
    failure = await make_client().fetch_event(race_id, budget_s=2.0)
    assert isinstance(failure, FetchFailure)
    assert (failure.kind, failure.attempts, failure.transient) == ("timeout", 1, True)
    assert 1900 <= failure.duration_ms < 2600  # min(5 s, budget) per attempt; no attempt with < 1 s left


async def test_budget_too_small_for_any_attempt(make_client: ClientFactory) -> None:
    failure = await make_client().fetch_event("any", budget_s=0.5)
    assert isinstance(failure, FetchFailure)
    assert (failure.kind, failure.attempts) == ("timeout", 0)


async def test_data_error_is_an_upstream_error_and_not_retried(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(data_error={"count": 1, "message": "Event temporarily unavailable"})
    client = make_client()
    failure = await client.fetch_event(race_id, budget_s=10)
    assert isinstance(failure, FetchFailure)
    assert (failure.kind, failure.http_status, failure.attempts) == ("upstream_error", 200, 1)
    assert "Event temporarily unavailable" in failure.message
    assert len(await _event_requests(admin)) == 1
    assert client.breaker_state == "closed"
    assert isinstance(await client.fetch_event(race_id, budget_s=10), EventFetch)


async def test_truncated_json_is_a_clear_decode_failure(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(malformed={"count": 1, "mode": "truncated"})
    failure = await make_client().fetch_event(race_id, budget_s=10)
    assert isinstance(failure, FetchFailure)
    assert (failure.kind, failure.http_status, failure.attempts, failure.transient) == (
        "decode",
        200,
        1,
        True,
    )
    assert "not JSON" in failure.message and len(failure.message) <= 200


async def test_a_gzip_body_that_does_not_inflate_is_a_decode_failure(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(malformed={"count": 1, "mode": "bad_gzip"})
    client = make_client(breaker_failure_threshold=1)
    failure = await client.fetch_event(race_id, budget_s=10)
    assert isinstance(failure, FetchFailure)
    assert (failure.kind, failure.http_status, failure.attempts) == ("decode", 200, 1)
    assert "gzip" in failure.message and len(failure.message) <= 200
    # A body that cannot be read counts toward the breaker, as any undecodable body does.
    assert client.breaker_state == "open"


async def test_non_json_200_is_a_decode_failure(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    await admin.set_faults(malformed={"count": 1, "mode": "not_json"})
    failure = await make_client().fetch_meetings(await _sim_day(admin))
    assert isinstance(failure, FetchFailure)
    assert failure.kind == "decode" and "<!DOCTYPE html>" in failure.message


async def test_html_502_page_is_retried(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(malformed={"count": 1, "mode": "html"})
    fetched = await make_client().fetch_event(race_id, budget_s=10)
    assert isinstance(fetched, EventFetch) and fetched.attempts == 2


async def test_unknown_status_is_not_a_failure(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(status_override={race_id: "Postponed"})
    fetched = await make_client().fetch_event(race_id, budget_s=10)
    assert isinstance(fetched, EventFetch)
    assert fetched.summary["status_raw"] == "Postponed" and fetched.summary["status"] == "unknown"


async def test_breaker_opens_half_opens_and_closes(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    client = make_client(breaker_open_s=0.5, backoff_base_s=0.005, backoff_jitter_s=0.0)
    await admin.set_faults(http_5xx={"rate": 1.0})
    for _ in range(5):
        failure = await client.fetch_event(race_id, budget_s=10)
        assert isinstance(failure, FetchFailure) and failure.kind == "http_5xx"
    assert client.breaker_state == "open"
    assert _metric("raceday_tab_circuit_open") == 1.0
    sent = len(await _event_requests(admin))
    assert sent == 15

    blocked = await client.fetch_event(race_id, budget_s=10)
    assert isinstance(blocked, FetchFailure)
    assert (blocked.kind, blocked.attempts, blocked.transient) == ("circuit_open", 0, True)
    assert len(await _event_requests(admin)) == sent  # no network traffic while open

    await asyncio.sleep(0.55)
    assert _state(client) == "half_open"
    assert _metric("raceday_tab_circuit_open") == 0.5
    trial = await client.fetch_event(race_id, budget_s=10)  # fails: re-opens
    assert isinstance(trial, FetchFailure) and trial.kind == "http_5xx"
    assert client.breaker_state == "open"

    await admin.clear_faults()
    await asyncio.sleep(0.55)
    await admin.set_faults(slow={"count": 1, "delay_s": 0.3})
    first, second = await asyncio.gather(
        client.fetch_event(race_id, budget_s=10), client.fetch_event(race_id, budget_s=10)
    )
    # Half-open lets exactly one trial through; it succeeds and closes the breaker.
    assert isinstance(first, EventFetch)
    assert isinstance(second, FetchFailure) and second.kind == "circuit_open"
    assert _state(client) == "closed"
    assert _metric("raceday_tab_circuit_open") == 0.0
    assert isinstance(await client.fetch_event(race_id, budget_s=10), EventFetch)


async def test_4xx_and_in_band_errors_never_trip_the_breaker(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    client = make_client(breaker_open_s=0.5)
    for _ in range(6):
        failure = await client.fetch_event("no-such-race", budget_s=10)
        assert isinstance(failure, FetchFailure) and failure.kind == "http_4xx"
    await admin.set_faults(data_error={"rate": 1.0})
    race_id = await _race_id(admin)
    for _ in range(6):
        failure = await client.fetch_event(race_id, budget_s=10)
        assert isinstance(failure, FetchFailure) and failure.kind == "upstream_error"
    assert client.breaker_state == "closed"


async def test_meetings_are_paginated_deduplicated_and_filtered(make_client: ClientFactory) -> None:
    config = TabSimConfig(port=0, seed=5)
    async with run_tabsim(config) as big, TabSimAdmin(big.url) as big_admin:
        await big_admin.set_scenario(meetings=130, races=2)
        scenario = await big_admin.scenario()
        client = make_client(tab_settings(big.url))
        fetched = await client.fetch_meetings(date.fromisoformat(scenario["date"]))
        assert isinstance(fetched, MeetingsFetch), fetched
        local = [
            m for m in scenario["meetings"] if m["country"] in ("NZ", "AUS") and m["category"] in ("T", "H")
        ]
        assert fetched.pages == 2 and fetched.attempts == 2
        assert fetched.total_meetings == 130
        assert sorted(m["meeting"] for m in fetched.meetings) == sorted(m["meeting_id"] for m in local)
        assert 0 < len(local) < 130
        log = (await big_admin.requests(route="meetings"))["requests"]
        queries = [parse_qs(str(r["query"])) for r in log]
        assert [q["offset"] for q in queries] == [["0"], ["100"]]
        for query in queries:
            assert query["date_from"] == query["date_to"] == [scenario["date"]]
            assert query["limit"] == ["100"]


async def test_meeting_filter_follows_settings(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    day = await _sim_day(admin)
    everything = make_client(
        tab_settings(sim.url, countries=("NZ", "AUS", "UK", "USA"), categories=("T", "H", "G"))
    )
    scenario = await admin.scenario()
    fetched = await everything.fetch_meetings(day)
    assert isinstance(fetched, MeetingsFetch)
    wanted = [m for m in scenario["meetings"] if m["country"] in ("NZ", "AUS", "UK", "USA")]
    assert len(fetched.meetings) == len(wanted)
    greyhounds = make_client(
        tab_settings(sim.url, countries=("NZ", "AUS", "UK", "USA", "IRE"), categories=("G",))
    )
    only_g = await greyhounds.fetch_meetings(day)
    assert isinstance(only_g, MeetingsFetch)
    assert {m["category"] for m in only_g.meetings} <= {"G"}
    assert len(only_g.meetings) == sum(1 for m in scenario["meetings"] if m["category"] == "G")


async def test_concurrency_cap_limits_requests_in_flight(
    sim: RunningTabSim, admin: TabSimAdmin, make_client: ClientFactory
) -> None:
    race_id = await _race_id(admin)
    await admin.set_faults(slow={"rate": 1.0, "delay_s": 0.4})
    client = make_client(tab_settings(sim.url, max_concurrency=2))
    results = await asyncio.gather(*(client.fetch_event(race_id, budget_s=10) for _ in range(4)))
    assert all(isinstance(result, EventFetch) and result.attempts == 1 for result in results)
    received = sorted(int(str(r["received_at_ms"])) for r in await _event_requests(admin))
    assert len(received) == 4
    # Two go at once; the other two only after those answered (0.4 s later).
    assert received[1] - received[0] < 380 <= received[2] - received[0]
