"""Protobuf read-side messages → the JSON objects of rest-api.md §2.

Timestamps become Pacific/Auckland strings with milliseconds (services.common.nztime.format_nz),
money stays integer cents, odds and percentages are numbers with at most two decimals, and
unset optional fields are null.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.nztime import format_nz, from_epoch_ms
from services.common.proto.raceday.v1 import query_pb2, race_pb2
from services.common.protofields import opt


def timestamp(value: Timestamp) -> str:
    """A Timestamp in the contract's NZ format."""
    return _format_ms(value.seconds, value.nanos // 1_000_000)


@functools.lru_cache(maxsize=65536)
def _format_ms(seconds: int, millis: int) -> str:
    # Poll and write instants repeat across documents and requests; format each once.
    return format_nz(from_epoch_ms(seconds * 1000 + millis))


def ts(message: Message, field: str) -> str | None:
    """An optional Timestamp field in NZ format, or None when unset."""
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    return timestamp(value)


def dec(message: Message, field: str) -> float | None:
    """An optional odds or percentage field, rounded to two decimals for the wire."""
    if not message.HasField(field):
        return None
    value: float = getattr(message, field)
    return round(value, 2)


def json_document(text: str) -> Any:
    """A JSON text stored by the writer, returned as JSON (never as a string); empty → None."""
    if not text:
        return None
    return json.loads(text)


def meeting_summary(meeting: race_pb2.Meeting) -> dict[str, Any]:
    """MeetingSummary (§2)."""
    return {
        "meeting_id": meeting.meeting_id,
        "meeting_name": meeting.meeting_name,
        "country": meeting.country or None,
        "state": opt(meeting, "state"),
        "race_type": meeting.race_type or None,
        "category": meeting.category or None,
        "category_name": opt(meeting, "category_name"),
        "date": meeting.date,
        "status": meeting.status or None,
        "track_condition": opt(meeting, "track_condition"),
        "weather": opt(meeting, "weather"),
        "race_count": meeting.race_count,
        "first_race_time": ts(meeting, "first_race_time"),
        "created_at": ts(meeting, "created_at"),
        "updated_at": ts(meeting, "updated_at"),
    }


def meeting_detail(meeting: race_pb2.Meeting) -> dict[str, Any]:
    """MeetingSummary plus `tote_status` (§2.3)."""
    document = meeting_summary(meeting)
    document["tote_status"] = opt(meeting, "tote_status")
    return document


def race_summary(race: race_pb2.Race) -> dict[str, Any]:
    """RaceSummary (§2)."""
    return {
        "race_id": race.race_id,
        "meeting_id": race.meeting_id,
        "meeting_name": opt(race, "meeting_name"),
        "race_number": race.race_number,
        "name": race.name,
        "start_time": timestamp(race.start_time),
        "actual_start": ts(race, "actual_start"),
        "status": race.status or "unknown",
        "distance": opt(race, "distance"),
        "track_condition": opt(race, "track_condition"),
        "weather": opt(race, "weather"),
        "type": opt(race, "type"),
        "race_type": opt(race, "race_type"),
        "country": opt(race, "country"),
        "runner_count": race.runner_count,
        "field_size": opt(race, "field_size"),
        "created_at": ts(race, "created_at"),
        "updated_at": ts(race, "updated_at"),
    }


def race_detail(race: race_pb2.Race) -> dict[str, Any]:
    """RaceSummary plus the detail fields of §2.5."""
    document = race_summary(race)
    document.update(
        {
            "race_date_nz": race.race_date_nz,
            "start_time_nz": opt(race, "start_time_nz"),
            "track_surface": opt(race, "track_surface"),
            "track_direction": opt(race, "track_direction"),
            "rail_position": opt(race, "rail_position"),
            "race_class": opt(race, "race_class"),
            "entrant_count": opt(race, "entrant_count"),
            "positions_paid": opt(race, "positions_paid"),
            "total_prize_money": opt(race, "total_prize_money"),
            "state": opt(race, "state"),
            "silk_url": opt(race, "silk_url"),
            "video_channels": list(race.video_channels),
            "protest": opt(race, "protest"),
            "protest_reason": opt(race, "protest_reason"),
            "results_available": race.results_available,
            # Additive: the latest stored poll and the age of its data.
            "last_polled_at": ts(race, "last_polled_at"),
            "last_generated_at": ts(race, "last_generated_at"),
            "last_committed_at": ts(race, "last_committed_at"),
        }
    )
    return document


def navigation_entry(race: race_pb2.Race) -> dict[str, Any]:
    """Nav of §2.6."""
    return {
        "race_id": race.race_id,
        "name": race.name,
        "race_number": race.race_number,
        "start_time": timestamp(race.start_time),
        "status": race.status or "unknown",
        "meeting_id": race.meeting_id,
        "meeting_name": opt(race, "meeting_name"),
    }


def navigation(response: query_pb2.GetRaceNavigationResponse) -> dict[str, Any]:
    """The navigation body of §2.6 (camelCase keys by contract)."""

    def entry(present: bool, race: race_pb2.Race) -> dict[str, Any] | None:
        return navigation_entry(race) if present else None

    return {
        "previousRace": entry(response.HasField("previous_race"), response.previous_race),
        "nextRace": entry(response.HasField("next_race"), response.next_race),
        "nextScheduledRace": entry(response.HasField("next_scheduled_race"), response.next_scheduled_race),
    }


def entrant(item: race_pb2.Entrant) -> dict[str, Any]:
    """One entrant of §2.9 with its capped histories (oldest first)."""
    silk_64 = opt(item, "silk_url_64x64")
    silk_128 = opt(item, "silk_url_128x128")
    fixed_win = dec(item, "fixed_win_odds")
    fixed_place = dec(item, "fixed_place_odds")
    return {
        "entrant_id": item.entrant_id,
        "race_id": item.race_id,
        "runner_number": item.runner_number,
        "name": item.name,
        "barrier": opt(item, "barrier"),
        "barrier_position": opt(item, "barrier_position"),
        "jockey": opt(item, "jockey"),
        "trainer_name": opt(item, "trainer_name"),
        "silk_colours": opt(item, "silk_colours"),
        "silk_url_64x64": silk_64,
        "silk_url_128x128": silk_128,
        "silk_url_64": silk_64,
        "silk_url_128": silk_128,
        "silk_url": silk_64,
        "is_scratched": item.is_scratched,
        "is_late_scratched": item.is_late_scratched,
        "scratch_time": ts(item, "scratch_time"),
        "favourite": item.favourite,
        "mover": item.mover,
        "win_odds": fixed_win,
        "place_odds": fixed_place,
        "fixed_win_odds": fixed_win,
        "fixed_place_odds": fixed_place,
        "pool_win_odds": dec(item, "pool_win_odds"),
        "pool_place_odds": dec(item, "pool_place_odds"),
        "hold_percentage": dec(item, "hold_percentage"),
        "bet_percentage": dec(item, "bet_percentage"),
        "win_pool_percentage": dec(item, "win_pool_percentage"),
        "place_pool_percentage": dec(item, "place_pool_percentage"),
        "win_pool_amount": opt(item, "win_pool_amount"),
        "place_pool_amount": opt(item, "place_pool_amount"),
        "money_flow_at": ts(item, "money_flow_at"),
        "created_at": ts(item, "created_at"),
        "updated_at": ts(item, "updated_at"),
        "odds_history": [
            {"odds": dec(point, "odds"), "type": point.type, "timestamp": timestamp(point.timestamp)}
            for point in item.odds_history
        ],
        "money_flow_history": [
            {
                "hold_percentage": dec(point, "hold_percentage"),
                "win_pool_amount": point.win_pool_amount,
                "place_pool_amount": point.place_pool_amount,
                "time_interval": point.time_interval,
                "timestamp": timestamp(point.timestamp),
            }
            for point in item.money_flow_history
        ],
    }


def race_pools(pools: race_pb2.RacePools) -> dict[str, Any]:
    """The pools body of §2.10 (integer cents)."""
    return {
        "race_id": pools.race_id,
        "win_pool_total": pools.win_pool_total,
        "place_pool_total": pools.place_pool_total,
        "quinella_pool_total": pools.quinella_pool_total,
        "trifecta_pool_total": pools.trifecta_pool_total,
        "exacta_pool_total": pools.exacta_pool_total,
        "first4_pool_total": pools.first4_pool_total,
        "total_race_pool": pools.total_race_pool,
        "currency": pools.currency or "$",
        "data_quality_score": pools.data_quality_score,
        "extracted_pools": pools.extracted_pools,
        "source": pools.source or None,
        "last_updated": ts(pools, "last_updated"),
    }


def race_results(results: race_pb2.RaceResults) -> dict[str, Any]:
    """The results body of §2.11, with the JSON documents as JSON."""
    return {
        "race_id": results.race_id,
        "results_available": results.results_available,
        "results_data": json_document(results.results_data_json) or [],
        "dividends_data": json_document(results.dividends_data_json) or [],
        "fixed_odds_data": json_document(results.fixed_odds_data_json) or {},
        "result_status": opt(results, "result_status"),
        "photo_finish": results.photo_finish,
        "stewards_inquiry": results.stewards_inquiry,
        "protest_lodged": results.protest_lodged,
        "result_time": ts(results, "result_time"),
        "created_at": ts(results, "created_at"),
        "updated_at": ts(results, "updated_at"),
    }


def timeline_document(doc: query_pb2.TimelineDocument) -> dict[str, Any]:
    """One timeline document of §2.12."""
    observed = timestamp(doc.event_timestamp)
    stored = timestamp(doc.created_at)
    return {
        "id": doc.id,
        "row_id": doc.row_id,
        "race_id": doc.race_id,
        "entrant_id": doc.entrant_id,
        "type": "bucketed_aggregation",
        "pool_type": "combined",
        "time_interval": doc.time_interval,
        "time_to_start": doc.time_to_start,
        "interval_type": doc.interval_type,
        "hold_percentage": dec(doc, "hold_percentage"),
        "bet_percentage": dec(doc, "bet_percentage"),
        "win_pool_amount": doc.win_pool_amount,
        "place_pool_amount": doc.place_pool_amount,
        "total_pool_amount": doc.total_pool_amount,
        "winPoolAmount": doc.win_pool_amount,
        "placePoolAmount": doc.place_pool_amount,
        "win_pool_percentage": dec(doc, "win_pool_percentage"),
        "place_pool_percentage": dec(doc, "place_pool_percentage"),
        "incremental_win_amount": doc.incremental_win_amount,
        "incremental_place_amount": doc.incremental_place_amount,
        "incremental_amount": doc.incremental_win_amount,
        "is_baseline": doc.is_baseline,
        "fixed_win_odds": dec(doc, "fixed_win_odds"),
        "fixed_place_odds": dec(doc, "fixed_place_odds"),
        "pool_win_odds": dec(doc, "pool_win_odds"),
        "pool_place_odds": dec(doc, "pool_place_odds"),
        "event_timestamp": observed,
        "polling_timestamp": observed,
        "created_at": stored,
        "updated_at": stored,
    }


def alert_config(config: query_pb2.AlertConfig) -> dict[str, Any]:
    """The alert-configuration body of §2.13 (GET, POST and reset)."""
    audible = config.audible_alerts_enabled
    indicators = [
        {
            "indicator_id": item.indicator_id,
            "user_id": item.user_id or config.user_id,
            "indicator_type": item.indicator_type or "percentage_range",
            "percentage_range_min": round(item.percentage_range_min, 2),
            "percentage_range_max": dec(item, "percentage_range_max"),
            "color": item.color.upper(),
            "is_default": item.is_default,
            "enabled": item.enabled,
            "display_order": item.display_order,
            "audible_alerts_enabled": audible,
            "created_at": ts(item, "created_at"),
            "updated_at": ts(item, "updated_at"),
        }
        for item in sorted(config.indicators, key=lambda indicator: indicator.display_order)
    ]
    return {
        "user_id": config.user_id,
        "indicators": indicators,
        "toggle_all": bool(indicators) and all(item["enabled"] for item in indicators),
        "audible_alerts_enabled": audible,
    }


def backtest(date_from: str, date_to: str, response: query_pb2.GetBacktestResponse) -> dict[str, Any]:
    """GET /api/backtest: the figures per window (strike rates as fractions, returns in dollars per $1)."""

    def rate(count: int, races: int) -> float | None:
        return count / races if races else None

    return {
        "date_from": date_from,
        "date_to": date_to,
        "windows": [
            {
                "window_minutes": w.window_minutes,
                "races": w.races,
                "wins": w.wins,
                "places": w.places,
                "win_strike_rate": rate(w.wins, w.races),
                "win_strike_rate_ci": [w.win_ci_low, w.win_ci_high],
                "place_strike_rate": rate(w.places, w.races),
                "place_strike_rate_ci": [w.place_ci_low, w.place_ci_high],
                "win_return": w.win_return if w.HasField("win_return") else None,
                "win_return_races": w.win_return_races,
                "place_return": w.place_return if w.HasField("place_return") else None,
                "place_return_races": w.place_return_races,
            }
            for w in response.windows
        ],
    }
