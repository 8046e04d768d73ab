"""What a money-flow engine offers: the Rust extension and the Python reference both fit.

The service always runs the Rust extension; the benchmark and the tests also drive the
reference through the same interface.
"""

from __future__ import annotations

from typing import Protocol

from services.transformer.records import PriorState, RaceUpdateRecord


class MoneyFlowEngine(Protocol):
    """The module-level API shared by `_money_flow` and `reference`.

    Both raise `services.transformer.errors.PayloadError` for a malformed payload.
    """

    def version(self) -> str:
        """Version of the engine."""
        ...

    def transform(self, payload: bytes, polled_at_ms: int, prior_state: PriorState) -> RaceUpdateRecord:
        """One poll: the raw event payload, the poll time and the prior state -> the update."""
        ...


def one_line(message: str, limit: int = 500) -> str:
    """A message folded onto one line and capped, fit for a gRPC status or a CLI error."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
