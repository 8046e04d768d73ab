"""Validators built from the recorded upstream OpenAPI 3.0 document.

OpenAPI 3.0's `nullable: true` becomes `anyOf [schema, null]` for JSON Schema draft 4.
`consumed_validator` keeps, in each schema it names, only the properties Raceday
reads (nztab-api §5) so the check covers exactly the fields we consume.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

OPENAPI = Path(__file__).parents[1] / "fixtures" / "nztab" / "openapi.json"
HEADER = "git_neds_sh_usvc_feedrouter_response_RESTHeader"

# The fields of nztab-api §5, per upstream schema.
CONSUMED: Mapping[str, frozenset[str]] = {
    "MeetingPayload": frozenset({"meetings"}),
    "MeetingData": frozenset(
        {
            "meeting",
            "name",
            "date",
            "category",
            "category_name",
            "country",
            "state",
            "track_condition",
            "tote_status",
            "tote_meeting_number",
            "tote_raceday_date",
            "races",
        }
    ),
    "MeetingRace": frozenset(
        {
            "id",
            "race_number",
            "name",
            "start_time",
            "status",
            "distance",
            "track_condition",
            "weather",
            "country",
            "state",
            "tote_start_time",
            "protest",
            "protest_reason",
        }
    ),
    "EventRaceDetails": frozenset(
        {"race", "runners", "money_tracker", "tote_pools", "results", "dividends", "error"}
    ),
    "EventRace": frozenset(
        {
            "event_id",
            "meeting_id",
            "meeting_name",
            "description",
            "race_number",
            "status",
            "advertised_start",
            "actual_start",
            "race_date_nz",
            "start_time_nz",
            "type",
            "country",
            "state",
            "distance",
            "weather",
            "track_condition",
            "track_surface",
            "track_direction",
            "rail_position",
            "class",
            "entrant_count",
            "field_size",
            "positions_paid",
            "prize_monies",
            "silk_url",
            "silk_base_url",
            "video_channels",
        }
    ),
    "EventRunner": frozenset(
        {
            "entrant_id",
            "runner_number",
            "name",
            "barrier",
            "barrier_position",
            "jockey",
            "trainer_name",
            "silk_colours",
            "silk_url_64x64",
            "silk_url_128x128",
            "is_scratched",
            "is_late_scratched",
            "scratch_time",
            "odds",
            "favourite",
            "mover",
            "runner_change",
        }
    ),
    "odds": frozenset({"fixed_win", "fixed_place", "pool_win", "pool_place"}),
    "MoneyTracker": frozenset({"entrants"}),
    "EntrantLiability": frozenset({"entrant_id", "hold_percentage", "bet_percentage"}),
    "TotePool": frozenset({"product_type", "total", "status", "is_final"}),
    "EventResult": frozenset(
        {"position", "name", "runner_number", "barrier", "entrant_id", "margin_length", "positional_margin"}
        | {"winning_time", "time_ran"}
    ),
    "EventDividend": frozenset(
        {
            "id",
            "tote",
            "product_name",
            "status",
            "dividend",
            "pool_size",
            "jackpot_size",
            "positions",
            "description",
        }
    ),
    "EventDividendPosition": frozenset({"runner_number", "position"}),
    "main_ErrorResponse": frozenset({"header"}),
    HEADER: frozenset({"title", "url", "generated_time", "error", "error_code"}),
}


def _nullable_to_anyof(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable_to_anyof(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _nullable_to_anyof(v) for k, v in node.items() if k not in ("nullable", "description")}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _schemas(consumed_only: bool, ignore: frozenset[str]) -> dict[str, Any]:
    schemas: dict[str, Any] = copy.deepcopy(json.loads(OPENAPI.read_text())["components"]["schemas"])
    for name, schema in schemas.items():
        properties = schema.get("properties", {})
        for field in ignore:
            properties.pop(field, None)
        if consumed_only and name in CONSUMED:
            keep = CONSUMED[name]
            schema["properties"] = {k: v for k, v in properties.items() if k in keep}
            schema["required"] = [k for k in schema.get("required", []) if k in keep]
            if not schema["required"]:
                del schema["required"]
    return {name: _nullable_to_anyof(schema) for name, schema in schemas.items()}


def validator(
    name: str, *, consumed_only: bool = True, ignore: frozenset[str] = frozenset()
) -> Draft4Validator:
    """A validator for component `name`; `ignore` drops properties (recorded deviations) everywhere."""
    root = {"components": {"schemas": _schemas(consumed_only, ignore)}}
    registry: Registry[Any] = Registry().with_resource("urn:openapi", Resource.from_contents(root, DRAFT4))
    return Draft4Validator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry)


def problems(validator_: Draft4Validator, instance: Any) -> list[str]:
    """Every violation as `path: message` (empty when valid)."""
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}"
        for error in validator_.iter_errors(instance)
    ]
