"""The raw-payload archive: ArchivePolls stores content-addressed zstd payloads per NZ day,
idempotently, recovers a missing partition, and its retention is independent of the series'."""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest

from raceday_core import PayloadDecodeError, inflate_payload
from services.common.net import free_port
from services.common.nztime import nz_today
from services.common.payload_archive import MAX_PAYLOAD_BYTES, ArchiveFormatError, pack, unpack
from services.common.proto.raceday.v1 import writer_pb2
from services.common.timestamps import timestamp_from_ms
from services.fetcher.archive import DROPPED, UNCHANGED, ArchiveSettings, PollArchiver, ReceivedPayload
from services.writer.archive import archived_payload, archived_polls
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from services.writer.partitions import (
    ARCHIVE_TABLES,
    PARTITIONED_TABLES,
    SERIES_TABLES,
    ensure_partitions,
    list_partitions,
)
from services.writer.servicer import WriterServicer, add_writer_servicer
from tests.conftest import FIXTURES
from tests.writer.conftest import TEST_SETTINGS, Stubs

EVENT = (FIXTURES / "nztab" / "race-event-final.json").read_bytes()
# 23:59 NZST on 2025-07-17 and 00:01 NZST on 2025-07-18: two NZ racing days a minute apart.
LATE = int(datetime(2025, 7, 17, 11, 59, tzinfo=UTC).timestamp() * 1000)
EARLY = int(datetime(2025, 7, 17, 12, 1, tzinfo=UTC).timestamp() * 1000)


def _poll(race_id: str, polled_at_ms: int, body: bytes, encoding: str) -> writer_pb2.ArchivedPoll:
    packed = pack(body, encoding)
    return writer_pb2.ArchivedPoll(
        race_id=race_id,
        polled_at=timestamp_from_ms(polled_at_ms),
        payload_hash=packed.payload_hash,
        raw_bytes=packed.raw_bytes,
        zstd_payload=packed.zstd_payload,
        received_encoding=encoding,
        received_bytes=len(body),
    )


def test_pack_addresses_the_uncompressed_bytes_and_round_trips() -> None:
    as_gzip = pack(gzip.compress(EVENT), "gzip")
    as_identity = pack(EVENT, "")
    assert as_gzip.payload_hash == as_identity.payload_hash
    assert as_gzip.raw_bytes == len(EVENT)
    # zstd of a TAB event: well under a tenth of the raw bytes.
    assert len(as_identity.zstd_payload) < len(EVENT) / 10
    assert unpack(as_gzip.zstd_payload, as_gzip.raw_bytes, as_gzip.payload_hash) == EVENT
    with pytest.raises(ArchiveFormatError, match="gzip"):
        pack(b"not gzip", "gzip")
    with pytest.raises(ArchiveFormatError, match="br"):
        pack(EVENT, "br")
    with pytest.raises(ArchiveFormatError, match="hash"):
        unpack(as_gzip.zstd_payload, as_gzip.raw_bytes, b"\0" * 32)


async def test_polls_are_archived_once_and_payloads_once_per_day(stubs: Stubs, db: Database) -> None:
    changed = EVENT.replace(b'"status"', b'"status" ', 1)
    request = writer_pb2.ArchivePollsRequest(
        polls=[
            _poll("r1", LATE - 15_000, EVENT, "identity"),
            # The same snapshot again, gzip this time: same address, stored once.
            _poll("r1", LATE, gzip.compress(EVENT), "gzip"),
            _poll("r1", EARLY, changed, "identity"),
            # The same snapshot on the next NZ day: stored again, in that day's partition.
            _poll("r2", EARLY, EVENT, "identity"),
        ]
    )
    # No partition exists: the first batch recovers them.
    first = await stubs.writer.ArchivePolls(request, timeout=10)
    assert (first.polls_archived, first.payloads_stored) == (4, 3)
    again = await stubs.writer.ArchivePolls(request, timeout=10)
    assert (again.polls_archived, again.payloads_stored) == (0, 0)

    async with db.read_connection() as conn:
        polls = await archived_polls(conn, date(2025, 7, 17), date(2025, 7, 18))
        assert [(p.race_id, p.racing_day, p.received_encoding) for p in polls] == [
            ("r1", date(2025, 7, 17), "identity"),
            ("r1", date(2025, 7, 17), "gzip"),
            ("r1", date(2025, 7, 18), "identity"),
            ("r2", date(2025, 7, 18), "identity"),
        ]
        assert polls[0].payload_hash == polls[1].payload_hash == polls[3].payload_hash
        frame, size = await archived_payload(conn, polls[2].racing_day, polls[2].payload_hash)
        assert unpack(frame, size, polls[2].payload_hash) == changed
        cur = await conn.execute(
            "SELECT tableoid::regclass::text, count(*) FROM archive_payloads GROUP BY 1 ORDER BY 1"
        )
        assert await cur.fetchall() == [
            ("archive_payloads_2025_07_17", 1),
            ("archive_payloads_2025_07_18", 2),
        ]


