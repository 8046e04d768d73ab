"""The raw-payload archive, off the hot path: every event payload the fetcher received, kept.

A poll hands its payload (the bytes as received, gzip or identity) to `PollArchiver.offer`,
which only appends to a bounded in-memory queue and returns: the poll never waits for the
archive. A background task takes what is queued, in batches, packs each payload on a worker
thread of low CPU priority (SHA-256 of the uncompressed bytes and a zstd frame,
services/common/payload_archive.py; all of it releases the GIL) and sends the batch to the
writer's ArchivePolls. A payload byte for byte as its race's previous one (polled again before
the TAB refreshed it) is not packed again: it has the same address and frame. When the queue is
full the payload is dropped, counted (`raceday_archive_dropped_total{reason="queue_full"}`)
and logged. A batch the writer cannot take for a transient reason (the database down, a deadline)
is tried again, with a growing pause, for up to `RACEDAY_ARCHIVE_RETRY_S`, while the queue goes on
filling: a poll committed just before an outage is archived once the database is back. A batch
refused for any other reason, or still refused when that time is up, is dropped the same way
(reason `write_failed`). The archive never slows or blocks a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import grpc
from prometheus_client import Counter, Gauge, Histogram

from services.common.channels import TRANSIENT_CODES
from services.common.config import Env
from services.common.logs import log_event
from services.common.payload_archive import (
    DEFAULT_ZSTD_LEVEL,
    ArchiveFormatError,
    PackedPayload,
    Packer,
    normalise_encoding,
)
from services.common.proto.raceday.v1 import writer_pb2, writer_pb2_grpc
from services.common.timestamps import timestamp_from_ms

if TYPE_CHECKING:
    from services.common.proto.raceday.v1.writer_pb2_grpc import WriterServiceAsyncStub

logger = logging.getLogger(__name__)

ARCHIVED = Counter(
    "raceday_archive_polls_total",
    "Raw event payloads handed to the writer's archive, by outcome: archived, or already_archived",
    ["outcome"],
)
DROPPED = Counter(
    "raceday_archive_dropped_total",
    "Raw event payloads not archived, by reason: queue_full, write_failed, bad_payload",
    ["reason"],
)
QUEUE_DEPTH = Gauge("raceday_archive_queue_depth", "Payloads waiting to be archived")
RAW_BYTES = Counter("raceday_archive_raw_bytes_total", "Uncompressed bytes of the payloads archived")
STORED_BYTES = Counter("raceday_archive_zstd_bytes_total", "zstd bytes of the payloads sent to the archive")
PACK_CPU = Counter(
    "raceday_archive_pack_cpu_seconds_total", "CPU time of the packing thread (inflate, SHA-256, zstd)"
)
UNCHANGED = Counter(
    "raceday_archive_unchanged_total",
    "Payloads received byte for byte as the race's previous one, sent without packing them again",
)
BATCH_SECONDS = Histogram(
    "raceday_archive_batch_seconds",
    "Time to pack and store one archive batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
for _outcome in ("archived", "already_archived"):
    ARCHIVED.labels(_outcome)
for _reason in ("queue_full", "write_failed", "bad_payload"):
    DROPPED.labels(_reason)

# The packing thread's nice value (Linux: per thread): it takes CPU that polls leave over.
PACK_NICENESS: Final = 10
# The pause before a transient failure's next try doubles from the first to the last.
RETRY_DELAY_S: Final = 0.5
RETRY_DELAY_MAX_S: Final = 10.0
# At most one drop line per this many seconds (the counter has every drop).
DROP_LOG_EVERY_S: Final = 10.0
# Races whose last received payload (as received, and packed) is kept to recognise an unchanged
# one: about 50 KB gzip and 25 KB zstd each.
LAST_PACKED_RACES: Final = 64


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    """The fetcher side of the archive."""

    enabled: bool = True
    queue_max: int = 512
    batch_max: int = 16
    zstd_level: int = DEFAULT_ZSTD_LEVEL
    deadline_s: float = 10.0
    # How long a batch waits to fill after its first payload: fewer, larger ArchivePolls calls.
    linger_s: float = 1.0
    # How long a batch the writer refuses for a transient reason is tried again before it is
    # dropped: longer than a database restart or fail-over, so that an outage loses nothing.
    retry_s: float = 600.0

    @classmethod
    def from_env(cls, env: Env | None = None) -> ArchiveSettings:
        """Read and validate the archive variables (raises ConfigError naming a bad one)."""
        env = env or Env()
        return cls(
            enabled=env.flag("RACEDAY_ARCHIVE_ENABLED", True),
            queue_max=env.integer("RACEDAY_ARCHIVE_QUEUE_MAX", 512, minimum=1, maximum=100_000),
            batch_max=env.integer("RACEDAY_ARCHIVE_BATCH_MAX", 16, minimum=1, maximum=1000),
            zstd_level=env.integer("RACEDAY_ARCHIVE_ZSTD_LEVEL", DEFAULT_ZSTD_LEVEL, minimum=1, maximum=19),
            deadline_s=env.number("RACEDAY_ARCHIVE_DEADLINE_S", 10.0, minimum=0.1, maximum=300.0),
            linger_s=env.number("RACEDAY_ARCHIVE_LINGER_S", 1.0, minimum=0.0, maximum=60.0),
            retry_s=env.number("RACEDAY_ARCHIVE_RETRY_S", 600.0, minimum=0.0, maximum=86_400.0),
        )


@dataclass(frozen=True, slots=True)
class ReceivedPayload:
    """One event payload as the TAB sent it, with its poll identity."""

    race_id: str
    polled_at_ms: int
    payload: bytes
    encoding: str
    baseline: bool = False


@dataclass(frozen=True, slots=True)
class _LastPacked:
    """A race's last payload as received and as packed."""

    payload: bytes
    encoding: str
    packed: PackedPayload


