"""Sharing work between requests without serving stale data.

- `SingleFlight`: identical reads that arrive while one is in flight wait for that call instead
  of issuing their own (many dashboards polling the same race near its start).
- `EncodingCache`: the JSON (and gzip) bytes of a response, keyed by a digest of the upstream
  message and the request parameters that shape the body. The key is the data itself, so an
  entry can never be stale; it only saves re-encoding data that has not changed.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from google.protobuf.message import Message

T = TypeVar("T")

GZIP_LEVEL: Final = 6
# rest-api.md §1.6: compress bodies of 1 KB or more.
GZIP_MINIMUM_BYTES: Final = 1024
DEFAULT_CACHE_BYTES: Final = 64 * 1024 * 1024


class SingleFlight(Generic[T]):
    """Coalesces concurrent calls with the same key into one."""

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Task[T]] = {}

    async def run(self, key: Hashable, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """The result of `call()`, shared with every caller that asks for `key` meanwhile.

        The call runs in its own task and each caller waits through a shield, so a caller that is
        cancelled (a client that went away) never cancels the answer the others are waiting for.
        """
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(call())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved, so a failure nobody waited for is not logged as lost


@dataclass(frozen=True, slots=True)
class Encoded:
    """A JSON body, its weak ETag and its gzip form (for bodies of at least GZIP_MINIMUM_BYTES)."""

    body: bytes
    etag: str
    compressed: bytes | None

    @classmethod
    def of(cls, body: bytes) -> Encoded:
        """Encode once: validator and compressed form."""
        compressed = gzip.compress(body, GZIP_LEVEL, mtime=0) if len(body) >= GZIP_MINIMUM_BYTES else None
        return cls(body, weak_etag(body), compressed)

    @property
    def size(self) -> int:
        """Bytes held."""
        return len(self.body) + (len(self.compressed) if self.compressed is not None else 0)


def weak_etag(body: bytes) -> str:
    """A weak validator over the body."""
    return 'W/"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


class EncodingCache:
    """LRU of encoded bodies, bounded by total bytes."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._entries: OrderedDict[bytes, Encoded] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(kind: str, message: Message, params: tuple[Any, ...]) -> bytes:
        """A digest of what determines the body: the endpoint, its parameters and the upstream data."""
        digest = hashlib.blake2b(digest_size=20)
        digest.update(kind.encode())
        digest.update(repr(params).encode())
        digest.update(message.SerializeToString(deterministic=True))
        return digest.digest()

    def get(self, key: bytes, build: Callable[[], bytes]) -> Encoded:
        """The cached entry for `key`, or a new one encoded from `build()`."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry
        self.misses += 1
        entry = Encoded.of(build())
        if entry.size * 4 <= self._max_bytes:
            self._entries[key] = entry
            self._bytes += entry.size
            while self._bytes > self._max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size
        return entry