async def test_a_bad_batch_is_refused_whole(stubs: Stubs, db: Database) -> None:
    good = _poll("r1", LATE, EVENT, "identity")
    bad = writer_pb2.ArchivedPoll()
    bad.CopyFrom(good)
    bad.payload_hash = b"short"
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.writer.ArchivePolls(writer_pb2.ArchivePollsRequest(polls=[good, bad]), timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "poll 1" in (failure.value.details() or "")
    async with db.read_connection() as conn:
        assert await archived_polls(conn, date(2025, 7, 17), date(2025, 7, 17)) == []


async def _tables_by_day(database: Database) -> dict[str, set[date]]:
    async with database.maintenance_connection() as conn:
        infos = await list_partitions(conn, PARTITIONED_TABLES)
    found: dict[str, set[date]] = {table: set() for table in PARTITIONED_TABLES}
    for info in infos:
        found[info.table].add(info.day)
    return found


@pytest.mark.parametrize(("series_days", "archive_days"), [(30, 90), (90, 30)])
async def test_archive_and_series_retention_are_independent(
    migrated_database_url: str, series_days: int, archive_days: int
) -> None:
    settings = replace(TEST_SETTINGS, retention_days=series_days, archive_retention_days=archive_days)
    database = Database(settings)
    await database.open(migrated_database_url)
    try:
        now = datetime.now(UTC)
        today = nz_today(now)
        ages = (120, 60, 0)
        async with database.maintenance_connection() as conn:
            await ensure_partitions(conn, [today - timedelta(days=n) for n in ages], PARTITIONED_TABLES)
            # A stored archive poll 60 days old: kept or dropped with its partition only.
            old = datetime.combine(today - timedelta(days=60), datetime.min.time(), UTC) + timedelta(hours=1)
            await conn.execute(
                "INSERT INTO archive_polls (racing_day, race_id, polled_at, payload_hash, received_encoding,"
                " received_bytes) VALUES (%s, 'r-old', %s, %s, 'identity', 1)",
                (today - timedelta(days=60), old, b"\1" * 32),
            )
        await PartitionMaintainer(database).run(retention=True, now=now)
        found = await _tables_by_day(database)
        tomorrow = today + timedelta(days=1)
        for tables, keep in ((SERIES_TABLES, series_days), (ARCHIVE_TABLES, archive_days)):
            expected = {today - timedelta(days=n) for n in ages if n <= keep} | {today, tomorrow}
            for table in tables:
                assert found[table] == expected, table
        async with database.read_connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM archive_polls")
            assert await cur.fetchone() == ((1,) if archive_days >= 60 else (0,))
    finally:
        await database.close()


async def test_the_fetcher_archiver_never_waits_and_counts_what_it_drops(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    server = grpc.aio.server()
    add_writer_servicer(WriterServicer(db, maintainer), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    archiver = PollArchiver(channel, ArchiveSettings(queue_max=3, batch_max=2))
    dropped_before = DROPPED.labels("queue_full")._value.get()
    try:
        body = gzip.compress(EVENT)
        offered = [
            archiver.offer(ReceivedPayload("r1", LATE + i * 15_000, body, "gzip", baseline=i == 0))
            for i in range(4)
        ]
        # Nothing is archiving yet: the queue holds three and the fourth is dropped, at once.
        assert offered == [True, True, True, False]
        assert archiver.dropped == 1
        assert DROPPED.labels("queue_full")._value.get() == dropped_before + 1
        archiver.start()
        await archiver.drain()
        assert archiver.archived == 3
        async with db.read_connection() as conn:
            polls = await archived_polls(conn, date(2025, 7, 17), date(2025, 7, 18))
            cur = await conn.execute("SELECT count(*) FROM archive_payloads")
            assert await cur.fetchone() == (1,)
        assert [(p.baseline, p.received_encoding, p.received_bytes) for p in polls] == [
            (True, "gzip", len(body)),
            (False, "gzip", len(body)),
            (False, "gzip", len(body)),
        ]
    finally:
        await archiver.stop()
        await channel.close()
        await server.stop(0)


async def test_an_unchanged_payload_is_not_packed_again_and_a_full_batch_goes_at_once(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    server = grpc.aio.server()
    add_writer_servicer(WriterServicer(db, maintainer), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    # A linger far beyond the test's patience: batches go because they are full.
    archiver = PollArchiver(channel, ArchiveSettings(batch_max=3, linger_s=300.0))
    unchanged_before = UNCHANGED._value.get()
    changed = EVENT.replace(b'"status"', b'"status" ', 1)
    # gzip's header carries the time of compression: a fixed one, so that compressing the same
    # snapshot twice gives the same bytes, as the TAB's cache serves them.
    event_gz, changed_gz = gzip.compress(EVENT, mtime=0), gzip.compress(changed, mtime=0)
    sent = [
        ("r1", event_gz, "gzip"),
        ("r2", changed_gz, "gzip"),
        ("r1", gzip.compress(EVENT, mtime=0), "gzip"),  # byte for byte r1's previous: not packed again
        ("r1", EVENT, "identity"),  # the same snapshot, received another way: packed
        ("r1", EVENT, "identity"),  # unchanged
        ("r1", changed_gz, "gzip"),  # changed
    ]
    try:
        archiver.start()
        for i, (race_id, body, encoding) in enumerate(sent):
            assert archiver.offer(ReceivedPayload(race_id, LATE - 60_000 + i * 1000, body, encoding))
        await asyncio.wait_for(archiver.drain(), timeout=30)
        assert archiver.archived == len(sent)
        assert UNCHANGED._value.get() == unchanged_before + 2
        async with db.read_connection() as conn:
            polls = await archived_polls(conn, date(2025, 7, 17), date(2025, 7, 17))
            assert [(p.race_id, p.received_encoding) for p in polls] == [(r, e) for r, _, e in sent]
            for poll, (_, body, encoding) in zip(polls, sent, strict=True):
                frame, size = await archived_payload(conn, poll.racing_day, poll.payload_hash)
                raw = body if encoding == "identity" else gzip.decompress(body)
                assert unpack(frame, size, poll.payload_hash) == raw
                assert poll.received_bytes == len(body)
            cur = await conn.execute("SELECT count(*) FROM archive_payloads")
            assert await cur.fetchone() == (2,)
    finally:
        await archiver.stop()
        await channel.close()
        await server.stop(0)


async def test_a_batch_waits_for_a_writer_that_comes_back(
    db: Database, maintainer: PartitionMaintainer
) -> None:
    """A database outage (the writer unreachable) loses no archived poll within RACEDAY_ARCHIVE_RETRY_S."""
    port = free_port()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    archiver = PollArchiver(channel, ArchiveSettings(batch_max=2, linger_s=0.0, retry_s=60.0))
    server = grpc.aio.server()
    add_writer_servicer(WriterServicer(db, maintainer), server)
    body = gzip.compress(EVENT)
    try:
        archiver.start()
        assert archiver.offer(ReceivedPayload("r1", LATE, body, "gzip"))
        # Longer than three tries half a second apart: nobody answers for 4 s.
        await asyncio.sleep(4.0)
        assert archiver.archived == 0
        assert archiver.dropped == 0
        assert archiver.offer(ReceivedPayload("r1", LATE + 15_000, body, "gzip"))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await asyncio.wait_for(archiver.drain(), timeout=30)
        assert (archiver.archived, archiver.dropped) == (2, 0)
        async with db.read_connection() as conn:
            polls = await archived_polls(conn, date(2025, 7, 17), date(2025, 7, 17))
        assert [p.polled_at for p in polls] == [
            datetime.fromtimestamp(ms / 1000, UTC) for ms in (LATE, LATE + 15_000)
        ]
    finally:
        await archiver.stop()
        await channel.close()
        await server.stop(0)


async def test_a_batch_still_refused_when_its_retry_time_is_up_is_dropped_and_counted() -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
    archiver = PollArchiver(channel, ArchiveSettings(linger_s=0.0, retry_s=1.0))
    dropped_before = DROPPED.labels("write_failed")._value.get()
    try:
        archiver.start()
        assert archiver.offer(ReceivedPayload("r1", LATE, gzip.compress(EVENT), "gzip"))
        await asyncio.wait_for(archiver.drain(), timeout=30)
        assert (archiver.archived, archiver.dropped) == (0, 1)
        assert DROPPED.labels("write_failed")._value.get() == dropped_before + 1
    finally:
        await archiver.stop()
        await channel.close()


def test_the_archive_inflates_with_the_rust_core_as_the_transformer_does() -> None:
    half = len(EVENT) // 2
    # Several gzip members are read as one body, like the transformer's reader.
    packed = pack(gzip.compress(EVENT[:half]) + gzip.compress(EVENT[half:]), "gzip")
    assert packed == pack(EVENT, "identity")
    assert inflate_payload(EVENT, "identity") == EVENT
    with pytest.raises(ArchiveFormatError, match="gzip"):
        pack(gzip.compress(EVENT)[:-9], "gzip")
    with pytest.raises(PayloadDecodeError, match="gzip"):
        inflate_payload(b"not gzip", "gzip")
    with pytest.raises(ValueError, match="br"):
        inflate_payload(EVENT, "br")
    # A gzip bomb: refused past MAX_PAYLOAD_BYTES, not inflated whole.
    with pytest.raises(ArchiveFormatError, match="more than"):
        pack(gzip.compress(bytes(MAX_PAYLOAD_BYTES + 1), 1), "gzip")
