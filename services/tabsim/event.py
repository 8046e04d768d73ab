"""The event payload (`data` of /racing/events/{id}) for a race at an instant.

Runner bodies come from the recorded race with new ids; odds, flags, pools, money
tracker, results and dividends come from the model. The output has the recorded
key names and layout (indent-4 JSON, Go-style integral numbers).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from services.common.nztime import NZ
from services.tabsim.model import RaceState, state_at
from services.tabsim.pretty import Raw, dumps
from services.tabsim.scenario import RaceModel
from services.tabsim.templates import EventTemplate, event_template

_DIVIDEND_NAMESPACE: Final = uuid.UUID("6f1c2c55-1b1e-4a63-9d55-2f1e8c3f0a11")
_PRODUCT_OF_DIVIDEND: Final = {
    "Pool Win": "Win",
    "Pool Place": "Place",
    "Pool Quinella": "Quinella",
    "Pool Trifecta": "Trifecta",
    "Pool First4": "FirstFour",
}


def number(value: float) -> float | int:
    """Integral floats as integers, like the upstream (Go) encoder writes them."""
    return int(value) if float(value).is_integer() else value


def go_time_string(epoch_s: int) -> str:
    """Go's time.String() of a UTC instant, as in `advertised_start_string`."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


@dataclass(frozen=True, slots=True)
class EventOptions:
    """What the request asked for and which content faults apply."""

    with_money_tracker: bool
    with_tote_trends: bool
    data_error: str = ""
    status_override: str | None = None
    drop_money_tracker: bool = False
    empty_pools: bool = False


