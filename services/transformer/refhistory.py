"""Bucket histories (§7) and odds change detection (§9) for the reference transform."""

from __future__ import annotations

from services.common.series_kinds import ODDS_TYPES
from services.transformer.records import BucketLatestRecord, LastOddsRecord, OddsRecord, PriorState
from services.transformer.refmath import hundredths
from services.transformer.refsections import Runner, odds_value


def recency(b: BucketLatestRecord) -> tuple[int, bool, int]:
    """Poll time, then row id; a poll without a row id (made by a transform) is the newest."""
    row_id = b["row_id"]
    return (b["polled_at"], row_id is None, row_id or 0)


def effective(history: dict[int, BucketLatestRecord]) -> list[BucketLatestRecord]:
    """Effective buckets, highest first: each more recent than every effective bucket above."""
    effective: list[BucketLatestRecord] = []
    for b in sorted(history, reverse=True):
        poll = history[b]
        if not effective or recency(poll) > recency(effective[-1]):
            effective.append(poll)
    return effective


def previous_bucket(history: dict[int, BucketLatestRecord], b: int) -> BucketLatestRecord | None:
    """The latest poll of the lowest effective bucket strictly above b."""
    above = [poll for poll in effective(history) if poll["time_interval"] > b]
    return above[-1] if above else None


def record_poll(history: dict[int, BucketLatestRecord], poll: BucketLatestRecord) -> bool:
    """Stores a poll; False when it does not become the most recent effective poll (§7.3)."""
    b = poll["time_interval"]
    existing = history.get(b)
    if existing is not None and recency(poll) < recency(existing):
        return False
    history[b] = poll
    chain = effective(history)
    return bool(chain) and chain[-1] is poll


def bucket_histories(buckets: list[BucketLatestRecord]) -> dict[str, dict[int, BucketLatestRecord]]:
    """Per entrant, the latest poll of each bucket (the greatest recency wins duplicates)."""
    histories: dict[str, dict[int, BucketLatestRecord]] = {}
    for b in buckets:
        history = histories.setdefault(b["entrant_id"], {})
        existing = history.get(b["time_interval"])
        if existing is None or recency(b) >= recency(existing):
            history[b["time_interval"]] = dict(b)  # type: ignore[assignment]
    return histories


def odds_changes(
    runners: list[Runner], race_id: str, polled_at: int, prior: PriorState
) -> tuple[list[OddsRecord], list[LastOddsRecord]]:
    """Odds rows to write (§9.3) and the last-stored odds after this poll, sorted."""
    last: dict[tuple[str, str], float | None] = {}
    for o in prior["odds"]:
        last[(o["entrant_id"], o["type"])] = o["odds"]
    changes: list[OddsRecord] = []
    for runner in runners:
        if runner.scratched:
            continue
        for odds_type, current in zip(ODDS_TYPES, runner.odds, strict=True):
            key = (runner.entrant_id, odds_type)
            if key not in last or last[key] is None:
                changed = current is not None
            else:
                stored = last[key]
                changed = current is None or (stored is not None and hundredths(stored) != current)
            if changed:
                changes.append(
                    {
                        "race_id": race_id,
                        "entrant_id": runner.entrant_id,
                        "type": odds_type,
                        "odds": odds_value(current),
                        "event_timestamp": polled_at,
                    }
                )
    for change in changes:
        last[(change["entrant_id"], change["type"])] = change["odds"]
    state: list[LastOddsRecord] = [
        {"entrant_id": entrant_id, "type": odds_type, "odds": odds}
        for (entrant_id, odds_type), odds in sorted(last.items(), key=lambda kv: kv[0])
    ]
    return changes, state
