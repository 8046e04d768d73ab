"""Synthetic but realistic RaceUpdate messages (the benchmark's input and the tests' raw material).

The time-to-start, bucket, interval-type and amount arithmetic comes from the Rust
money-flow core, so the rows look exactly like the transformer's output for a poll.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import raceday_core as core
from services.common.nztime import from_epoch_ms, nz_date
from services.common.proto.raceday.v1 import race_pb2
from services.common.protofields import opt
from services.common.series_kinds import ODDS_TYPES
from services.common.timestamps import timestamp_from_ms
from services.transformer.records import MoveCell, MoveRunner


@dataclass(slots=True)
class SyntheticRace:
    """The fixed facts of one synthetic race."""

    race_id: str
    start_ms: int
    meeting_id: str = "meeting-synthetic"
    meeting_name: str = "Synthetic Park"
    race_number: int = 1
    runners: int = 16
    category: str = "T"
    country: str = "NZ"
    scratched: frozenset[int] = field(default_factory=frozenset)

    def entrant_id(self, runner_number: int) -> str:
        """The entrant id of a runner number."""
        return f"{self.race_id}-e{runner_number:02d}"


def _holds(runners: int, poll_index: int) -> list[float]:
    """Hold percentages (two decimals) summing to about 100, drifting a little per poll."""
    weights = [(runners - i) + ((poll_index * (i + 3)) % 5) for i in range(runners)]
    total = sum(weights)
    return [round(100.0 * w / total, 2) for w in weights]


def _odds(runner_number: int, poll_index: int, kind: int) -> float:
    base = 1.5 + runner_number * 0.75 + kind * 0.1
    return round(base + (poll_index % 7) * 0.05, 2)


def _cell(row: race_pb2.MoneyFlowRow) -> MoveCell:
    return {
        "incremental_win_amount": row.incremental_win_amount,
        "incremental_place_amount": row.incremental_place_amount,
        "fixed_win_odds": opt(row, "fixed_win_odds"),
        "pool_win_odds": opt(row, "pool_win_odds"),
    }


def synthetic_update(
    race: SyntheticRace,
    polled_at_ms: int,
    *,
    poll_index: int = 0,
    status: str = "open",
    previous: race_pb2.RaceUpdate | None = None,
    odds_rows: str = "all",
    with_results: bool = False,
    with_moves: bool = False,
) -> race_pb2.RaceUpdate:
    """One poll of `race`.

    `previous` (the prior poll's update) gives increments against its amounts; without it
    every row is a baseline. `odds_rows` is "all" (four per runner), "changed" (only values
    that differ from `previous`) or "none". `with_moves` adds the moves the Rust core finds
    against `previous`'s rows when they are in the column before this poll's (a synthetic race
    has no older rows to look at).
    """
    start = from_epoch_ms(race.start_ms)
    tts = core.time_to_start(race.start_ms // 1000, polled_at_ms)
    bucket = core.bucket(tts)
    interval_type = core.interval_type(tts)
    win_total = 4_000_000 + poll_index * 65_000
    place_total = 1_800_000 + poll_index * 21_000
    update = race_pb2.RaceUpdate(race_id=race.race_id, polled_at=timestamp_from_ms(polled_at_ms))
    r = update.race
    r.race_id = race.race_id
    r.meeting_id = race.meeting_id
    r.race_number = race.race_number
    r.name = f"Synthetic Race {race.race_number}"
    r.status = status
    r.status_raw = status.capitalize()
    r.start_time.CopyFrom(timestamp_from_ms(race.start_ms))
    r.race_date_nz = nz_date(start).isoformat()
    r.type = race.category
    r.country = race.country
    r.distance = 1200 + 100 * (race.race_number % 8)
    r.track_condition = "Good 4"
    r.weather = "Fine"
    r.field_size = race.runners
    r.entrant_count = race.runners
    r.positions_paid = 3
    r.total_prize_money = 3_000_000
    r.video_channels.append("Trackside 1")
    m = update.meeting
    m.meeting_id = race.meeting_id
    m.meeting_name = race.meeting_name
    m.date = r.race_date_nz
    m.country = race.country
    m.category = race.category
    m.category_name = {"T": "Thoroughbred Horse Racing", "H": "Harness", "G": "Greyhounds"}[race.category]
    m.track_condition = "Good 4"
    m.weather = "Fine"

    prior_amounts: dict[str, tuple[int, int]] = {}
    prior_odds: dict[tuple[str, str], float | None] = {}
    if previous is not None:
        for row in previous.money_flow:
            prior_amounts[row.entrant_id] = (row.win_pool_amount, row.place_pool_amount)
        for entrant in previous.entrants:
            for kind in ODDS_TYPES:
                name = f"{kind}_odds"
                prior_odds[(entrant.entrant_id, kind)] = opt(entrant, name)
    money_flow = status == "open"
    for number, hold in zip(range(1, race.runners + 1), _holds(race.runners, poll_index), strict=True):
        entrant_id = race.entrant_id(number)
        scratched = number in race.scratched
        e = update.entrants.add(
            entrant_id=entrant_id,
            race_id=race.race_id,
            runner_number=number,
            name=f"Runner {number}",
            barrier=number,
            jockey=f"J Rider {number}",
            trainer_name=f"T Trainer {number}",
            silk_colours="Red, white sash",
            silk_url_64x64=f"https://silks.example/{number}_64.png",
            silk_url_128x128=f"https://silks.example/{number}_128.png",
            is_scratched=scratched,
            favourite=number == 1,
        )
        e.runner_change_json = json.dumps({"gear": None})
        odds = {kind: _odds(number, poll_index, i) for i, kind in enumerate(ODDS_TYPES)}
        if not scratched:
            e.fixed_win_odds = odds["fixed_win"]
            e.fixed_place_odds = odds["fixed_place"]
            e.pool_win_odds = odds["pool_win"]
            e.pool_place_odds = odds["pool_place"]
        if money_flow and not scratched:
            win, place, total, win_pct, place_pct = core.pool_amounts(hold, win_total, place_total)
            e.has_money_flow = True
            e.hold_percentage = hold
            e.bet_percentage = hold
            e.win_pool_amount = win
            e.place_pool_amount = place
            if win_pct is not None:
                e.win_pool_percentage = round(win_pct, 2)
            if place_pct is not None:
                e.place_pool_percentage = round(place_pct, 2)
            e.money_flow_at.CopyFrom(update.polled_at)
            before = prior_amounts.get(entrant_id)
            row = update.money_flow.add(
                race_id=race.race_id,
                entrant_id=entrant_id,
                time_to_start=tts,
                time_interval=bucket,
                interval_type=interval_type,
                hold_percentage=hold,
                bet_percentage=hold,
                win_pool_total=win_total,
                place_pool_total=place_total,
                win_pool_amount=win,
                place_pool_amount=place,
                total_pool_amount=total,
                incremental_win_amount=win - before[0] if before else win,
                incremental_place_amount=place - before[1] if before else place,
                is_baseline=before is None,
                fixed_win_odds=odds["fixed_win"],
                fixed_place_odds=odds["fixed_place"],
                pool_win_odds=odds["pool_win"],
                pool_place_odds=odds["pool_place"],
            )
            row.event_timestamp.CopyFrom(update.polled_at)
            row.advertised_start.CopyFrom(r.start_time)
            if win_pct is not None:
                row.win_pool_percentage = round(win_pct, 2)
            if place_pct is not None:
                row.place_pool_percentage = round(place_pct, 2)
        if scratched or odds_rows == "none":
            continue
        for kind in ODDS_TYPES:
            if odds_rows == "changed" and prior_odds.get((entrant_id, kind)) == odds[kind]:
                continue
            change = update.odds.add(race_id=race.race_id, entrant_id=entrant_id, type=kind, odds=odds[kind])
            change.event_timestamp.CopyFrom(update.polled_at)
    if with_moves and previous is not None and update.money_flow:
        column = core.previous_column(bucket)
        previous_cells = {
            row.entrant_id: _cell(row) for row in previous.money_flow if row.time_interval == column
        }
        current_cells = {row.entrant_id: _cell(row) for row in update.money_flow}
        runners: list[MoveRunner] = [
            {"entrant_id": e.entrant_id, "scratched": e.is_scratched} for e in update.entrants
        ]
        for move in core.moves(bucket, runners, previous_cells, current_cells):
            update.moves.add(**move)
    p = update.pools
    p.race_id = race.race_id
    p.win_pool_total = win_total
    p.place_pool_total = place_total
    p.quinella_pool_total = 900_000
    p.trifecta_pool_total = 1_200_000
    p.exacta_pool_total = 300_000
    p.first4_pool_total = 250_000
    p.total_race_pool = win_total + place_total + 900_000 + 1_200_000 + 300_000 + 250_000
    p.currency = "$"
    p.extracted_pools = 6
    p.data_quality_score = 100
    p.source = "tote_pools"
    p.last_updated.CopyFrom(update.polled_at)
    if with_results:
        res = update.results
        res.race_id = race.race_id
        res.results_available = True
        res.results_data_json = json.dumps(
            [
                {"position": i, "runner_number": i, "name": f"Runner {i}", "entrant_id": race.entrant_id(i)}
                for i in (1, 2, 3)
            ]
        )
        res.dividends_data_json = json.dumps(
            [{"product_name": "Pool Win", "dividend": 3.4, "status": "Final", "positions": [1]}]
        )
        res.fixed_odds_data_json = json.dumps(
            {"1": {"entrant_id": race.entrant_id(1), "runner_name": "Runner 1", "fixed_win_odds": 2.25}}
        )
        res.result_status = "final" if status == "final" else "interim"
        res.result_time.CopyFrom(update.polled_at)
    update.state.race_id = race.race_id
    return update
