"""A bounded queue per consumer of a fan-out: a consumer that falls behind is dropped, never buffered.

The writer's change feed (one queue per WatchRaceChanges stream) and the gateway's live stream (one
per Server-Sent Events client) hand every item to each consumer this way.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class DroppingQueue(Generic[T]):
    """A consumer's queue of items (None: the end); `dropped` once an item did not fit."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[T | None] = asyncio.Queue(maxsize)
        self.dropped = False

    def offer(self, item: T | None) -> bool:
        """Queue an item; True when this item did not fit and the consumer is dropped now."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped = True
            return True
        return False
