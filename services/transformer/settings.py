"""The transformer's own settings (its listening ports are in services/common/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import Env

# 0: each transform runs on the event loop. Against a pool of 4 threads it measured cheaper per
# call and faster with calls in flight at once (README, "Comparing with an earlier revision"): no
# thread hand-off sits on either side of the Rust work.
DEFAULT_WORKERS = 0


@dataclass(frozen=True, slots=True)
class TransformerSettings:
    """Where transforms run."""

    # 0: on the event loop, one at a time. N: on N threads; the extension releases the GIL, so up
    # to one per core runs in parallel (for a process given more cores than one).
    workers: int

    @classmethod
    def from_env(cls, env: Env | None = None) -> TransformerSettings:
        """Read RACEDAY_TRANSFORMER_WORKERS (0..64, default 0: on the event loop)."""
        env = env or Env()
        return cls(workers=env.integer("RACEDAY_TRANSFORMER_WORKERS", DEFAULT_WORKERS, minimum=0, maximum=64))
