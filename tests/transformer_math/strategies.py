"""Hypothesis strategies: TAB event payloads and poll sequences for the property tests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

ADVERTISED_START = 1_752_713_400  # 2025-07-17T00:50:00Z
STATUSES = [
    "Open",
    "Open",
    "Open",
    "Closed",
    "Interim",
    "Final",
    "Abandoned",
    "Postponed",
    " open ",
    "Running",
]
PRODUCTS = [
    "Win",
    "Place",
    "Quinella",
    "Trifecta",
    "Exacta",
    "FirstFour",
    "First Four",
    "Pool Win",
    "EarlyQuadrella",
]


def hold_values() -> st.SearchStrategy[Any]:
    """Tracker percentages: mostly sane, sometimes fractional, negative, missing or mistyped."""
    return st.one_of(
        st.integers(0, 30),
        st.integers(0, 3000).map(lambda c: c / 100),
        st.floats(0, 40, allow_nan=False),
        st.sampled_from([-1, None, "9", 101, 0.0]),
    )


def odds_values() -> st.SearchStrategy[Any]:
    """Prices: decimals with two places, zeros, negatives, nulls and text."""
    return st.one_of(
        st.integers(101, 20000).map(lambda h: h / 100),
        st.floats(0.001, 1e6, allow_nan=False),
        st.sampled_from([0, -2.5, None, "4.4", 5, 1e8]),
    )


def pool_cents() -> st.SearchStrategy[int]:
    """Pool totals in cents, up to 10^10."""
    return st.one_of(st.integers(0, 10**10), st.integers(0, 10**6), st.just(0))


@st.composite
def runner(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """One runner; occasionally scratched or with a mistyped optional field."""
    r: dict[str, Any] = {
        "entrant_id": f"e{index}",
        "runner_number": index + 1,
        "name": f"Runner {index}",
        "barrier": draw(st.sampled_from([index + 1, None, "7", -1])),
        "jockey": draw(st.sampled_from(["J. Smith", "", None])),
        "is_scratched": draw(st.sampled_from([False, False, False, False, True])),
        "is_late_scratched": draw(st.sampled_from([False, False, False, False, False, True, "no"])),
        "scratch_time": draw(st.sampled_from([0, 0, ADVERTISED_START - 3600])),
        "favourite": draw(st.booleans()),
        "mover": draw(st.booleans()),
        "odds": {
            "fixed_win": draw(odds_values()),
            "fixed_place": draw(odds_values()),
            "pool_win": draw(odds_values()),
            "pool_place": draw(odds_values()),
        },
        "runner_change": draw(st.sampled_from([None, {"12/11/2020": "Gelding"}, {}])),
        "past_performances": [{"x": [1, 2.5, "text with ] and { brackets"]}],
    }
    for key in draw(st.lists(st.sampled_from(["barrier", "jockey", "odds", "favourite"]), max_size=2)):
        r.pop(key, None)
    return r


@st.composite
def payloads(draw: st.DrawFn, advertised_start: int = ADVERTISED_START) -> dict[str, Any]:
    """An event payload with the variety the property tests need."""
    n = draw(st.integers(0, 10))
    runners = [draw(runner(i)) for i in range(n)]
    if n and draw(st.booleans()):
        runners.append(dict(runners[0]))  # a duplicate entrant id
    if draw(st.integers(0, 9)) == 0:
        runners.append({"runner_number": 99, "name": "no id"})
    ids = [f"e{i}" for i in range(n)] + ["ghost-1", "ghost-2"]
    tracker: Any = None
    if draw(st.integers(0, 5)) > 0:
        rows = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"entrant_id": st.sampled_from([*ids, None]) if ids else st.none()},
                    optional={"hold_percentage": hold_values(), "bet_percentage": hold_values()},
                ),
                max_size=40,
            )
        )
        tracker = {"entrants": rows}
    pools: Any = draw(
        st.one_of(
            st.none(),
            st.just([]),
            st.lists(
                st.fixed_dictionaries(
                    {"product_type": st.sampled_from(PRODUCTS)},
                    optional={
                        "total": pool_cents().map(lambda c: c / 100),
                        "status": st.just("OPEN"),
                        "tote_trends": st.just({"tote_trends_data": '<xml a="1">\\r\\n</xml>'}),
                    },
                ),
                max_size=8,
            ),
        )
    )
    dividends = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "product_name": st.sampled_from(
                        ["Pool Win", "Pool Place", "Pool Quinella", "Pool First4"]
                    ),
                    "status": st.sampled_from(["Interim", "Final", "Photo", "Protest", "Inquiry"]),
                    "pool_size": pool_cents().map(lambda c: c / 100),
                    "dividend": st.sampled_from([1.5, 6.6, 0]),
                }
            ),
            max_size=5,
        )
    )
    results = draw(
        st.lists(
            st.fixed_dictionaries(
                {"position": st.integers(1, 8), "runner_number": st.integers(1, 12), "name": st.just("R")},
            ),
            max_size=4,
        )
    )
    race: dict[str, Any] = {
        "event_id": "race-1",
        "meeting_id": "meeting-1",
        "meeting_name": "Awapuni",
        "race_number": draw(st.sampled_from([1, 7, None])),
        "description": "PRYDA HANDICAP",
        "status": draw(st.sampled_from(STATUSES)),
        "advertised_start": advertised_start,
        "actual_start": draw(st.sampled_from([0, advertised_start + 166])),
        "type": draw(st.sampled_from(["T", "H", "G", ""])),
        "country": "NZ",
        "distance": draw(st.sampled_from([1700, None, "1700"])),
        "prize_monies": {"total_value": draw(st.sampled_from([17000, 12.345, None]))},
        "video_channels": ["Trackside1"],
    }
    if draw(st.booleans()):
        race["race_date_nz"] = "2025-07-17"
    data: dict[str, Any] = {
        "race": race,
        "runners": runners,
        "money_tracker": tracker,
        "tote_pools": pools,
        "results": results,
        "dividends": dividends,
        "favourite": runners[0] if runners else None,
        "error": "",
    }
    header = {"generated_time": draw(st.sampled_from(["2025-07-17T00:40:00.123456789Z", "bad", None]))}
    return {"header": header, "params": {"with_money_tracker": True}, "data": data}


def encode(payload: dict[str, Any]) -> bytes:
    """The payload as upstream would send it."""
    return json.dumps(payload).encode()


@st.composite
def poll_sequences(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    """Polls of one open race: (polled_at ms, payload), with repeated buckets and start changes."""
    n_runners = draw(st.integers(1, 5))
    start = ADVERTISED_START
    polled_at = start * 1000 - draw(st.integers(0, 90)) * 60_000
    win, place = draw(st.integers(0, 10**8)), draw(st.integers(0, 10**8))
    polls: list[tuple[int, bytes]] = []
    for _ in range(draw(st.integers(1, 8))):
        polled_at += draw(st.sampled_from([15_000, 30_000, 60_000, 120_000, 300_000, 900_000]))
        if draw(st.integers(0, 6)) == 0:
            start += draw(st.sampled_from([-300, 120, 600]))  # a delay or a start brought forward
        win += draw(st.integers(0, 10**6))
        place += draw(st.integers(0, 10**6))
        runners = [
            {
                "entrant_id": f"e{i}",
                "runner_number": i + 1,
                "name": f"R{i}",
                "is_scratched": draw(st.integers(0, 12)) == 0,
                "odds": {"fixed_win": draw(st.sampled_from([2.5, 2.51, 3.0, None]))},
            }
            for i in range(n_runners)
        ]
        rows = [
            {"entrant_id": f"e{i}", "hold_percentage": draw(hold_values()), "bet_percentage": 1}
            for i in range(n_runners)
            for _ in range(draw(st.integers(0, 3)))
        ]
        payload = {
            "header": {"generated_time": "2025-07-17T00:00:00Z"},
            "data": {
                "race": {
                    "event_id": "race-seq",
                    "meeting_id": "m",
                    "race_number": 1,
                    "status": "Open",
                    "advertised_start": start,
                    "race_date_nz": "2025-07-17",
                },
                "runners": runners,
                "money_tracker": {"entrants": rows},
                "tote_pools": [
                    {"product_type": "Win", "total": win / 100},
                    {"product_type": "Place", "total": place / 100},
                ],
                "error": "",
            },
        }
        polls.append((polled_at, encode(payload)))
    return polls
