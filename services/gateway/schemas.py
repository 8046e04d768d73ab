"""JSON Schemas of the response bodies (rest-api.md §2), for the OpenAPI document.

Objects are closed (every documented key required, no others), so contract tests and the
schemathesis fuzzing catch any drift between the serializers and the contract.
"""

from __future__ import annotations

from typing import Any, Final

TIMESTAMP_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}[+-]\d{2}:\d{2}$"
DATE_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}$"

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """`schema` or null."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], *, closed: bool = True) -> Schema:
    """An object whose listed keys are all required."""
    schema: Schema = {"type": "object", "properties": properties, "required": list(properties)}
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: Schema) -> Schema:
    """An array of `items`."""
    return {"type": "array", "items": items}


STRING: Final[Schema] = {"type": "string"}
INTEGER: Final[Schema] = {"type": "integer"}
NUMBER: Final[Schema] = {"type": "number"}
BOOLEAN: Final[Schema] = {"type": "boolean"}
CENTS: Final[Schema] = {"type": "integer", "description": "Integer cents."}
TIMESTAMP: Final[Schema] = ref("Timestamp")
N_TIMESTAMP: Final[Schema] = nullable(ref("Timestamp"))
N_STRING: Final[Schema] = nullable(STRING)
N_INTEGER: Final[Schema] = nullable(INTEGER)
N_NUMBER: Final[Schema] = nullable(NUMBER)
N_BOOLEAN: Final[Schema] = nullable(BOOLEAN)
RACE_STATUS: Final[Schema] = {
    "type": "string",
    "enum": ["open", "closed", "interim", "final", "abandoned", "unknown"],
}

_MEETING_SUMMARY: Final[dict[str, Schema]] = {
    "meeting_id": STRING,
    "meeting_name": STRING,
    "country": N_STRING,
    "state": N_STRING,
    "race_type": N_STRING,
    "category": N_STRING,
    "category_name": N_STRING,
    "date": {"type": "string", "pattern": DATE_PATTERN},
    "status": N_STRING,
    "track_condition": N_STRING,
    "weather": N_STRING,
    "race_count": INTEGER,
    "first_race_time": N_TIMESTAMP,
    "created_at": N_TIMESTAMP,
    "updated_at": N_TIMESTAMP,
}

_RACE_SUMMARY: Final[dict[str, Schema]] = {
    "race_id": STRING,
    "meeting_id": STRING,
    "meeting_name": N_STRING,
    "race_number": INTEGER,
    "name": STRING,
    "start_time": TIMESTAMP,
    "actual_start": N_TIMESTAMP,
    "status": RACE_STATUS,
    "distance": N_INTEGER,
    "track_condition": N_STRING,
    "weather": N_STRING,
    "type": N_STRING,
    "race_type": N_STRING,
    "country": N_STRING,
    "runner_count": INTEGER,
    "field_size": N_INTEGER,
    "created_at": N_TIMESTAMP,
    "updated_at": N_TIMESTAMP,
}

_RACE_DETAIL: Final[dict[str, Schema]] = {
    **_RACE_SUMMARY,
    "race_date_nz": {"type": "string", "pattern": DATE_PATTERN},
    "start_time_nz": N_STRING,
    "track_surface": N_STRING,
    "track_direction": N_STRING,
    "rail_position": N_STRING,
    "race_class": N_STRING,
    "entrant_count": N_INTEGER,
    "positions_paid": N_INTEGER,
    "total_prize_money": nullable(CENTS),
    "state": N_STRING,
    "silk_url": N_STRING,
    "video_channels": array(STRING),
    "protest": N_BOOLEAN,
    "protest_reason": N_STRING,
    "results_available": BOOLEAN,
    "last_polled_at": {**N_TIMESTAMP, "description": "The latest stored poll of the race."},
    "last_generated_at": {**N_TIMESTAMP, "description": "When the TAB generated that poll's data."},
    "last_committed_at": {**N_TIMESTAMP, "description": "When that poll was committed."},
}

_NAV: Final[dict[str, Schema]] = {
    "race_id": STRING,
    "name": STRING,
    "race_number": INTEGER,
    "start_time": TIMESTAMP,
    "status": RACE_STATUS,
    "meeting_id": STRING,
    "meeting_name": N_STRING,
}

_ENTRANT: Final[dict[str, Schema]] = {
    "entrant_id": STRING,
    "race_id": STRING,
    "runner_number": INTEGER,
    "name": STRING,
    "barrier": N_INTEGER,
    "barrier_position": N_STRING,
    "jockey": N_STRING,
    "trainer_name": N_STRING,
    "silk_colours": N_STRING,
    "silk_url_64x64": N_STRING,
    "silk_url_128x128": N_STRING,
    "silk_url_64": N_STRING,
    "silk_url_128": N_STRING,
    "silk_url": N_STRING,
    "is_scratched": BOOLEAN,
    "is_late_scratched": BOOLEAN,
    "scratch_time": N_TIMESTAMP,
    "favourite": BOOLEAN,
    "mover": BOOLEAN,
    "win_odds": N_NUMBER,
    "place_odds": N_NUMBER,
    "fixed_win_odds": N_NUMBER,
    "fixed_place_odds": N_NUMBER,
    "pool_win_odds": N_NUMBER,
    "pool_place_odds": N_NUMBER,
    "hold_percentage": N_NUMBER,
    "bet_percentage": N_NUMBER,
    "win_pool_percentage": N_NUMBER,
    "place_pool_percentage": N_NUMBER,
    "win_pool_amount": nullable(CENTS),
    "place_pool_amount": nullable(CENTS),
    "money_flow_at": N_TIMESTAMP,
    "created_at": N_TIMESTAMP,
    "updated_at": N_TIMESTAMP,
    "odds_history": array(obj({"odds": N_NUMBER, "type": STRING, "timestamp": TIMESTAMP})),
    "money_flow_history": array(
        obj(
            {
                "hold_percentage": N_NUMBER,
                "win_pool_amount": CENTS,
                "place_pool_amount": CENTS,
                "time_interval": INTEGER,
                "timestamp": TIMESTAMP,
            }
        )
    ),
}

_POOLS: Final[dict[str, Schema]] = {
    "race_id": STRING,
    "win_pool_total": CENTS,
    "place_pool_total": CENTS,
    "quinella_pool_total": CENTS,
    "trifecta_pool_total": CENTS,
    "exacta_pool_total": CENTS,
    "first4_pool_total": CENTS,
    "total_race_pool": CENTS,
    "currency": STRING,
    "data_quality_score": INTEGER,
    "extracted_pools": INTEGER,
    "source": N_STRING,
    "last_updated": N_TIMESTAMP,
}

_RESULTS: Final[dict[str, Schema]] = {
    "race_id": STRING,
    "results_available": BOOLEAN,
    "results_data": array({"type": "object"}),
    "dividends_data": array({"type": "object"}),
    "fixed_odds_data": {"type": "object"},
    "result_status": nullable({"type": "string", "enum": ["interim", "final", "protest"]}),
    "photo_finish": BOOLEAN,
    "stewards_inquiry": BOOLEAN,
    "protest_lodged": BOOLEAN,
    "result_time": N_TIMESTAMP,
    "created_at": N_TIMESTAMP,
    "updated_at": N_TIMESTAMP,
}

_TIMELINE_DOCUMENT: Final[dict[str, Schema]] = {
    "id": INTEGER,
    "row_id": INTEGER,
    "race_id": STRING,
    "entrant_id": STRING,
    "type": {"const": "bucketed_aggregation"},
    "pool_type": {"const": "combined"},
    "time_interval": INTEGER,
    "time_to_start": INTEGER,
    "interval_type": STRING,
    "hold_percentage": N_NUMBER,
    "bet_percentage": N_NUMBER,
    "win_pool_amount": CENTS,
    "place_pool_amount": CENTS,
    "total_pool_amount": CENTS,
    "winPoolAmount": CENTS,
    "placePoolAmount": CENTS,
    "win_pool_percentage": N_NUMBER,
    "place_pool_percentage": N_NUMBER,
    "incremental_win_amount": CENTS,
    "incremental_place_amount": CENTS,
    "incremental_amount": CENTS,
    "is_baseline": BOOLEAN,
    "fixed_win_odds": N_NUMBER,
    "fixed_place_odds": N_NUMBER,
    "pool_win_odds": N_NUMBER,
    "pool_place_odds": N_NUMBER,
    "event_timestamp": TIMESTAMP,
    "polling_timestamp": TIMESTAMP,
    "created_at": TIMESTAMP,
    "updated_at": TIMESTAMP,
}

_INTERVALS: Final[Schema] = array(INTEGER)

_COVERAGE: Final[Schema] = obj(
    {
        "summary": obj(
            {
                "total_documents": INTEGER,
                "entrants_covered": INTEGER,
                "intervals_covered": _INTERVALS,
                "critical_period_gaps": array(obj({"entrant_id": STRING, "missing_intervals": _INTERVALS})),
                "coverage_report": {
                    "type": "string",
                    "enum": [
                        "Full coverage of critical 5-minute window",
                        "Missing coverage in critical 5-minute window",
                        "No documents to analyze",
                    ],
                },
            }
        ),
        "entrants": array(
            obj(
                {
                    "entrant_id": STRING,
                    "document_count": INTEGER,
                    "intervals_covered": _INTERVALS,
                    "critical_period_coverage": _INTERVALS,
                    "missing_critical_intervals": _INTERVALS,
                }
            )
        ),
    }
)

_TIMELINE: Final[Schema] = {
    "type": "object",
    "properties": {
        "success": {"const": True},
        "documents": array(ref("TimelineDocument")),
        "total": INTEGER,
        "race_id": STRING,
        "entrant_ids": array(STRING),
        "pool_type": {"type": "string", "enum": ["win", "place", "odds"]},
        "bucketed_data": {"const": True},
        "interval_coverage": _COVERAGE,
        "next_cursor": N_STRING,
        "next_created_at": N_TIMESTAMP,
        "limit": INTEGER,
        "created_after": N_TIMESTAMP,
        "message": STRING,
        "query_optimizations": array(STRING),
    },
    "required": [
        "success",
        "documents",
        "total",
        "race_id",
        "entrant_ids",
        "pool_type",
        "bucketed_data",
        "interval_coverage",
        "next_cursor",
        "next_created_at",
        "limit",
        "created_after",
        "query_optimizations",
    ],
    "additionalProperties": False,
}

_INDICATOR: Final[dict[str, Schema]] = {
    "indicator_id": {"type": "string", "format": "uuid"},
    "user_id": STRING,
    "indicator_type": {"const": "percentage_range"},
    "percentage_range_min": NUMBER,
    "percentage_range_max": N_NUMBER,
    "color": {"type": "string", "pattern": "^#[0-9A-F]{6}$"},
    "is_default": BOOLEAN,
    "enabled": BOOLEAN,
    "display_order": {"type": "integer", "minimum": 1, "maximum": 6},
    "audible_alerts_enabled": BOOLEAN,
    "created_at": N_TIMESTAMP,
    "updated_at": N_TIMESTAMP,
}

_ALERT_CONFIG: Final[dict[str, Schema]] = {
    "user_id": STRING,
    "indicators": {**array(ref("AlertIndicator")), "minItems": 6, "maxItems": 6},
    "toggle_all": BOOLEAN,
    "audible_alerts_enabled": BOOLEAN,
}

_ALERT: Final[dict[str, Schema]] = {
    "alert_id": INTEGER,
    "race_id": STRING,
    "race_name": STRING,
    "race_number": INTEGER,
    "meeting_id": STRING,
    "meeting_name": STRING,
    "entrant_id": STRING,
    "runner_number": INTEGER,
    "runner_name": STRING,
    "kind": {
        "type": "string",
        "enum": ["win_money", "place_money", "win_price"],
        "description": "win_money/place_money: rise in points of the runner's share of the column's "
        "positive Win/Place increments; win_price: shortening of its win price in percent.",
    },
    "time_interval": {**INTEGER, "description": "The timeline column of the move."},
    "previous_interval": {**INTEGER, "description": "The column it is measured from."},
    "value": {**NUMBER, "minimum": 5},
    "polled_at": {**TIMESTAMP, "description": "When the poll that made the move was observed."},
    "created_at": TIMESTAMP,
    "indicator": {
        **nullable(
            obj(
                {
                    "display_order": {"type": "integer", "minimum": 1, "maximum": 6},
                    "color": {"type": "string", "pattern": "^#[0-9A-F]{6}$"},
                    "label": {**STRING, "examples": ["5–10%", "50%+"]},
                }
            )
        ),
        "description": "The user's indicator that classifies the value (null only on a stream "
        "opened without a user).",
    },
}

_SERVICE_STATE: Final[Schema] = {"type": "string", "enum": ["serving", "not_serving", "unknown"]}
_SERVICES: Final[Schema] = obj(
    {"writer": _SERVICE_STATE, "transformer": _SERVICE_STATE, "fetcher": _SERVICE_STATE}
)
_WORKERS: Final[Schema] = {"type": "string", "enum": ["operational", "degraded"]}
# Polls the fetcher took from the TAB but could not commit yet (null when it did not answer).
_SPOOL: Final[Schema] = nullable(
    obj(
        {
            "polls": INTEGER,
            "oldest_age_seconds": N_NUMBER,
            "commit_breaker": {"type": "string", "enum": ["closed", "open", "half_open"]},
        }
    )
)

_INDICATOR_INPUT: Final[Schema] = {
    "type": "object",
    "description": "Every key is also accepted in camelCase; `$id` and `indicatorId` alias `indicator_id`.",
    "properties": {
        "indicator_id": STRING,
        "user_id": STRING,
        "indicator_type": {"type": "string", "enum": ["percentage_range"]},
        "percentage_range_min": {"type": "number", "minimum": 0, "maximum": 100},
        "percentage_range_max": nullable({"type": "number", "minimum": 0, "maximum": 100}),
        "color": {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$"},
        "is_default": BOOLEAN,
        "enabled": BOOLEAN,
        "display_order": {"type": "integer", "minimum": 1, "maximum": 6},
        "audible_alerts_enabled": BOOLEAN,
    },
    "required": ["percentage_range_min", "color", "display_order"],
}

COMPONENTS: Final[dict[str, Schema]] = {
    "Timestamp": {
        "type": "string",
        "pattern": TIMESTAMP_PATTERN,
        "description": "ISO-8601 in Pacific/Auckland with milliseconds and the offset; never Z.",
        "examples": ["2025-07-17T12:50:00.000+12:00"],
    },
    "Error": {
        "type": "object",
        "properties": {
            "error": STRING,
            "details": nullable({"type": "object"}),
            "request_id": STRING,
            "message": STRING,
            "received": {},
        },
        "required": ["error"],
    },
    "MeetingSummary": obj(_MEETING_SUMMARY),
    "MeetingDetail": obj({**_MEETING_SUMMARY, "tote_status": N_STRING}),
    "RaceSummary": obj(_RACE_SUMMARY),
    "RaceDetail": obj(_RACE_DETAIL),
    "RaceNav": obj(_NAV),
    "Navigation": obj(
        {
            "previousRace": nullable(ref("RaceNav")),
            "nextRace": nullable(ref("RaceNav")),
            "nextScheduledRace": nullable(ref("RaceNav")),
        }
    ),
    "UpcomingRaces": obj(
        {
            "races": array(ref("RaceSummary")),
            "total": INTEGER,
            "timestamp": TIMESTAMP,
            "window": obj(
                {
                    "lower_bound": TIMESTAMP,
                    "upper_bound": TIMESTAMP,
                    "window_minutes": INTEGER,
                    "lookback_minutes": INTEGER,
                }
            ),
        }
    ),
    "Entrant": obj(_ENTRANT),
    "RacePools": obj(_POOLS),
    "RaceResults": obj(_RESULTS),
    "TimelineDocument": obj(_TIMELINE_DOCUMENT),
    "Timeline": _TIMELINE,
    "AlertIndicator": obj(_INDICATOR),
    "AlertConfig": obj(_ALERT_CONFIG),
    "AlertConfigSaved": obj({"success": {"const": True}, **_ALERT_CONFIG}),
    "AlertConfigInput": {
        "type": "object",
        "description": "Every key is also accepted in camelCase.",
        "properties": {
            "user_id": STRING,
            "audible_alerts_enabled": BOOLEAN,
            "indicators": {**array(_INDICATOR_INPUT), "minItems": 1, "maxItems": 6},
        },
        "required": ["indicators"],
    },
    "AlertResetInput": {
        "type": "object",
        "properties": {"user_id": STRING},
    },
    "Alert": obj(_ALERT),
    "Alerts": obj(
        {
            "alerts": array(ref("Alert")),
            "total": INTEGER,
            "user_id": STRING,
            "since": TIMESTAMP,
            "race_id": N_STRING,
            "limit": INTEGER,
            "next_cursor": {
                **N_STRING,
                "description": "The `cursor` of the next (older) page; null when nothing older is left.",
            },
        }
    ),
    "Backtest": obj(
        {
            "date_from": {"type": "string", "pattern": DATE_PATTERN},
            "date_to": {"type": "string", "pattern": DATE_PATTERN},
            "windows": array(
                obj(
                    {
                        "window_minutes": INTEGER,
                        "races": INTEGER,
                        "wins": INTEGER,
                        "places": INTEGER,
                        "win_strike_rate": N_NUMBER,
                        "win_strike_rate_ci": array(NUMBER),
                        "place_strike_rate": N_NUMBER,
                        "place_strike_rate_ci": array(NUMBER),
                        "win_return": N_NUMBER,
                        "win_return_races": INTEGER,
                        "place_return": N_NUMBER,
                        "place_return_races": INTEGER,
                    }
                )
            ),
        }
    ),
    "HealthOk": obj(
        {
            "status": {"const": "healthy"},
            "timestamp": TIMESTAMP,
            "database": {"const": "connected"},
            "workers": _WORKERS,
            "services": _SERVICES,
            "spool": _SPOOL,
            "data_age_seconds": N_NUMBER,
        }
    ),
    "HealthDown": obj(
        {
            "status": {"const": "unhealthy"},
            "timestamp": TIMESTAMP,
            "database": {"type": "string", "enum": ["disconnected", "unknown"]},
            "workers": _WORKERS,
            "services": _SERVICES,
            "spool": _SPOOL,
            "error": STRING,
        }
    ),
}
