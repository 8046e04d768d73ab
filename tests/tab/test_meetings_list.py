"""The recorded meetings list through the client, and per-item validation of meetings."""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.fetcher.tab_client import MeetingsFetch
from services.fetcher.tab_meetings import ValidationReport, decode_page, keep_meeting, validate_meeting
from services.tabsim.config import TabSimConfig
from services.tabsim.server import run_tabsim
from tests.tab.conftest import ClientFactory, tab_settings

FIXTURE = Path(__file__).parents[1] / "fixtures" / "nztab" / "meetings-list.json"


async def test_recorded_list_has_76_meetings_and_the_default_filter_keeps_12(
    make_client: ClientFactory,
) -> None:
    async with run_tabsim(TabSimConfig(port=0, replay=True)) as replay:
        client = make_client(tab_settings(replay.url))
        fetched = await client.fetch_meetings(date(2025, 7, 17))
    assert isinstance(fetched, MeetingsFetch), fetched
    assert fetched.total_meetings == 76
    assert fetched.dropped_meetings == 0 and fetched.dropped_races == 0
    # NZ and AUS thoroughbred and harness meetings: 12 of them, with 96 races.
    assert len(fetched.meetings) == 12
    assert sum(len(m["races"]) for m in fetched.meetings) == 96
    assert fetched.kept_by_country == {"NZ": 3, "AUS": 9}
    assert Counter((m["country"], m["category"]) for m in fetched.meetings) == {
        ("NZ", "T"): 1,
        ("NZ", "H"): 2,
        ("AUS", "T"): 5,
        ("AUS", "H"): 4,
    }
    names = {m["name"] for m in fetched.meetings}
    assert {"Awapuni Synthetic", "Winton", "Cambridge", "Grafton"} <= names
    assert fetched.pages == 1


def test_recorded_list_parses_without_the_client() -> None:
    items = decode_page(FIXTURE.read_bytes())
    report = ValidationReport()
    meetings = [validate_meeting(item, f"data.meetings[{i}]", report) for i, item in enumerate(items)]
    valid = [m for m in meetings if m is not None]
    assert len(valid) == 76 and report.problems == []
    assert sum(len(m["races"]) for m in valid) == 748
    kept = [m for m in valid if keep_meeting(m, ("NZ", "AUS"), ("T", "H"))]
    assert len(kept) == 12
    # The upstream code is AUS: an "AU" filter keeps no Australian meeting.
    assert {m["country"] for m in valid if keep_meeting(m, ("NZ", "AU"), ("T", "H"))} == {"NZ"}


def test_malformed_items_are_dropped_with_a_warning_and_the_rest_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    items: list[Any] = copy.deepcopy(json.loads(FIXTURE.read_bytes())["data"]["meetings"][:5])
    del items[0]["meeting"]
    items[1]["races"][0]["start_time"] = "12:50 tomorrow"
    items[1]["races"][1]["race_number"] = "2"
    items[2]["track_condition"] = 7
    items.append("not a meeting")
    report = ValidationReport()
    with caplog.at_level(logging.WARNING, logger="services.fetcher.tab_meetings"):
        meetings = [validate_meeting(item, f"data.meetings[{i}]", report) for i, item in enumerate(items)]
    assert meetings[0] is None and meetings[5] is None
    assert meetings[1] is not None and len(meetings[1]["races"]) == len(items[1]["races"]) - 2
    assert meetings[2] is not None and "track_condition" not in meetings[2]
    assert report.dropped_races == 2 and report.removed_fields == 1
    assert report.problems == [
        "data.meetings[0].meeting",
        "data.meetings[1].races[0].start_time",
        "data.meetings[1].races[1].race_number",
        "data.meetings[2].track_condition",
        "data.meetings[5]",
    ]
    warned = [r for r in caplog.records if r.getMessage() == "tab_item_invalid"]
    assert len(warned) == 5
    first = warned[1].__dict__
    assert first["path"] == "data.meetings[1].races[0].start_time"
    assert first["expected"] == "RFC 3339 instant" and first["value"] == "'12:50 tomorrow'"


def test_page_without_meetings_is_a_schema_problem_and_null_is_empty() -> None:
    assert decode_page(b'{"header": {}, "params": {}, "data": {"meetings": null}}') == []
    with pytest.raises(ValueError, match=r"data\.meetings"):
        decode_page(b'{"header": {}, "data": {}}')
    with pytest.raises(ValueError, match="not JSON"):
        decode_page(b"<html>")
