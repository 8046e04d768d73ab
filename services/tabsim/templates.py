"""The recorded TAB responses the simulator serves and synthesises from.

Copies of the fixtures ship inside the package (services/tabsim/data/) so an
installed `raceday tabsim` has them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

RECORDED_EVENT_ID: Final = "0f57e087-00d9-4c61-9549-835abe2ae2ed"
RECORDED_MEETING_ID: Final = "d3f82a25-7acb-4a07-a942-e5fb36a1e426"
RECORDED_DATE: Final = "2025-07-17"

EVENT_FILE: Final = "race-event-final.json"
MEETINGS_FILE: Final = "meetings-list.json"
MEETING_FILE: Final = "meeting-detail.json"
RACES_LIST_FILE: Final = "races-list.json"

# Runner members the simulator sets per race and instant; the rest is copied verbatim.
DYNAMIC_RUNNER_KEYS: Final = (
    "entrant_id",
    "name",
    "runner_number",
    "barrier",
    "barrier_position",
    "is_scratched",
    "is_late_scratched",
    "scratch_time",
    "odds",
    "favourite",
    "mover",
    # Carries the entrant id; rendered per race so the rest of the body is shared by all races.
    "speedmap",
)


@functools.cache
def data_bytes(name: str) -> bytes:
    """The bytes of one recorded response, exactly as captured."""
    return resources.files("services.tabsim").joinpath("data", name).read_bytes()


@dataclass(frozen=True, slots=True)
class TemplateRunner:
    """One recorded runner: its identity, its static members pre-rendered, its money share."""

    entrant_id: str
    name: str
    runner_number: int
    static_inner: str
    speedmap: Any
    hold_sum: float
    bet_sum: float


@dataclass(frozen=True, slots=True)
class EventTemplate:
    """The recorded Final race, split into what is copied and what is synthesised."""

    race: dict[str, Any]
    runners: tuple[TemplateRunner, ...]
    pools: tuple[dict[str, Any], ...]
    results: tuple[dict[str, Any], ...]
    dividends: tuple[dict[str, Any], ...]
    meetings: tuple[dict[str, Any], ...]
    race_names: tuple[tuple[str, int], ...]


def _static_inner(runner: dict[str, Any]) -> str:
    static = {key: value for key, value in runner.items() if key not in DYNAMIC_RUNNER_KEYS}
    text = json.dumps(static, indent=4, ensure_ascii=False)
    # Drop the enclosing "{\n" and "\n}": the members are spliced after the dynamic ones.
    return text[2:-2]


@functools.cache
def event_template() -> EventTemplate:
    """Parse the recorded event and meetings list once per process."""
    event = json.loads(data_bytes(EVENT_FILE))["data"]
    holds: dict[str, float] = {}
    bets: dict[str, float] = {}
    for row in event["money_tracker"]["entrants"]:
        holds[row["entrant_id"]] = holds.get(row["entrant_id"], 0.0) + float(row["hold_percentage"])
        bets[row["entrant_id"]] = bets.get(row["entrant_id"], 0.0) + float(row["bet_percentage"])
    runners = tuple(
        TemplateRunner(
            entrant_id=runner["entrant_id"],
            name=runner["name"],
            runner_number=runner["runner_number"],
            static_inner=_static_inner(runner),
            speedmap=runner.get("speedmap"),
            hold_sum=holds.get(runner["entrant_id"], 0.0),
            bet_sum=bets.get(runner["entrant_id"], 0.0),
        )
        for runner in event["runners"]
    )
    meetings = tuple(json.loads(data_bytes(MEETINGS_FILE))["data"]["meetings"])
    race_names = tuple(
        (race["name"], int(race["distance"]))
        for meeting in meetings
        if meeting["country"] in ("NZ", "AUS") and meeting["category"] in ("T", "H")
        for race in meeting["races"]
    )
    return EventTemplate(
        race=event["race"],
        runners=runners,
        pools=tuple(event["tote_pools"]),
        results=tuple(event["results"]),
        dividends=tuple(event["dividends"]),
        meetings=meetings,
        race_names=race_names,
    )
