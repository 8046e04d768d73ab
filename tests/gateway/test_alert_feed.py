"""Alerts served to a user: the classifier against its golden file, a user's pages, the config cache,
and the live push's alert events (a hub with a stand-in for the writer)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc
import pytest

from services.common.proto.raceday.v1 import query_pb2, writer_pb2
from services.common.timestamps import timestamp_from_ms
from services.gateway import alert_feed
from services.gateway.errors import ApiError
from services.gateway.stream import AlertEvent, AlertSource, Change, ChangeHub
from tests.gateway import golden

DEFAULTS = golden.indicators(golden.load(golden.CLASSIFICATION)["configs"]["default"]["indicators"])
# Only the open-ended 50%+ range enabled.
PICKY = [
    query_pb2.AlertIndicator(
        display_order=item.display_order,
        percentage_range_min=item.percentage_range_min,
        percentage_range_max=item.percentage_range_max,
        color=item.color,
        enabled=item.display_order == 6,
    )
    if item.HasField("percentage_range_max")
    else item
    for item in DEFAULTS
]


def alert(alert_id: int, value: float, race_id: str = "r1") -> query_pb2.RaceAlert:
    """A stored alert as ListAlerts returns it."""
    return query_pb2.RaceAlert(
        alert_id=alert_id,
        race_id=race_id,
        race_name=f"Race {race_id}",
        race_number=5,
        meeting_id="m1",
        meeting_name="Ellerslie",
        entrant_id=f"{race_id}-e07",
        runner_number=7,
        runner_name="Seventh Heaven",
        kind="win_money",
        time_interval=3,
        previous_interval=4,
        value=value,
        polled_at=timestamp_from_ms(1_752_713_400_000 + alert_id),
        created_at=timestamp_from_ms(1_752_713_400_500 + alert_id),
    )


@pytest.mark.parametrize(
    "case", golden.load(golden.CLASSIFICATION)["cases"], ids=lambda case: str(case["name"])
)
def test_classification_matches_the_golden_file(case: dict[str, Any]) -> None:
    configs = golden.load(golden.CLASSIFICATION)["configs"]
    indicator = alert_feed.classify(golden.indicators(configs[case["config"]]["indicators"]), case["value"])
    document = alert_feed.indicator_document(indicator)
    if case["display_order"] is None:
        assert document is None, case["why"]
        return
    assert document == {
        "display_order": case["display_order"],
        "color": case["color"],
        "label": case["label"],
    }


def test_classification_refuses_values_that_are_not_numbers() -> None:
    assert alert_feed.classify(DEFAULTS, float("nan")) is None
    assert alert_feed.classify(DEFAULTS, float("inf")) is None  # as pickIndicator: finite values only


def test_an_alert_document_carries_its_classification() -> None:
    document = alert_feed.alert_document(alert(42, 12.345), alert_feed.classify(DEFAULTS, 12.345))
    assert document["alert_id"] == 42 and document["value"] == 12.35  # two decimals on the wire
    assert document["polled_at"] == "2025-07-17T12:50:00.042+12:00"
    assert document["indicator"] == {"display_order": 2, "color": "#BFDBFE", "label": "10–15%"}
    assert alert_feed.alert_document(alert(1, 6), None)["indicator"] is None


class Writer:
    """ListAlerts over a list of stored alerts (newest first), counting the calls."""

    def __init__(self, stored: Sequence[query_pb2.RaceAlert]) -> None:
        self.stored = sorted(stored, key=lambda item: -item.alert_id)
        self.calls: list[tuple[int | None, int]] = []

    async def fetch(self, cursor: int | None, size: int) -> list[query_pb2.RaceAlert]:
        self.calls.append((cursor, size))
        older = [item for item in self.stored if cursor is None or item.alert_id < cursor]
        return older[:size]


async def test_a_users_page_skips_what_the_user_does_not_see_and_keeps_the_cursor() -> None:
    # Alerts 1..30; every third one is 60 (50%+), the others 7 (5-10%).
    writer = Writer([alert(i, 60.0 if i % 3 == 0 else 7.0) for i in range(1, 31)])
    everything = await alert_feed.user_page(writer.fetch, DEFAULTS, limit=4, cursor=None)
    assert [a.alert_id for a, _ in everything.alerts] == [30, 29, 28, 27] and everything.next_cursor == 27
    assert writer.calls == [(None, 4)]

    # The picky user sees only the 60s: the page fills from further (larger) writer pages.
    writer.calls.clear()
    picky = await alert_feed.user_page(writer.fetch, PICKY, limit=4, cursor=None)
    assert [a.alert_id for a, _ in picky.alerts] == [30, 27, 24, 21] and picky.next_cursor == 21
    assert writer.calls == [(None, 4), (27, alert_feed.WRITER_PAGE_MAX)]
    assert {indicator.display_order for _, indicator in picky.alerts if indicator} == {6}
    rest = await alert_feed.user_page(writer.fetch, PICKY, limit=4, cursor=21)
    assert [a.alert_id for a, _ in rest.alerts] == [18, 15, 12, 9] and rest.next_cursor == 9
    last = await alert_feed.user_page(writer.fetch, PICKY, limit=4, cursor=9)
    assert [a.alert_id for a, _ in last.alerts] == [6, 3] and last.next_cursor is None
    # Nothing older than a full final page: the cursor is null once the writer runs out.
    done = await alert_feed.user_page(writer.fetch, DEFAULTS, limit=30, cursor=None)
    assert len(done.alerts) == 30 and done.next_cursor == 1
    assert (await alert_feed.user_page(writer.fetch, DEFAULTS, limit=30, cursor=1)).next_cursor is None


async def test_a_users_page_scans_a_bounded_number_of_writer_pages() -> None:
    writer = Writer([alert(i, 7.0) for i in range(1, 5001)])
    page = await alert_feed.user_page(writer.fetch, PICKY, limit=10, cursor=None)
    assert page.alerts == [] and len(writer.calls) == alert_feed.MAX_SCANS
    # The cursor is where the scan stopped: the client goes on from there.
    assert page.next_cursor == 5000 - 10 - (alert_feed.MAX_SCANS - 1) * alert_feed.WRITER_PAGE_MAX + 1


async def test_config_cache_reads_each_user_once_and_serves_stale_on_failure() -> None:
    loads: list[str] = []
    failing = False

    async def load(user: str) -> alert_feed.Indicators:
        loads.append(user)
        if failing:
            raise ApiError(503, "writer unavailable")
        return DEFAULTS if user == "a" else PICKY

    cache = alert_feed.ConfigCache(load, ttl_s=60)
    assert await cache.get("a") is DEFAULTS and await cache.get("a") is DEFAULTS
    assert await cache.get("b") is PICKY and loads == ["a", "b"]
    expired = alert_feed.ConfigCache(load, ttl_s=0)
    await expired.get("a")
    failing = True
    assert await expired.get("a") is DEFAULTS  # the reload failed: the copy it had
    with pytest.raises(ApiError):
        await expired.get("c")


class Source(AlertSource):
    """The writer behind the push, in memory."""

    def __init__(
        self, stored: Sequence[query_pb2.RaceAlert], configs: dict[str, alert_feed.Indicators]
    ) -> None:
        self.stored = list(stored)
        self.user_configs = configs
        self.reads = 0

        async def load(user: str) -> alert_feed.Indicators:
            if user not in self.user_configs:
                raise ApiError(503, "writer unavailable")
            return self.user_configs[user]

        self.configs = alert_feed.ConfigCache(load)

    async def newest_id(self) -> int:
        return max((item.alert_id for item in self.stored), default=0)

    async def after(self, alert_id: int) -> list[query_pb2.RaceAlert]:
        self.reads += 1
        return sorted(
            (item for item in self.stored if item.alert_id > alert_id), key=lambda item: item.alert_id
        )


def race_change(change_id: int, race_id: str, alerts: int) -> writer_pb2.RaceChange:
    return writer_pb2.RaceChange(
        id=change_id,
        race_id=race_id,
        meeting_id="m1",
        polled_at=timestamp_from_ms(1_752_713_400_000),
        committed_at=timestamp_from_ms(1_752_713_400_100),
        status="open",
        money_flow_rows=8,
        alerts=alerts,
    )


def drain(client: Any) -> list[Change | AlertEvent]:
    items = []
    while not client.queue.empty():
        items.append(client.queue.get_nowait())
    return items


async def test_the_hub_pushes_new_alerts_once_classified_per_user() -> None:
    source = Source([alert(10, 30.0)], {"u": DEFAULTS, "picky": PICKY})
    hub = ChangeHub(
        grpc.aio.insecure_channel("127.0.0.1:9"), client_queue=16, heartbeat_s=0.05, alerts=source
    )
    await hub.baseline_alerts()  # alert 10 was stored before: never pushed
    plain, _, _ = hub.connect(frozenset(), None)
    raw, _, _ = hub.connect(frozenset(), None, alerts=True)
    user_r1, _, _ = hub.connect(frozenset({"r1"}), None, alerts=True, user_id="u")
    picky, _, _ = hub.connect(frozenset(), None, alerts=True, user_id="picky")
    unknown, _, _ = hub.connect(frozenset(), None, alerts=True, user_id="nobody")

    source.stored += [alert(11, 7.5, "r1"), alert(12, 55.0, "r2"), alert(13, 4.0, "r1")]
    hub.receive(race_change(1, "r1", alerts=2))
    assert hub._alerts_due.is_set()
    assert await hub.push_new_alerts() == 3 and source.reads == 1
    assert await hub.push_new_alerts() == 0  # nothing new since

    def alerts_of(client: Any) -> list[tuple[int, Any]]:
        items = drain(client)
        assert isinstance(items[0], Change)  # the race change comes first
        documents = [json.loads(item.data) for item in items[1:] if isinstance(item, AlertEvent)]
        return [(document["alert_id"], document["indicator"]) for document in documents]

    assert [type(item) for item in drain(plain)] == [Change]  # no alerts unless asked for
    assert alerts_of(raw) == [(11, None), (12, None), (13, None)]  # no user: every alert, unclassified
    assert alerts_of(user_r1) == [(11, {"display_order": 1, "color": "#E5E7EB", "label": "5–10%"})]
    assert alerts_of(picky) == [(12, {"display_order": 6, "color": "#F3E8FF", "label": "50%+"})]
    assert alerts_of(unknown) == []  # its ranges could not be read: nothing it might not want

    # The stream itself: the alert event has no id (Last-Event-ID keeps following race changes).
    source.stored.append(alert(14, 12.0, "r1"))
    await hub.push_new_alerts()
    stream = hub.events(user_r1, missed=[], reset=False)
    assert await anext(stream) == b"retry: 3000\n\n"
    event = await anext(stream)
    assert event.startswith(b"event: alert\ndata: {") and event.endswith(b"}\n\n") and b"id:" not in event
    assert json.loads(event.split(b"data: ", 1)[1])["alert_id"] == 14
    await stream.aclose()


async def test_a_failed_baseline_skips_one_read_then_pushes_again() -> None:
    source = Source([alert(5, 30.0)], {})
    hub = ChangeHub(
        grpc.aio.insecure_channel("127.0.0.1:9"), client_queue=16, heartbeat_s=0.05, alerts=source
    )
    raw, _, _ = hub.connect(frozenset(), None, alerts=True)
    # No baseline yet (its read failed): the first change only takes it.
    assert await hub.push_new_alerts() == 0 and hub._last_alert_id == 5
    source.stored.append(alert(6, 8.0))
    assert await hub.push_new_alerts() == 1
    assert [json.loads(item.data)["alert_id"] for item in drain(raw) if isinstance(item, AlertEvent)] == [6]