class PollArchiver:
    """A bounded queue of received payloads and the task that archives them in batches."""

    def __init__(self, writer: grpc.aio.Channel, settings: ArchiveSettings) -> None:
        self.settings = settings
        self._writer: WriterServiceAsyncStub = writer_pb2_grpc.WriterServiceStub(writer)
        self._queue: asyncio.Queue[ReceivedPayload] = asyncio.Queue(maxsize=settings.queue_max)
        self._task: asyncio.Task[None] | None = None
        # Set when a whole batch is queued, so that the task wakes once per batch, not per payload.
        self._batch_ready = asyncio.Event()
        self._last_drop_log = 0.0
        # Used by one batch at a time (the task awaits each batch's packing before the next), on
        # one thread of low priority, so that packing yields the CPU to polls.
        self._packer = Packer(settings.zstd_level)
        # Touched on the packing thread only. The TAB refreshes an event about every 15 s and the
        # fetcher may poll it more often: a payload byte for byte as the race's previous one has
        # the same address and frame, so it is not inflated, hashed and compressed again.
        self._last_packed: OrderedDict[str, _LastPacked] = OrderedDict()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="poll-archive", initializer=_lower_priority
        )
        self.dropped = 0
        self.archived = 0
        # CPU seconds the packing thread spent (`raceday bench archive-cpu` reads it).
        self.pack_cpu_s = 0.0

    def offer(self, item: ReceivedPayload) -> bool:
        """Queue a payload for the archive without waiting; False (counted, logged) when full."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._drop("queue_full", 1, race_id=item.race_id)
            return False
        depth = self._queue.qsize()
        QUEUE_DEPTH.set(depth)
        # The task holds a batch's first payload while it waits for the rest.
        if depth >= self.settings.batch_max - 1:
            self._batch_ready.set()
        return True

    @property
    def depth(self) -> int:
        """Payloads waiting."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the background task (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="poll-archive")

    async def drain(self) -> None:
        """Wait until everything queued so far has been archived or dropped."""
        await self._queue.join()

    async def stop(self, grace_s: float = 5.0) -> None:
        """Archive what is queued (up to `grace_s`), then stop the task."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=grace_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._executor.shutdown(wait=False)

    def _drop(self, reason: str, count: int, **context: object) -> None:
        DROPPED.labels(reason).inc(count)
        self.dropped += count
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_EVERY_S:
            self._last_drop_log = now
            log_event(
                logger,
                "archive_dropped",
                logging.WARNING,
                reason=reason,
                count=count,
                dropped_total=self.dropped,
                **context,
            )

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._queue.qsize() < self.settings.batch_max - 1 and self.settings.linger_s > 0:
                self._batch_ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_ready.wait(), timeout=self.settings.linger_s)
            while len(batch) < self.settings.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            QUEUE_DEPTH.set(self._queue.qsize())
            try:
                await self._archive(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("archive_batch_failed")
                self._drop("write_failed", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _pack(self, batch: list[ReceivedPayload]) -> writer_pb2.ArchivePollsRequest:
        started = time.thread_time()
        try:
            return self._pack_batch(batch)
        finally:
            cpu_s = time.thread_time() - started
            self.pack_cpu_s += cpu_s
            PACK_CPU.inc(cpu_s)

    def _pack_batch(self, batch: list[ReceivedPayload]) -> writer_pb2.ArchivePollsRequest:
        request = writer_pb2.ArchivePollsRequest()
        for item in batch:
            try:
                encoding = normalise_encoding(item.encoding)
                packed = self._packed(item, encoding)
            except ArchiveFormatError as exc:
                self._drop("bad_payload", 1, race_id=item.race_id, detail=str(exc)[:200])
                continue
            RAW_BYTES.inc(packed.raw_bytes)
            STORED_BYTES.inc(len(packed.zstd_payload))
            request.polls.append(
                writer_pb2.ArchivedPoll(
                    race_id=item.race_id,
                    polled_at=timestamp_from_ms(item.polled_at_ms),
                    baseline=item.baseline,
                    payload_hash=packed.payload_hash,
                    raw_bytes=packed.raw_bytes,
                    zstd_payload=packed.zstd_payload,
                    received_encoding=encoding,
                    received_bytes=len(item.payload),
                )
            )
        return request

    def _packed(self, item: ReceivedPayload, encoding: str) -> PackedPayload:
        """The payload packed, or the race's previous packing when the bytes are the same."""
        last = self._last_packed.get(item.race_id)
        # A compare of the bytes as received (about 50 KB gzip) costs microseconds; packing them
        # costs about a millisecond.
        if last is not None and last.encoding == encoding and last.payload == item.payload:
            self._last_packed.move_to_end(item.race_id)
            UNCHANGED.inc()
            return last.packed
        packed = self._packer.pack(item.payload, encoding)
        self._last_packed[item.race_id] = _LastPacked(item.payload, encoding, packed)
        self._last_packed.move_to_end(item.race_id)
        if len(self._last_packed) > LAST_PACKED_RACES:
            self._last_packed.popitem(last=False)
        return packed

    async def _archive(self, batch: list[ReceivedPayload]) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        request = await loop.run_in_executor(self._executor, self._pack, batch)
        if not request.polls:
            return
        give_up_at = time.monotonic() + self.settings.retry_s
        delay = RETRY_DELAY_S
        while True:
            try:
                response: writer_pb2.ArchivePollsResponse = await self._writer.ArchivePolls(
                    request, timeout=self.settings.deadline_s
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in TRANSIENT_CODES or time.monotonic() + delay > give_up_at:
                    self._drop(
                        "write_failed",
                        len(request.polls),
                        code=exc.code().name,
                        detail=(exc.details() or "")[:200],
                    )
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAY_MAX_S)
                continue
            archived = response.polls_archived
            self.archived += archived
            ARCHIVED.labels("archived").inc(archived)
            ARCHIVED.labels("already_archived").inc(len(request.polls) - archived)
            BATCH_SECONDS.observe(time.perf_counter() - started)
            return


def _lower_priority() -> None:
    """Give the calling thread a lower CPU priority where the OS allows it (Linux: per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PACK_NICENESS)