class EventRenderer:
    """Renders event payloads; caches each race's pre-rendered runner bodies."""

    def __init__(self, template: EventTemplate | None = None) -> None:
        self._template = template or event_template()

    def data(
        self, race: RaceModel, clock_s: float, options: EventOptions
    ) -> tuple[dict[str, Any], RaceState]:
        """The `data` member (with pre-rendered runners) and the state it shows."""
        state = state_at(race, clock_s)
        status = options.status_override or state.status
        runners = self._runners(race, state)
        results_due = state.status in ("Interim", "Final")
        data: dict[str, Any] = {
            "race": self._race(race, state, status),
            "results": self._results(race) if results_due else None,
            "dividends": self._dividends(race, state) if results_due else None,
            "substitutions": None,
            "favourite": runners[state.favourite] if state.favourite is not None else None,
            "runners": runners,
            "derivatives": None,
            "mover": runners[state.mover] if state.mover is not None else None,
            "big_bets": None,
            "live_bets": None,
            "biggest_bet": None,
            "money_tracker": (
                {
                    "entrants": [
                        {"entrant_id": entrant_id, "hold_percentage": hold, "bet_percentage": bet}
                        for entrant_id, hold, bet in state.tracker_rows
                    ]
                }
                if options.with_money_tracker and not options.drop_money_tracker
                else None
            ),
            "tote_pools": self._pools(state, options),
            "error": options.data_error,
        }
        return data, state

    def _runners(self, race: RaceModel, state: RaceState) -> list[Raw]:
        rendered: list[Raw] = []
        for runner, now in zip(race.runners, state.runners, strict=True):
            recorded = self._template.runners[runner.template_index]
            if now.scratched:
                odds: dict[str, Any] = {"fixed_win": 0, "fixed_place": 0}
            else:
                odds = {
                    "fixed_win": number(now.fixed_win or 0),
                    "fixed_place": number(now.fixed_place or 0),
                    "pool_win": number(now.pool_win or 0),
                    "pool_place": number(now.pool_place or 0),
                }
            members: list[tuple[str, Any]] = [
                ("entrant_id", runner.entrant_id),
                ("name", runner.name),
                ("runner_number", runner.runner_number),
                ("barrier", runner.barrier),
            ]
            if runner.barrier_position is not None:
                members.append(("barrier_position", runner.barrier_position))
            members += [
                ("is_scratched", now.scratched),
                ("is_late_scratched", now.late_scratched),
                ("scratch_time", now.scratch_time),
                ("odds", odds),
                ("favourite", now.favourite),
                ("mover", now.mover),
            ]
            if isinstance(recorded.speedmap, dict):
                members.append(("speedmap", {**recorded.speedmap, "entrant_id": runner.entrant_id}))
            head = ",\n".join(f"    {json.dumps(key)}: {dumps(value, 1)}" for key, value in members)
            rendered.append(Raw("{\n" + head + ",\n" + recorded.static_inner + "\n}"))
        return rendered

    def _race(self, race: RaceModel, state: RaceState, status: str) -> dict[str, Any]:
        template = self._template.race
        start = state.advertised_start
        local = datetime.fromtimestamp(start, NZ)
        field_size = sum(1 for runner in state.runners if not runner.scratched)
        out = dict(template)
        out.update(
            {
                "event_id": race.race_id,
                "meeting_name": race.meeting_name,
                "display_meeting_name": race.meeting_name,
                "meeting_id": race.meeting_id,
                "status": status,
                "description": race.name,
                "advertised_start": start,
                "actual_start": state.actual_start,
                "advertised_start_string": go_time_string(start),
                "actual_start_string": go_time_string(state.actual_start),
                "race_date_nz": local.strftime("%Y-%m-%d"),
                "start_time_nz": f"{local:%H:%M:%S} {local.tzname()}",
                "race_number": race.race_number,
                "type": race.category,
                "start_type": "Mobile" if race.category == "H" else "",
                "country": race.country,
                "state": race.state,
                "distance": race.distance,
                "weather": race.weather,
                "track_condition": race.track_condition,
                "entrant_count": len(race.runners),
                "field_size": field_size,
                "positions_paid": 3 if field_size >= 8 else 2,
                "tips": self._tips(race),
                "video_channels_meta": self._video_meta(race, start),
            }
        )
        return out

    def _tips(self, race: RaceModel) -> list[str]:
        by_template: dict[str, str] = {}
        for runner in race.runners:
            recorded = self._template.runners[runner.template_index]
            by_template.setdefault(recorded.entrant_id, runner.entrant_id)
        tips = self._template.race.get("tips") or []
        return [by_template[tip] for tip in tips if tip in by_template]

    def _video_meta(self, race: RaceModel, start: int) -> dict[str, Any]:
        meta = self._template.race.get("video_channels_meta") or {}
        out: dict[str, Any] = {}
        for channel, details in meta.items():
            item = dict(details)
            item.update(
                {
                    "RaceNo": race.race_number,
                    "RaceType": race.category,
                    "VenueName": race.meeting_name,
                    "VenueCountryCode": race.country,
                    "UtcRaceStartTime": datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
            out[channel] = item
        return out

    def _pools(self, state: RaceState, options: EventOptions) -> list[dict[str, Any]]:
        totals = dict(state.pools)
        betting = state.status == "Open"
        settled = state.status in ("Interim", "Final")
        rows: list[dict[str, Any]] = []
        for recorded in self._template.pools:
            product = str(recorded["product_type"])
            if options.empty_pools and product in ("Win", "Place"):
                continue
            row = {key: value for key, value in recorded.items() if key != "tote_trends"}
            row["total"] = number(totals.get(product, 0) / 100)
            row["status"] = "OPEN" if betting else "CLOSED"
            if "is_final" in row:
                row["is_final"] = settled
            if options.with_tote_trends and "tote_trends" in recorded:
                trends = dict(recorded["tote_trends"])
                trends["pool_total"] = number(totals.get(product, 0) / 100)
                row["tote_trends"] = trends
            rows.append(row)
        return rows

    def _results(self, race: RaceModel) -> list[dict[str, Any]]:
        recorded = self._template.results
        rows: list[dict[str, Any]] = []
        for position, index in enumerate(race.finish_order, start=1):
            runner = race.runners[index]
            source = recorded[min(position, len(recorded)) - 1]
            row = dict(source)
            row.update(
                {
                    "position": position,
                    "name": runner.name,
                    "barrier": runner.barrier,
                    "runner_number": runner.runner_number,
                    "entrant_id": runner.entrant_id,
                }
            )
            if position > len(recorded):
                row["margin_length"] = number(
                    round(float(source["margin_length"]) + 1.5 * (position - len(recorded)), 1)
                )
            rows.append(row)
        return rows

    def _dividends(self, race: RaceModel, state: RaceState) -> list[dict[str, Any]]:
        finishing = {result["runner_number"]: result["position"] for result in self._template.results}
        finals = dict(race.pool_finals)
        ordered = sorted(self._template.dividends, key=lambda row: row["status"] != "Interim")
        rows: list[dict[str, Any]] = []
        for recorded in ordered:
            if recorded["status"] == "Final" and state.status != "Final":
                continue
            positions = []
            for slot in recorded["positions"]:
                place = finishing.get(slot["runner_number"])
                if place is None or place > len(race.finish_order):
                    break
                runner = race.runners[race.finish_order[place - 1]]
                positions.append({"runner_number": runner.runner_number, "position": slot["position"]})
            else:
                row = dict(recorded)
                product = _PRODUCT_OF_DIVIDEND.get(str(recorded["product_name"]))
                row["id"] = str(uuid.uuid5(_DIVIDEND_NAMESPACE, f"{race.race_id}|{recorded['id']}"))
                row["pool_size"] = number(finals.get(product, 0) / 100) if product else recorded["pool_size"]
                row["positions"] = positions
                row["description"] = ":".join(str(p["runner_number"]) for p in positions)
                rows.append(row)
        return rows
