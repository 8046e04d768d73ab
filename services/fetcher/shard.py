"""Sharding: which races a fetcher replica owns (a stable hash of race_id modulo N)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    """Replica `index` of `count`; owns races whose id hashes to `index`."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse "i/N" (0 <= i < N)."""
        try:
            index_text, count_text = text.split("/")
            index, count = int(index_text, 10), int(count_text, 10)
        except ValueError:
            raise ValueError(f"must be i/N such as 0/2, got {text!r}") from None
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"needs 0 <= i < N, got {text!r}")
        return cls(index, count)

    def owns(self, race_id: str) -> bool:
        """True when this replica schedules `race_id`; the hash is the same in every process."""
        if self.count == 1:
            return True
        digest = hashlib.blake2b(race_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
