"""The simulated TAB's responses against the recorded OpenAPI document (fields we consume)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import httpx

from services.tabsim.admin_client import TabSimAdmin
from services.tabsim.server import RunningTabSim
from tests.tab.conftest import FLAGS, NZTAB_FIXTURES
from tests.tab.openapi import problems, validator

# The recorded event itself deviates here (an object where the document says string); not consumed.
RECORDED_DEVIATIONS = frozenset({"video_channels_meta"})
GENERATED_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")

EVENT = validator("EventRaceDetails")
EVENT_FULL = validator("EventRaceDetails", consumed_only=False, ignore=RECORDED_DEVIATIONS)
MEETINGS = validator("MeetingPayload")
MEETINGS_FULL = validator("MeetingPayload", consumed_only=False)
ERROR = validator("main_ErrorResponse", consumed_only=False)


def _check_event(document: dict[str, Any]) -> None:
    assert GENERATED_TIME.match(document["header"]["generated_time"]), document["header"]
    assert problems(EVENT, document["data"]) == []
    assert problems(EVENT_FULL, document["data"]) == []


def test_recorded_responses_satisfy_the_same_validators() -> None:
    event = json.loads((NZTAB_FIXTURES / "race-event-final.json").read_bytes())
    assert problems(EVENT, event["data"]) == []
    assert problems(EVENT_FULL, event["data"]) == []
    meetings = json.loads((NZTAB_FIXTURES / "meetings-list.json").read_bytes())
    assert problems(MEETINGS, meetings["data"]) == []
    assert problems(MEETINGS_FULL, meetings["data"]) == []
    # The projection does bite: a consumed field of the wrong type is reported.
    event["data"]["money_tracker"]["entrants"][0]["hold_percentage"] = "9"
    event["data"]["runners"][0]["odds"]["fixed_win"] = None
    assert len(problems(EVENT, event["data"])) == 2


async def test_simulated_meetings_validate(
    sim: RunningTabSim, admin: TabSimAdmin, http: httpx.AsyncClient
) -> None:
    day = (await admin.clock())["nz_date"]
    response = await http.get(
        "/meetings", params={"date_from": day, "date_to": day, "limit": 100, "offset": 0}
    )
    assert response.status_code == 200
    document = response.json()
    assert document["header"]["title"] == "Race Meetings"
    assert GENERATED_TIME.match(document["header"]["generated_time"])
    assert problems(MEETINGS, document["data"]) == []
    assert problems(MEETINGS_FULL, document["data"]) == []
    for meeting in document["data"]["meetings"]:
        assert meeting["date"] == f"{day}T00:00:00Z"
        for race in meeting["races"]:
            assert datetime.fromisoformat(race["start_time"]).utcoffset() is not None

    detail = await http.get(f"/meetings/{document['data']['meetings'][0]['meeting']}")
    assert detail.status_code == 200 and detail.json()["header"]["title"] == "Get meeting by id"
    assert problems(MEETINGS_FULL, detail.json()["data"]) == []


async def test_simulated_events_validate_through_the_whole_lifecycle(
    sim: RunningTabSim, admin: TabSimAdmin, http: httpx.AsyncClient
) -> None:
    scenario = await admin.scenario()
    races = [race for meeting in scenario["meetings"] for race in meeting["races"]]
    harness = next(r for m in scenario["meetings"] if m["category"] == "H" for r in m["races"])
    scratched = next(r for r in races if any(s["late"] for s in r["scratchings"]))
    abandoned = next(r for r in races if r["abandoned_at"] is not None)
    checked = 0
    for race, offsets in (
        (harness, (-3600, -30, 30, 200, 2000)),
        (scratched, (-60,)),
        (abandoned, (60,)),
    ):
        for offset in offsets:
            await admin.set_clock(now=(race["jump"] + offset) * 1000)
            response = await http.get(f"/events/{race['race_id']}", params=FLAGS)
            assert response.status_code == 200
            _check_event(response.json())
            checked += 1
    assert checked == 7
    # The flags only add members: without them the shape still validates.
    bare = await http.get(f"/events/{harness['race_id']}")
    assert bare.json()["data"]["money_tracker"] is None
    _check_event(bare.json())


async def test_error_body_shape(http: httpx.AsyncClient) -> None:
    response = await http.get("/events/not-a-race")
    assert response.status_code == 404
    document = response.json()
    assert set(document) == {"header"}
    assert problems(ERROR, document) == []
    assert (
        document["header"]["error"] == "event not found" and document["header"]["error_code"] == "NOT_FOUND"
    )
    assert document["header"]["url"] == "/affiliates/v1/racing/events/not-a-race"
