"""Type stub of the Rust money-flow extension (rust_ext/binding).

Every function but `inflate_payload` (the raw-payload archive's, services/common/payload_archive.py)
mirrors one in `services.transformer.reference` (same signature, same results, same exception
classes). `transform` and `event_summary` parse the payload with
the GIL released. Malformed payloads raise `PayloadDecodeError` (not JSON / not UTF-8 /
root not an object) or `PayloadSchemaError` (a required field missing, of the wrong type
or out of range, or a non-empty `data.error`); the message names the field path. Bad
arguments that are not the payload raise plain `ValueError`: `polled_at_ms` outside
1970..2099, a prior state that is not the documented dict shape or holds a non-positive
or non-finite price, or a `prior_state["race_id"]` (when not "") of another race.
Entries of the prior state that a poll leaves unchanged are passed on into the new state as
the same dict objects: treat states as values to hand on, not to mutate.
The extension has no NZ calendar: when the payload has no valid `data.race.race_date_nz`,
`race["race_date_nz"]` and `meeting["date"]` are None (an invalid one also gives a finding);
`services.transformer.engine.run_transform` fills them in from services/common/nztime.
See rust_ext/README.md for the JSON reader's rules.
"""

from collections.abc import Callable, Mapping, Sequence

from raceday_core.errors import PayloadDecodeError as PayloadDecodeError
from raceday_core.errors import PayloadError as PayloadError
from raceday_core.errors import PayloadSchemaError as PayloadSchemaError
from services.transformer.records import (
    EventSummary,
    MoveCell,
    MoveRecord,
    MoveRunner,
    PriorState,
    RaceUpdateRecord,
)

RACE_STATUSES: tuple[str, ...]
"""Internal race statuses, in lifecycle order."""
CATEGORIES: tuple[str, ...]
"""Meeting categories: T (thoroughbred), H (harness), G (greyhound)."""
INTERVAL_TYPES: tuple[str, ...]
"""Money-flow interval types (money-flow.md §6.3)."""
ODDS_TYPES: tuple[str, ...]
"""The four odds types, in the order of an entrant's current-odds columns."""
RESULT_STATUSES: tuple[str, ...]
"""Result statuses of race_results (money-flow.md §10)."""
MOVE_KINDS: tuple[str, ...]
"""Kinds of move, in the order a runner's moves are listed: win_money, place_money, win_price."""
ALERT_THRESHOLD: float
"""A move of at least this value is worth an alert (the indicator threshold of rest-api.md §4.1)."""

class WriteDocument:
    """One update checked and rendered for the writer's `raceday_write_poll` (one JSON text per section)."""

    race_id: str
    polled_at: str
    """RFC 3339 UTC, to the microsecond."""
    generated_at: str | None
    """When the TAB generated the poll's data (header.generated_time), RFC 3339 UTC."""
    baseline: bool
    meeting: str
    race: str
    entrants: str
    """Unique entrants, the last of a repeated id winning."""
    money_flow: str | None
    """None for a baseline."""
    odds: str | None
    """None for a baseline."""
    pools: str | None
    results: str | None
    alerts: str | None
    """The moves at or above ALERT_THRESHOLD, for race_alerts; None for a baseline."""
    money_flow_rows: int
    odds_rows: int
    series_instants_us: list[int]
    """Distinct instants of the series rows (microseconds since the epoch): their partitions."""
    entrants_without_id: int
    """Entrants skipped because they have no id."""
    duplicate_entrant_ids: list[str]
    """Ids that appeared more than once (the last occurrence was kept)."""

def write_document(request: bytes) -> WriteDocument:
    """Check and render a serialised WriteRaceUpdateRequest (GIL released); ValueError names what is wrong."""

def version() -> str:
    """Version of the Rust money-flow core."""

def transform(payload: bytes, polled_at_ms: int, prior_state: PriorState) -> RaceUpdateRecord:
    """One poll of one race: payload + receive time (epoch ms) + prior state -> update (money-flow.md)."""

def transform_encoded(request: bytes, nz_date: Callable[[int], str]) -> bytes:
    """One poll, bytes to bytes: a serialised TransformRequest in, the serialised TransformResponse out.

    The same update `transform` gives (encoded as the records path encodes it), with the GIL
    released throughout. The payload may be gzip (`payload_encoding`). `nz_date(start_time_ms)`
    supplies the race date when the payload has no valid `race_date_nz`. Raises
    PayloadDecodeError / PayloadSchemaError for a bad payload (corrupt gzip included) and
    ValueError for a bad request (not a TransformRequest, polled_at missing or out of range, an
    unsupported encoding, an invalid prior state).
    """

def moves(
    time_interval: int,
    runners: Sequence[MoveRunner],
    previous: Mapping[str, MoveCell],
    current: Mapping[str, MoveCell],
) -> list[MoveRecord]:
    """Every defined move of timeline column `time_interval` against the column before it (rest-api.md §4.1).

    `previous` and `current` hold each runner's latest row in the two columns by entrant id (a
    runner without one has no row there); scratched runners count in neither. Runner order,
    then win_money, place_money, win_price; none for column 60. Computed with the GIL released,
    with the doubles the dashboard's indicators.js computes. ValueError for a malformed argument.
    """

def previous_column(time_interval: int) -> int | None:
    """The timeline column before `time_interval` (60, 55, ..., 5, 4, ..., 0, -1, ...), None for 60."""

def event_summary(payload: bytes, encoding: str = "") -> EventSummary:
    """A digest of an event payload for logging and in-band error detection (nztab-api.md §9.3, §9.7)."""

def inflate_payload(payload: bytes, encoding: str = "") -> bytes:
    """The body without its content encoding (identity or gzip, at most 64 MiB), with the GIL released;
    PayloadDecodeError when it does not inflate, ValueError for another encoding (the raw-payload archive)."""

def round_half_up(x: float) -> int:
    """R(x) = floor(x + 0.5) (money-flow.md §1.3); ValueError if not finite or beyond 64 bits."""

def time_to_start(advertised_start_s: int, polled_at_ms: int) -> int:
    """Whole minutes to the start, floor((start*1000 - polled_at + 30000) / 60000) (§6.1)."""

def bucket(time_to_start: int) -> int:
    """The time_interval bucket of a time to start (§6.2)."""

def interval_type(time_to_start: int) -> str:
    """`5m`, `2m`, `30s` or `live` (§6.3)."""

def hundredths(x: float) -> int:
    """Odds as integer hundredths, R(x * 100) (§1.5)."""

def pool_amounts(
    hold: float, win_cents: int, place_cents: int
) -> tuple[int, int, int, float | None, float | None]:
    """(win, place, total) amounts in cents and the unrounded win/place pool percentages (§5)."""
