"""The shapes the money-flow transform consumes and produces, as plain dicts.

Both implementations (the Rust extension and the Python reference) take a
`PriorState` and return a `RaceUpdateRecord` with exactly these keys. Field names
are the column names of spec/storage.md and the field names of the protobuf
messages in proto/raceday/v1/race.proto; instants are integer milliseconds since
the epoch (UTC); money is integer cents; absent values are None.
"""

from __future__ import annotations

from typing import Any, TypedDict


class BucketLatestRecord(TypedDict):
    """The latest stored poll of one entrant in one bucket (RaceState.buckets)."""

    entrant_id: str
    time_interval: int
    polled_at: int
    row_id: int | None
    win_pool_amount: int
    place_pool_amount: int
    # The poll's stored increments and win prices: the cell of the column the next bucket's
    # moves compare with (MoveCell).
    incremental_win_amount: int
    incremental_place_amount: int
    fixed_win_odds: float | None
    pool_win_odds: float | None


class LastOddsRecord(TypedDict):
    """The last stored odds of one entrant and type; odds None = a stored null."""

    entrant_id: str
    type: str
    odds: float | None


class PoolsRecord(TypedDict):
    """Single-race pool totals in cents (money-flow.md §2)."""

    race_id: str
    win_pool_total: int
    place_pool_total: int
    quinella_pool_total: int
    trifecta_pool_total: int
    exacta_pool_total: int
    first4_pool_total: int
    total_race_pool: int
    currency: str
    extracted_pools: int
    data_quality_score: int
    source: str
    last_updated: int


class PriorState(TypedDict):
    """Everything a transform needs from the past of one race (mirrors the RaceState message)."""

    race_id: str
    buckets: list[BucketLatestRecord]
    odds: list[LastOddsRecord]
    status: str | None
    start_time: int | None
    protest: bool
    pools: PoolsRecord | None
    photo_finish: bool
    stewards_inquiry: bool
    protest_lodged: bool
    result_status: str | None
    result_time: int | None


class RaceRecord(TypedDict):
    """The race as normalised from data.race (write-side fields of the Race message)."""

    race_id: str
    meeting_id: str
    race_number: int
    name: str
    status: str
    status_raw: str | None
    start_time: int
    actual_start: int | None
    # None when the payload has no valid date: engine.run_transform fills it in (NZ date of
    # start_time), so the engines carry no NZ calendar of their own.
    race_date_nz: str | None
    start_time_nz: str | None
    tote_start_time: str | None
    type: str | None
    country: str | None
    state: str | None
    distance: int | None
    track_condition: str | None
    track_surface: str | None
    track_direction: str | None
    weather: str | None
    rail_position: str | None
    race_class: str | None
    entrant_count: int | None
    field_size: int | None
    positions_paid: int | None
    total_prize_money: int | None
    silk_url: str | None
    silk_base_url: str | None
    video_channels: list[str]


class MeetingRecord(TypedDict):
    """A minimal meeting derived from the race (money-flow.md §8.3)."""

    meeting_id: str
    meeting_name: str
    date: str | None  # = the race's race_date_nz, so None when that is (run_transform fills both)
    country: str
    state: str | None
    category: str
    category_name: str | None
    track_condition: str | None
    weather: str | None


class EntrantRecord(TypedDict):
    """A runner's current state; money-flow fields only meaningful when has_money_flow."""

    entrant_id: str
    race_id: str
    runner_number: int
    name: str
    barrier: int | None
    barrier_position: str | None
    jockey: str | None
    trainer_name: str | None
    silk_colours: str | None
    silk_url_64x64: str | None
    silk_url_128x128: str | None
    is_scratched: bool
    is_late_scratched: bool
    scratch_time: int | None
    favourite: bool
    mover: bool
    runner_change: Any
    fixed_win_odds: float | None
    fixed_place_odds: float | None
    pool_win_odds: float | None
    pool_place_odds: float | None
    has_money_flow: bool
    hold_percentage: float | None
    bet_percentage: float | None
    win_pool_percentage: float | None
    place_pool_percentage: float | None
    win_pool_amount: int | None
    place_pool_amount: int | None
    money_flow_at: int | None


