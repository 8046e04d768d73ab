"""`raceday tabsim --archive URL --archive-date D`: an archived day served as the simulated TAB.

Three polls of the recorded event are archived (Open, Closed, Final); the simulator, its clock
pinned between the second and third poll, answers the event with the second payload byte for
byte (to the real TAB client, gzip on the wire) and lists the meeting with the race as Closed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime

import pytest

from services.common.payload_archive import pack
from services.common.proto.raceday.v1 import writer_pb2
from services.common.timestamps import timestamp_from_ms
from services.fetcher.tab_client import TabClient
from services.fetcher.tab_results import FetchFailure
from services.tabsim.config import TabSimConfig
from services.tabsim.server import run_tabsim
from services.writer.archive import archive_polls
from services.writer.db import Database, connect
from services.writer.maintenance import PartitionMaintainer
from services.writer.migrate import apply_migrations
from services.writer.settings import WriterSettings
from tests.tab.conftest import NZTAB_FIXTURES, inflated, tab_settings

DAY = date(2025, 7, 17)
T0 = int(datetime(2025, 7, 17, 0, 40, tzinfo=UTC).timestamp() * 1000)
SETTINGS = WriterSettings(write_pool_size=2, read_pool_size=1)


def _payloads() -> list[bytes]:
    document = json.loads((NZTAB_FIXTURES / "race-event-final.json").read_bytes())
    bodies = []
    for status in ("Open", "Closed", "Final"):
        document["data"]["race"]["status"] = status
        bodies.append(json.dumps(document).encode())
    return bodies


@pytest.fixture
async def archived_url(fresh_database_url: str) -> AsyncIterator[str]:
    """A database whose archive holds three polls of the recorded race, a minute apart."""
    conn = await connect(fresh_database_url, SETTINGS)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    db = Database(SETTINGS)
    await db.open(fresh_database_url)
    try:
        request = writer_pb2.ArchivePollsRequest()
        for index, body in enumerate(_payloads()):
            packed = pack(body, "identity")
            request.polls.append(
                writer_pb2.ArchivedPoll(
                    race_id="0f57e087-00d9-4c61-9549-835abe2ae2ed",
                    polled_at=timestamp_from_ms(T0 + index * 60_000),
                    payload_hash=packed.payload_hash,
                    raw_bytes=packed.raw_bytes,
                    zstd_payload=packed.zstd_payload,
                    received_encoding="identity",
                    received_bytes=len(body),
                )
            )
        maintainer = PartitionMaintainer(db)

        async def ensure(days: Iterable[date]) -> object:
            return await maintainer.ensure_days(days, reason="test")

        await archive_polls(db, request, ensure_days=ensure)
    finally:
        await db.close()
    yield fresh_database_url


async def test_an_archived_day_is_served_as_the_tab(archived_url: str) -> None:
    config = TabSimConfig(
        port=0, archive_url=archived_url, archive_date=DAY, now_ns=(T0 + 90_000) * 1_000_000, speed=0.001
    )
    async with run_tabsim(config) as sim, TabClient(tab_settings(sim.url)) as client:
        fetched = await client.fetch_event("0f57e087-00d9-4c61-9549-835abe2ae2ed", budget_s=10)
        assert not isinstance(fetched, FetchFailure)
        assert fetched.encoding == "gzip"
        assert inflated(fetched) == _payloads()[1]
        missing = await client.fetch_event("00000000-0000-0000-0000-000000000000", budget_s=10)
        assert isinstance(missing, FetchFailure) and missing.http_status == 404
        meetings = await client.fetch_meetings(DAY)
        assert not isinstance(meetings, FetchFailure)
        [meeting] = meetings.meetings
        assert meeting["meeting"] == "e9f2039d-d489-4a7d-aae1-d66225f1a5f4"
        assert meeting["name"] == "Awapuni Synthetic"
        [race] = meeting["races"]
        assert race["status"] == "Closed" and race["start_time"] == "2025-07-17T00:50:00Z"


def test_archive_needs_its_date() -> None:
    with pytest.raises(ValueError, match="go together"):
        TabSimConfig(archive_url="postgresql://x/y")
