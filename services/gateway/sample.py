"""Synthetic race days for the gateway's tests and `raceday bench api`, written through the writer.

`RaceBuilder` produces successive RaceUpdate polls of one race with consistent money flow:
amounts, times to start and buckets come from the Rust money-flow core (money-flow.md §5-6),
increments follow §7 for a fixed start time, and odds changes are emitted only when a price
moves. It stands in for the fetcher and transformer when only the read side is under test.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import raceday_core as core
from services.common.nztime import nz_date, to_epoch_ms
from services.common.proto.raceday.v1 import race_pb2, writer_pb2, writer_pb2_grpc
from services.common.timestamps import datetime_to_ts


@dataclass(slots=True)
class Runner:
    """One entrant of a seeded race."""

    entrant_id: str
    number: int
    name: str
    jockey: str
    trainer: str
    win_odds: float
    place_odds: float
    scratched: bool = False
    silk_url: str | None = None


@dataclass(slots=True)
class RaceBuilder:
    """Builds the polls of one race; remembers bucket amounts to compute increments."""

    meeting: race_pb2.Meeting
    race: race_pb2.Race
    runners: list[Runner]
    start: datetime
    latest: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)
    last_odds: dict[tuple[str, str], float | None] = field(default_factory=dict)

    def poll(
        self,
        polled_at: datetime,
        *,
        holds: dict[str, float],
        win_pool: int,
        place_pool: int,
        status: str = "open",
        odds: dict[str, float] | None = None,
        results: race_pb2.RaceResults | None = None,
    ) -> race_pb2.RaceUpdate:
        """One poll: entrants, money flow (while open), odds changes and pools."""
        race = race_pb2.Race()
        race.CopyFrom(self.race)
        race.status = status
        update = race_pb2.RaceUpdate(race_id=race.race_id, polled_at=datetime_to_ts(polled_at), race=race)
        update.meeting.CopyFrom(self.meeting)
        # The money-flow rules themselves come from the Rust core, the one copy of them.
        minutes = core.time_to_start(to_epoch_ms(self.start) // 1000, to_epoch_ms(polled_at))
        bucket = core.bucket(minutes)
        for runner in self.runners:
            fixed_win = None if runner.scratched else (odds or {}).get(runner.entrant_id, runner.win_odds)
            fixed_place = None if runner.scratched else runner.place_odds
            entrant = race_pb2.Entrant(
                entrant_id=runner.entrant_id,
                race_id=race.race_id,
                runner_number=runner.number,
                name=runner.name,
                barrier=runner.number,
                jockey=runner.jockey,
                trainer_name=runner.trainer,
                silk_colours="Red, white sash",
                is_scratched=runner.scratched,
                favourite=runner.number == 1,
            )
            if runner.silk_url:
                entrant.silk_url_64x64 = runner.silk_url
                entrant.silk_url_128x128 = runner.silk_url
            if fixed_win is not None:
                entrant.fixed_win_odds = fixed_win
                entrant.pool_win_odds = round(fixed_win * 1.1, 2)
            if fixed_place is not None:
                entrant.fixed_place_odds = fixed_place
                entrant.pool_place_odds = round(fixed_place * 1.05, 2)
            hold = holds.get(runner.entrant_id)
            if status == "open" and not runner.scratched and hold is not None:
                win_amount, place_amount, *_ = core.pool_amounts(hold, win_pool, place_pool)
                entrant.has_money_flow = True
                entrant.hold_percentage = hold
                entrant.bet_percentage = hold
                entrant.win_pool_percentage = hold
                entrant.place_pool_percentage = hold
                entrant.win_pool_amount = win_amount
                entrant.place_pool_amount = place_amount
                entrant.money_flow_at.CopyFrom(datetime_to_ts(polled_at))
                update.money_flow.append(
                    self._flow_row(
                        runner,
                        polled_at=polled_at,
                        minutes=minutes,
                        bucket=bucket,
                        hold=hold,
                        win_pool=win_pool,
                        place_pool=place_pool,
                        entrant=entrant,
                    )
                )
            update.entrants.append(entrant)
            self._odds_changes(update, runner, polled_at, fixed_win, fixed_place)
        total = win_pool + place_pool + 3 * win_pool // 4 + win_pool // 2 + win_pool // 3 + win_pool // 5
        update.pools.CopyFrom(
            race_pb2.RacePools(
                race_id=race.race_id,
                win_pool_total=win_pool,
                place_pool_total=place_pool,
                quinella_pool_total=3 * win_pool // 4,
                trifecta_pool_total=win_pool // 2,
                exacta_pool_total=win_pool // 3,
                first4_pool_total=win_pool // 5,
                total_race_pool=total,
                currency="$",
                extracted_pools=6,
                data_quality_score=100,
                source="tote_pools",
                last_updated=datetime_to_ts(polled_at),
            )
        )
        if results is not None:
            update.results.CopyFrom(results)
        return update

    def _flow_row(
        self,
        runner: Runner,
        *,
        polled_at: datetime,
        minutes: int,
        bucket: int,
        hold: float,
        win_pool: int,
        place_pool: int,
        entrant: race_pb2.Entrant,
    ) -> race_pb2.MoneyFlowRow:
        # The poll has just set the entrant's amounts; the row carries the same ones.
        win_amount, place_amount = entrant.win_pool_amount, entrant.place_pool_amount
        buckets = self.latest.setdefault(runner.entrant_id, {})
        earlier = [value for value in buckets if value > bucket]
        if earlier:
            previous_win, previous_place = buckets[min(earlier)]
            increments = (win_amount - previous_win, place_amount - previous_place, False)
        else:
            increments = (win_amount, place_amount, True)
        buckets[bucket] = (win_amount, place_amount)
        return race_pb2.MoneyFlowRow(
            race_id=self.race.race_id,
            entrant_id=runner.entrant_id,
            event_timestamp=datetime_to_ts(polled_at),
            advertised_start=datetime_to_ts(self.start),
            time_to_start=minutes,
            time_interval=bucket,
            interval_type=core.interval_type(minutes),
            hold_percentage=hold,
            bet_percentage=hold,
            win_pool_total=win_pool,
            place_pool_total=place_pool,
            win_pool_amount=win_amount,
            place_pool_amount=place_amount,
            total_pool_amount=win_amount + place_amount,
            win_pool_percentage=hold,
            place_pool_percentage=hold,
            incremental_win_amount=increments[0],
            incremental_place_amount=increments[1],
            is_baseline=increments[2],
            fixed_win_odds=entrant.fixed_win_odds,
            fixed_place_odds=entrant.fixed_place_odds,
            pool_win_odds=entrant.pool_win_odds,
            pool_place_odds=entrant.pool_place_odds,
        )

    def _odds_changes(
        self,
        update: race_pb2.RaceUpdate,
        runner: Runner,
        polled_at: datetime,
        fixed_win: float | None,
        fixed_place: float | None,
    ) -> None:
        for kind, value in (("fixed_win", fixed_win), ("fixed_place", fixed_place)):
            key = (runner.entrant_id, kind)
            if key in self.last_odds and self.last_odds[key] == value:
                continue
            self.last_odds[key] = value
            change = race_pb2.OddsChange(
                race_id=self.race.race_id,
                entrant_id=runner.entrant_id,
                type=kind,
                event_timestamp=datetime_to_ts(polled_at),
            )
            if value is not None:
                change.odds = value
            update.odds.append(change)


NAMES = (
    "Frosbie",
    "Kiwi Gold",
    "Southern Cross",
    "Taupo Dawn",
    "Harbour Light",
    "Rangitoto",
    "Silver Fern",
    "Wairarapa",
    "Matariki",
    "Kauri Ridge",
    "Tui Song",
    "Pohutukawa",
)
JOCKEYS = ("A. Hart", "B. Ngata", "C. Lee", "D. Smith", "E. Tane", "F. Wong")
TRAINERS = ("J. Barry", "M. Walker", "R. Patel", "S. Cole")


def build_meeting(meeting_id: str, name: str, start: datetime, *, category: str = "T") -> race_pb2.Meeting:
    """A meeting on the NZ date of `start`."""
    return race_pb2.Meeting(
        meeting_id=meeting_id,
        meeting_name=name,
        date=nz_date(start).isoformat(),
        country="NZ",
        category=category,
        category_name={"T": "Thoroughbred Horse Racing", "H": "Harness Horse Racing", "G": "Greyhounds"}[
            category
        ],
        track_condition="Good4",
        weather="Fine",
        tote_status="open",
    )


def build_race(
    meeting: race_pb2.Meeting,
    race_id: str,
    number: int,
    start: datetime,
    *,
    field_size: int,
    status: str = "open",
) -> race_pb2.Race:
    """A race of `meeting` starting at `start`."""
    return race_pb2.Race(
        race_id=race_id,
        meeting_id=meeting.meeting_id,
        race_number=number,
        name=f"{meeting.meeting_name} Race {number} Handicap",
        status=status,
        start_time=datetime_to_ts(start),
        race_date_nz=nz_date(start).isoformat(),
        type=meeting.category,
        country="NZ",
        distance=1200 + 100 * number,
        track_condition="Good4",
        weather="Fine",
        field_size=field_size,
        entrant_count=field_size,
        positions_paid=3,
        total_prize_money=2_500_000,
        race_class="Rating 65",
    )


def build_runners(race_id: str, count: int, *, scratched: Sequence[int] = ()) -> list[Runner]:
    """`count` runners with distinct names and prices."""
    return [
        Runner(
            entrant_id=f"{race_id}-e{number:02d}",
            number=number,
            name=NAMES[(number - 1) % len(NAMES)],
            jockey=JOCKEYS[number % len(JOCKEYS)],
            trainer=TRAINERS[number % len(TRAINERS)],
            win_odds=round(2.0 + number * 1.5, 2),
            place_odds=round(1.2 + number * 0.4, 2),
            scratched=number in scratched,
        )
        for number in range(1, count + 1)
    ]


def results_for(runners: Sequence[Runner], polled_at: datetime, status: str) -> race_pb2.RaceResults:
    """Interim or final results: the first three non-scratched runners placed in order."""
    placed = [runner for runner in runners if not runner.scratched][:3]
    results = [
        {
            "position": index + 1,
            "runner_number": runner.number,
            "name": runner.name,
            "entrant_id": runner.entrant_id,
            "barrier": runner.number,
            "margin_length": 0.5 * index,
        }
        for index, runner in enumerate(placed)
    ]
    dividends = [
        {
            "product_name": "Pool Win",
            "dividend": 3.4,
            "status": status.capitalize(),
            "positions": [placed[0].number],
            "description": "Win",
        },
        {
            "product_name": "Pool Quinella",
            "dividend": 12.8,
            "status": status.capitalize(),
            "positions": [placed[0].number, placed[1].number],
            "description": "Quinella",
        },
    ]
    fixed = {
        str(runner.number): {
            "entrant_id": runner.entrant_id,
            "runner_name": runner.name,
            "fixed_win_odds": runner.win_odds,
            "fixed_place_odds": runner.place_odds,
        }
        for runner in runners
        if not runner.scratched
    }
    return race_pb2.RaceResults(
        race_id=runners[0].entrant_id.rsplit("-e", 1)[0],
        results_available=True,
        results_data_json=json.dumps(results),
        dividends_data_json=json.dumps(dividends),
        fixed_odds_data_json=json.dumps(fixed),
        result_status=status,
        result_time=datetime_to_ts(polled_at),
    )


def holds_for(runners: Sequence[Runner], step: int) -> dict[str, float]:
    """Hold percentages summing to about 100 that drift with `step` (runner 2 firms late)."""
    active = [runner for runner in runners if not runner.scratched]
    weights = {runner.entrant_id: 10.0 + (len(active) - index) * 2.0 for index, runner in enumerate(active)}
    if len(active) > 1:
        weights[active[1].entrant_id] += step * 6.0
    total = sum(weights.values())
    return {entrant_id: round(100 * weight / total, 2) for entrant_id, weight in weights.items()}


async def write(stub: writer_pb2_grpc.WriterServiceAsyncStub, update: race_pb2.RaceUpdate) -> None:
    """Write one poll through the writer; raises when it was not written."""
    response: writer_pb2.WriteRaceUpdateResponse = await stub.WriteRaceUpdate(
        writer_pb2.WriteRaceUpdateRequest(update=update), timeout=10
    )
    if not response.written:
        raise RuntimeError(f"poll of {update.race_id} was not written (already stored?)")