class MoneyFlowRecord(TypedDict):
    """One money-flow row (money-flow.md §8.1). Percentages rounded to 2 dp half up."""

    race_id: str
    entrant_id: str
    event_timestamp: int
    source_generated_at: int | None
    advertised_start: int
    time_to_start: int
    time_interval: int
    interval_type: str
    hold_percentage: float
    bet_percentage: float
    win_pool_total: int
    place_pool_total: int
    win_pool_amount: int
    place_pool_amount: int
    total_pool_amount: int
    win_pool_percentage: float | None
    place_pool_percentage: float | None
    incremental_win_amount: int
    incremental_place_amount: int
    is_baseline: bool
    fixed_win_odds: float | None
    fixed_place_odds: float | None
    pool_win_odds: float | None
    pool_place_odds: float | None


class OddsRecord(TypedDict):
    """A changed odds value for odds_history; odds None = the price disappeared."""

    race_id: str
    entrant_id: str
    type: str
    odds: float | None
    event_timestamp: int


class ResultsRecord(TypedDict):
    """Results, dividends and flags (money-flow.md §10); the documents are JSON values."""

    race_id: str
    results_available: bool
    results_data: list[Any]
    dividends_data: list[Any]
    fixed_odds_data: dict[str, Any]
    result_status: str | None
    photo_finish: bool
    stewards_inquiry: bool
    protest_lodged: bool
    result_time: int | None


class QualityRecord(TypedDict):
    """One data-quality finding (money-flow.md §11)."""

    check: str
    level: str
    message: str
    value: float | None


class MoveRecord(TypedDict):
    """A move of one runner into the column of the poll's bucket (rest-api.md §4.1).

    `kind` is one of raceday_core.MOVE_KINDS: win_money and place_money in percentage points
    of the column's positive increments, win_price in percent of the earlier price.
    """

    entrant_id: str
    kind: str
    time_interval: int
    previous_interval: int
    value: float


class MoveRunner(TypedDict):
    """A runner as `moves` takes it: scratched runners count in neither column."""

    entrant_id: str
    scratched: bool


class MoveCell(TypedDict):
    """What the dashboard reads from a runner's latest row in one timeline column."""

    incremental_win_amount: int
    incremental_place_amount: int
    fixed_win_odds: float | None
    pool_win_odds: float | None


class RaceUpdateRecord(TypedDict):
    """Everything one poll produces; `state` is the prior state for the next poll."""

    race_id: str
    polled_at: int
    source_generated_at: int | None
    race: RaceRecord
    meeting: MeetingRecord
    entrants: list[EntrantRecord]
    money_flow: list[MoneyFlowRecord]
    odds: list[OddsRecord]
    pools: PoolsRecord | None
    results: ResultsRecord | None
    quality: list[QualityRecord]
    moves: list[MoveRecord]
    state: PriorState


class EventSummary(TypedDict):
    """A cheap digest of an event payload for the fetcher's per-fetch log line and checks.

    `event_id` is "" and `advertised_start` None only when `error` (data.error) is non-empty
    and the race fields are missing. `status` is normalised, `status_raw` as upstream.
    """

    event_id: str
    meeting_id: str | None
    race_number: int | None
    status_raw: str | None
    status: str
    advertised_start: int | None
    error: str
    runner_count: int
    scratched_count: int
    tracker_rows: int
    tracker_unknown_ids: int
    pool_products: list[str]
    results_count: int
    dividends_count: int
    generated_time: str | None


def empty_state(race_id: str) -> PriorState:
    """The prior state of a race never seen before."""
    return {
        "race_id": race_id,
        "buckets": [],
        "odds": [],
        "status": None,
        "start_time": None,
        "protest": False,
        "pools": None,
        "photo_finish": False,
        "stewards_inquiry": False,
        "protest_lodged": False,
        "result_status": None,
        "result_time": None,
    }
