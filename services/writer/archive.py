"""ArchivePolls: raw event payloads kept with their poll identity (migrations/0003_poll_archive.sql).

One batch, one pooled write connection, one transaction: the payloads not yet stored for
their NZ racing day, then the poll rows; both skip what is already there, so a batch sent
twice stores nothing twice. The racing day is the Pacific/Auckland date of the poll time
(services/common/nztime). A missing archive partition is recovered like a series one
(storage §6.5): the connection is released, the partition created on the maintenance path,
the batch retried once.

Reads for replay, export and the simulated TAB are here too: the polls of a range of NZ days
in poll order, and a payload by its address.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from psycopg import AsyncConnection

from services.common.logs import log_event
from services.common.nztime import nz_date
from services.common.payload_archive import ENCODINGS, HASH_BYTES
from services.common.proto.raceday.v1 import writer_pb2
from services.common.timestamps import ts_to_datetime
from services.writer import metrics
from services.writer.db import Database
from services.writer.errors import InvalidArgumentError
from services.writer.write_path import is_missing_partition

logger = logging.getLogger(__name__)

EnsureDays = Callable[[Iterable[date]], Awaitable[object]]
MAX_BATCH: Final = 1000

# The bytea arrays go in binary (%b). In text, psycopg hex-encodes each frame and quotes it with a
# regular expression, and PostgreSQL parses the array literal back (array_in, hex decode): profiled,
# that was most of the writer's and PostgreSQL's CPU per archived poll (0.75 and 0.65 ms for a
# 26 KB frame; 0.28 and 0.14 ms in binary).
INSERT_PAYLOADS: Final = """
INSERT INTO archive_payloads (racing_day, payload_hash, raw_bytes, zstd_payload)
SELECT * FROM unnest(%s::date[], %b::bytea[], %s::integer[], %b::bytea[])
ON CONFLICT (racing_day, payload_hash) DO NOTHING
"""
INSERT_POLLS: Final = """
INSERT INTO archive_polls (racing_day, race_id, polled_at, baseline, payload_hash, received_encoding,
                           received_bytes)
SELECT * FROM unnest(%s::date[], %s::text[], %s::timestamptz[], %s::boolean[], %b::bytea[], %s::text[],
                     %s::integer[])
ON CONFLICT (racing_day, race_id, polled_at) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class _Row:
    racing_day: date
    polled_at: datetime
    poll: writer_pb2.ArchivedPoll


def _rows(request: writer_pb2.ArchivePollsRequest) -> list[_Row]:
    """Validated rows of a request (InvalidArgumentError naming the first bad poll)."""
    if len(request.polls) > MAX_BATCH:
        raise InvalidArgumentError(f"at most {MAX_BATCH} polls per batch")
    rows: list[_Row] = []
    for index, poll in enumerate(request.polls):
        where = f"poll {index}"
        if not poll.race_id:
            raise InvalidArgumentError(f"{where}: race_id is required")
        if not poll.HasField("polled_at"):
            raise InvalidArgumentError(f"{where}: polled_at is required")
        if len(poll.payload_hash) != HASH_BYTES:
            raise InvalidArgumentError(f"{where}: payload_hash must be {HASH_BYTES} bytes")
        if not poll.zstd_payload:
            raise InvalidArgumentError(f"{where}: zstd_payload is empty")
        if poll.received_encoding not in ENCODINGS:
            raise InvalidArgumentError(f"{where}: received_encoding must be identity or gzip")
        if not 0 <= poll.raw_bytes < 2**31 or not 0 <= poll.received_bytes < 2**31:
            raise InvalidArgumentError(f"{where}: sizes out of range")
        polled_at = ts_to_datetime(poll.polled_at)
        rows.append(_Row(racing_day=nz_date(polled_at), polled_at=polled_at, poll=poll))
    return rows


async def _insert(db: Database, rows: Sequence[_Row]) -> tuple[int, int]:
    payloads: dict[tuple[date, bytes], _Row] = {}
    for row in rows:
        payloads.setdefault((row.racing_day, row.poll.payload_hash), row)
    async with db.write_connection() as conn, conn.transaction():
        # An archive batch need not wait for its WAL flush (a crash may lose the last fraction of a
        # second of it; the series' writes keep waiting for theirs), so it never queues a race
        # write's commit behind its own.
        await conn.execute("SET LOCAL synchronous_commit = off")
        cur = await conn.execute(
            INSERT_PAYLOADS,
            (
                [day for day, _ in payloads],
                [digest for _, digest in payloads],
                [row.poll.raw_bytes for row in payloads.values()],
                [row.poll.zstd_payload for row in payloads.values()],
            ),
        )
        stored = max(cur.rowcount, 0)
        cur = await conn.execute(
            INSERT_POLLS,
            (
                [row.racing_day for row in rows],
                [row.poll.race_id for row in rows],
                [row.polled_at for row in rows],
                [row.poll.baseline for row in rows],
                [row.poll.payload_hash for row in rows],
                [row.poll.received_encoding for row in rows],
                [row.poll.received_bytes for row in rows],
            ),
        )
        archived = max(cur.rowcount, 0)
    return archived, stored


async def archive_polls(
    db: Database, request: writer_pb2.ArchivePollsRequest, *, ensure_days: EnsureDays
) -> tuple[int, int]:
    """Store one batch; (polls newly archived, payloads newly stored)."""
    rows = _rows(request)
    if not rows:
        return 0, 0
    try:
        archived, stored = await _insert(db, rows)
    except Exception as exc:
        if not is_missing_partition(exc):
            raise
        days = {row.racing_day for row in rows}
        log_event(
            logger,
            "missing_partition",
            logging.ERROR,
            what="archive",
            dates=sorted(d.isoformat() for d in days),
        )
        metrics.MISSING_PARTITIONS.inc()
        await ensure_days(days)
        archived, stored = await _insert(db, rows)
    if archived:
        metrics.ROWS_WRITTEN.labels("archive_polls").inc(archived)
    if stored:
        metrics.ROWS_WRITTEN.labels("archive_payloads").inc(stored)
    return archived, stored


# --- reads -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchivedPollRow:
    """One archived poll (without its payload)."""

    racing_day: date
    race_id: str
    polled_at: datetime
    baseline: bool
    payload_hash: bytes
    received_encoding: str
    received_bytes: int


SELECT_POLLS: Final = """
SELECT racing_day, race_id, polled_at, baseline, payload_hash, received_encoding, received_bytes
FROM archive_polls
WHERE racing_day >= %s AND racing_day <= %s
ORDER BY polled_at, race_id
"""


async def archived_polls(conn: AsyncConnection[Any], first: date, last: date) -> list[ArchivedPollRow]:
    """Every archived poll of the NZ days first..last (inclusive), in poll order."""
    cur = await conn.execute(SELECT_POLLS, (first, last))
    return [ArchivedPollRow(*row) for row in await cur.fetchall()]


async def archived_payload(conn: AsyncConnection[Any], racing_day: date, digest: bytes) -> tuple[bytes, int]:
    """(zstd frame, uncompressed size) of a payload; LookupError when it is not archived."""
    cur = await conn.execute(
        "SELECT zstd_payload, raw_bytes FROM archive_payloads WHERE racing_day = %s AND payload_hash = %s",
        (racing_day, digest),
    )
    row = await cur.fetchone()
    if row is None:
        raise LookupError(f"payload {digest.hex()[:16]}… of {racing_day} is not in the archive")
    return bytes(row[0]), int(row[1])
