"""The transformer's own settings (its listening ports are in services/common/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import Env

DEFAULT_WORKERS = 4


@dataclass(frozen=True, slots=True)
class TransformerSettings:
    """How many transforms run at once."""

    # Threads running the extension; it releases the GIL, so up to one per core runs in parallel.
    workers: int

    @classmethod
    def from_env(cls, env: Env | None = None) -> TransformerSettings:
        """Read RACEDAY_TRANSFORMER_WORKERS (1..64, default 4)."""
        env = env or Env()
        return cls(workers=env.integer("RACEDAY_TRANSFORMER_WORKERS", DEFAULT_WORKERS, minimum=1, maximum=64))
