"""The live change feed: every committed write reaches every writer's streams, once, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import grpc
from prometheus_client import REGISTRY

from services.common.proto.raceday.v1 import writer_pb2, writer_pb2_grpc
from services.common.timestamps import ts_to_datetime
from services.writer.changes import ChangeFeed
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from services.writer.servicer import WriterServicer, add_writer_servicer
from tests.writer.builder import START, minutes_before, new_race, poll, write
from tests.writer.conftest import TEST_SETTINGS


@asynccontextmanager
async def writer_server(
    database_url: str,
) -> AsyncIterator[tuple[writer_pb2_grpc.WriterServiceAsyncStub, ChangeFeed]]:
    """A writer of its own (pools, change feed, gRPC server) on the database."""
    db = Database(TEST_SETTINGS)
    await db.open(database_url)
    feed = ChangeFeed(db)
    feed.start()
    server = grpc.aio.server()
    add_writer_servicer(WriterServicer(db, PartitionMaintainer(db), feed), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield writer_pb2_grpc.WriterServiceStub(channel), feed
    finally:
        await channel.close()
        await feed.stop()
        await server.stop(0)
        await db.close()


async def _collect(stub: writer_pb2_grpc.WriterServiceAsyncStub, count: int) -> list[writer_pb2.RaceChange]:
    stream = stub.WatchRaceChanges(writer_pb2.WatchRaceChangesRequest())
    changes = []
    async for change in stream:
        changes.append(change)
        if len(changes) == count:
            break
    stream.cancel()
    return changes


async def test_every_commit_of_either_writer_reaches_both_streams(
    migrated_database_url: str, db: Database, maintainer: PartitionMaintainer
) -> None:
    before = REGISTRY.get_sample_value("raceday_data_age_at_commit_seconds_count") or 0.0
    async with (
        writer_server(migrated_database_url) as (first, first_feed),
        writer_server(migrated_database_url) as (second, second_feed),
    ):
        watchers = [asyncio.create_task(_collect(stub, 3)) for stub in (first, second)]
        # Both feeds listening and both streams subscribed before anything is committed.
        for feed in (first_feed, second_feed):
            await asyncio.wait_for(feed.listening.wait(), timeout=30)
            await asyncio.wait_for(feed.subscribed.wait(), timeout=30)
        race = new_race()
        polls = [poll(race, minutes_before(START, m), index=i) for i, m in enumerate((30, 20, 10))]
        for update in polls:
            update.source_generated_at.CopyFrom(update.polled_at)
        results = [await write(db, maintainer, polls[0])]
        duplicate = await write(db, maintainer, polls[0])  # written once: announced once
        # The other two through the writers' gRPC servers, one each.
        for stub, update in zip((first, second), polls[1:], strict=True):
            answer = await stub.WriteRaceUpdate(writer_pb2.WriteRaceUpdateRequest(update=update), timeout=10)
            assert answer.written and answer.HasField("change_id") and answer.HasField("committed_at")
        seen = await asyncio.wait_for(asyncio.gather(*watchers), timeout=30)

    assert not duplicate.written
    for changes in seen:
        assert [c.race_id for c in changes] == [race.race_id] * 3
        assert [ts_to_datetime(c.polled_at) for c in changes] == [ts_to_datetime(u.polled_at) for u in polls]
        ids = [c.id for c in changes]
        assert ids == sorted(set(ids)) and ids[0] == results[0].change_id
        first_change = changes[0]
        assert first_change.meeting_id == race.meeting_id and first_change.status == "open"
        assert first_change.money_flow_rows == 16 and not first_change.baseline
        assert ts_to_datetime(first_change.generated_at) == ts_to_datetime(polls[0].polled_at)
        committed = ts_to_datetime(first_change.committed_at)
        assert results[0].committed_at == committed
        assert timedelta(0) <= committed - ts_to_datetime(polls[0].polled_at)
    assert seen[0] == seen[1]
    after = REGISTRY.get_sample_value("raceday_data_age_at_commit_seconds_count") or 0.0
    assert after >= before + 1
