"""What a money-flow engine offers: the Rust extension and the Python reference both fit.

The service always runs the Rust extension; the benchmark and the tests also drive the
reference through the same interface. `run_transform` is how the service and the CLI call
an engine: it completes the update with what the engines deliberately leave out.
"""

from __future__ import annotations

from typing import Protocol

from services.common.nztime import from_epoch_ms, nz_date
from services.transformer.records import PriorState, RaceUpdateRecord


class MoneyFlowEngine(Protocol):
    """The module-level API shared by `raceday_core` and `reference`.

    Both raise `raceday_core.errors.PayloadError` for a malformed payload.
    """

    def version(self) -> str:
        """Version of the engine."""
        ...

    def transform(self, payload: bytes, polled_at_ms: int, prior_state: PriorState) -> RaceUpdateRecord:
        """One poll: the raw event payload, the poll time and the prior state -> the update."""
        ...


def run_transform(
    engine: MoneyFlowEngine, payload: bytes, polled_at_ms: int, prior_state: PriorState
) -> RaceUpdateRecord:
    """One poll through `engine`, completed into the update the service stores and the CLI prints.

    Raises what `engine.transform` raises. The engines' own outputs stay comparable as they
    are (the benchmark and the tests compare them directly); the completion is the same for both.
    """
    update = engine.transform(payload, polled_at_ms, prior_state)
    _fill_race_date(update)
    return update


def nz_date_text(epoch_ms: int) -> str:
    """The NZ calendar date (YYYY-MM-DD) of an instant: the race date of a payload without one."""
    return nz_date(from_epoch_ms(epoch_ms)).isoformat()


def _fill_race_date(update: RaceUpdateRecord) -> None:
    """Give a race without a valid race_date_nz (and its meeting) the NZ date of its start.

    Done here rather than in the engines so that services/common/nztime stays the one
    Pacific/Auckland calendar: the Rust core would otherwise need a hand-written DST rule.
    """
    race = update["race"]
    if race["race_date_nz"] is None:
        race["race_date_nz"] = nz_date_text(race["start_time"])
    meeting = update["meeting"]
    if meeting["date"] is None:
        meeting["date"] = race["race_date_nz"]


def one_line(message: str, limit: int = 500) -> str:
    """A message folded onto one line and capped, fit for a gRPC status or a CLI error."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
