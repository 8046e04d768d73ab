"""Property tests: the extension and the reference agree on generated payloads, and the
increments of every poll sequence satisfy the sum invariant of money-flow.md §7.3."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raceday_core.errors import PayloadError, PayloadSchemaError
from services.transformer.records import (
    BucketLatestRecord,
    MoneyFlowRecord,
    PoolsRecord,
    PriorState,
    RaceUpdateRecord,
    empty_state,
)
from tests.transformer_math.conftest import EXTENSION, REFERENCE, MoneyFlow
from tests.transformer_math.strategies import ADVERTISED_START, encode, payloads, poll_sequences

# Sized to run in well under a minute on a loaded 2-core machine; no example database on disk.
FAST = settings(
    deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def outcome(impl: MoneyFlow, payload: bytes, polled_at: int, state: PriorState) -> tuple[str, Any]:
    """The update, or the error class and (for schema and argument errors) its message."""
    try:
        return "ok", impl.transform(payload, polled_at, state)
    except PayloadSchemaError as e:
        return "PayloadSchemaError", str(e)
    except PayloadError as e:
        return type(e).__name__, None
    except ValueError as e:
        return "ValueError", str(e)


def summary_outcome(impl: MoneyFlow, payload: bytes) -> tuple[str, Any]:
    """The event summary, or the error class and (for schema errors) its message."""
    try:
        return "ok", impl.event_summary(payload)
    except PayloadSchemaError as e:
        return "PayloadSchemaError", str(e)
    except PayloadError as e:
        return type(e).__name__, None


@st.composite
def prior_states(draw: st.DrawFn) -> PriorState:
    """A prior state as storage could supply it for race-1."""
    state = empty_state("race-1")
    prices = st.one_of(st.none(), st.just(0.0), st.integers(101, 5000).map(lambda h: h / 100))
    for entrant in ("e0", "e1", "e2", "ghost-1"):
        for bucket in draw(st.lists(st.sampled_from([60, 55, 30, 10, 5, 2, 0, -1]), max_size=3, unique=True)):
            state["buckets"].append(
                {
                    "entrant_id": entrant,
                    "time_interval": bucket,
                    # Older than any poll of the test (which goes back 200 minutes).
                    "polled_at": (ADVERTISED_START - 201 * 60 - draw(st.integers(0, 4 * 3600))) * 1000,
                    "row_id": draw(st.one_of(st.none(), st.integers(1, 10**6))),
                    "win_pool_amount": draw(st.integers(0, 10**7)),
                    "place_pool_amount": draw(st.integers(0, 10**7)),
                    # Negative increments and prices of 0 are stored too; both matter to moves.
                    "incremental_win_amount": draw(st.integers(-(10**6), 10**7)),
                    "incremental_place_amount": draw(st.integers(-(10**6), 10**7)),
                    "fixed_win_odds": draw(prices),
                    "pool_win_odds": draw(prices),
                }
            )
        for odds_type in draw(st.lists(st.sampled_from(["fixed_win", "pool_win", "pool_place"]), max_size=2)):
            odds = draw(st.one_of(st.none(), st.integers(101, 5000).map(lambda h: h / 100)))
            state["odds"].append({"entrant_id": entrant, "type": odds_type, "odds": odds})
    state["status"] = draw(st.sampled_from([None, "open", "final", "abandoned", "closed"]))
    state["start_time"] = draw(
        st.sampled_from([None, ADVERTISED_START * 1000, (ADVERTISED_START - 600) * 1000])
    )
    state["protest"] = draw(st.booleans())
    if draw(st.booleans()):
        totals = [draw(st.integers(0, 10**9)) for _ in range(6)]
        pools: PoolsRecord = {
            "race_id": "race-1",
            "win_pool_total": totals[0],
            "place_pool_total": totals[1],
            "quinella_pool_total": totals[2],
            "trifecta_pool_total": totals[3],
            "exacta_pool_total": totals[4],
            "first4_pool_total": totals[5],
            "total_race_pool": sum(totals),
            "currency": "$",
            "extracted_pools": 6,
            "data_quality_score": 100,
            "source": "tote_pools",
            "last_updated": ADVERTISED_START * 1000 - 3_600_000,
        }
        state["pools"] = pools
    state["photo_finish"] = draw(st.booleans())
    state["result_status"] = draw(st.sampled_from([None, "interim", "final"]))
    state["result_time"] = None if state["result_status"] is None else ADVERTISED_START * 1000
    return state


@settings(FAST, max_examples=800)
@given(payload=payloads(), state=prior_states(), minutes=st.integers(-20, 200))
def test_extension_equals_reference_on_generated_payloads(
    payload: dict[str, Any], state: PriorState, minutes: int
) -> None:
    polled_at = ADVERTISED_START * 1000 - minutes * 60_000 + 17
    body = encode(payload)
    ext = outcome(EXTENSION, body, polled_at, state)
    ref = outcome(REFERENCE, body, polled_at, state)
    assert ext == ref
    assert summary_outcome(EXTENSION, body) == summary_outcome(REFERENCE, body)
    if ext[0] == "ok":
        assert not [q for q in ext[1]["quality"] if q["check"] == "increment_invariant"]


def _check_invariant(history: list[tuple[int, MoneyFlowRecord]]) -> None:
    """§7.3 on stored rows: per entrant, the increments of the latest polls of the effective
    buckets sum to the amounts of its most recent poll."""
    by_entrant: dict[str, list[tuple[int, MoneyFlowRecord]]] = {}
    for row_id, row in history:
        by_entrant.setdefault(row["entrant_id"], []).append((row_id, row))
    for rows in by_entrant.values():
        latest: dict[int, tuple[tuple[int, int], MoneyFlowRecord]] = {}
        for row_id, row in rows:
            key = (row["event_timestamp"], row_id)
            bucket = row["time_interval"]
            if bucket not in latest or key > latest[bucket][0]:
                latest[bucket] = (key, row)
        effective: list[tuple[tuple[int, int], MoneyFlowRecord]] = []
        for bucket in sorted(latest, reverse=True):
            if not effective or latest[bucket][0] > effective[-1][0]:
                effective.append(latest[bucket])
        newest = max(latest.values(), key=lambda kv: kv[0])[1]
        assert sum(r["incremental_win_amount"] for _, r in effective) == newest["win_pool_amount"]
        assert sum(r["incremental_place_amount"] for _, r in effective) == newest["place_pool_amount"]


def _state_from_storage(update: RaceUpdateRecord, history: list[tuple[int, MoneyFlowRecord]]) -> PriorState:
    """The prior state a writer would read back: latest stored row per (entrant, bucket)."""
    latest: dict[tuple[str, int], tuple[tuple[int, int], BucketLatestRecord]] = {}
    for row_id, row in history:
        key = (row["entrant_id"], row["time_interval"])
        rank = (row["event_timestamp"], row_id)
        if key not in latest or rank > latest[key][0]:
            latest[key] = (
                rank,
                {
                    "entrant_id": row["entrant_id"],
                    "time_interval": row["time_interval"],
                    "polled_at": row["event_timestamp"],
                    "row_id": row_id,
                    "win_pool_amount": row["win_pool_amount"],
                    "place_pool_amount": row["place_pool_amount"],
                    "incremental_win_amount": row["incremental_win_amount"],
                    "incremental_place_amount": row["incremental_place_amount"],
                    "fixed_win_odds": row["fixed_win_odds"],
                    "pool_win_odds": row["pool_win_odds"],
                },
            )
    state = dict(update["state"])
    state["buckets"] = [b for _, b in latest.values()]
    return state  # type: ignore[return-value]


@settings(FAST, max_examples=500)
@given(polls=poll_sequences())
def test_poll_sequences_keep_the_increment_invariant(polls: list[tuple[int, bytes]]) -> None:
    handed = empty_state("race-seq")
    stored = empty_state("race-seq")
    history: list[tuple[int, MoneyFlowRecord]] = []
    for polled_at, body in polls:
        ext = EXTENSION.transform(body, polled_at, handed)
        assert ext == REFERENCE.transform(body, polled_at, handed)
        # Replaying from what storage holds gives the same rows as handing the state on.
        replayed = EXTENSION.transform(body, polled_at, stored)
        assert replayed["money_flow"] == ext["money_flow"]
        assert replayed["odds"] == ext["odds"]
        assert replayed["moves"] == ext["moves"]
        assert not [q for q in ext["quality"] if q["check"] == "increment_invariant"]
        history.extend((len(history) + 1 + i, row) for i, row in enumerate(ext["money_flow"]))
        _check_invariant(history)
        handed = ext["state"]
        stored = _state_from_storage(ext, history)
