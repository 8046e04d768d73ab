"""The outage spool on disk: order, bounds, restarts."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from services.fetcher.spool import PollSpool, SpooledPoll

MINUTE = 60_000


def _poll(race_id: str, polled_at_ms: int) -> SpooledPoll:
    return SpooledPoll(race_id, polled_at_ms, "gzip", Path(), 0, status="open", start_time_ms=10 * MINUTE)


def _dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("raceday_spool_dropped_total", {"reason": reason}) or 0.0


def test_each_race_is_a_queue_in_poll_order_and_survives_a_restart(tmp_path: Path) -> None:
    spool = PollSpool(tmp_path, max_bytes=10_000, max_age_ms=60 * MINUTE)
    for race, at in (("r/1", 3000), ("r2", 1000), ("r/1", 2000)):
        spool.add(_poll(race, at), f"{race}@{at}".encode(), now_ms=4000)
    assert spool.races() == ["r2", "r/1"]  # the race with the oldest poll first
    first = spool.first("r/1")
    assert first is not None and (first.polled_at_ms, first.payload()) == (2000, b"r/1@2000")
    assert spool.holds("r/1") and spool.depth == 3 and spool.oldest_ms() == 1000

    again = PollSpool(tmp_path, max_bytes=10_000, max_age_ms=60 * MINUTE)
    assert again.depth == 3 and again.size_bytes == spool.size_bytes
    latest = again.latest("r/1")
    assert latest is not None and (latest.payload(), latest.status, latest.start_time_ms) == (
        b"r/1@3000",
        "open",
        10 * MINUTE,
    )
    for entry in [again.first("r2"), again.first("r/1"), again.first("r/1")]:
        assert entry is not None
        again.remove(entry)
    assert again.first("r/1") is not None and again.depth == 1
    assert not again.holds("r2")
    assert sorted(p.name for p in tmp_path.rglob("*.poll")) == [f"{3000:016d}.poll"]


def test_the_oldest_polls_go_first_when_a_bound_is_passed(tmp_path: Path) -> None:
    spool = PollSpool(tmp_path, max_bytes=25, max_age_ms=5 * MINUTE)
    by_bytes, by_age = _dropped("bytes"), _dropped("age")
    spool.add(_poll("a", 1 * MINUTE), b"x" * 10, now_ms=1 * MINUTE)
    spool.add(_poll("b", 2 * MINUTE), b"x" * 10, now_ms=2 * MINUTE)
    spool.add(_poll("a", 3 * MINUTE), b"x" * 10, now_ms=3 * MINUTE)  # 30 bytes: the oldest goes
    assert [(e.race_id, e.polled_at_ms) for e in spool._all()] == [("a", 3 * MINUTE), ("b", 2 * MINUTE)]
    assert _dropped("bytes") == by_bytes + 1
    spool.enforce_bounds(now_ms=7 * MINUTE + 1)  # b is older than 5 minutes now
    assert [e.polled_at_ms for e in spool._all()] == [3 * MINUTE]
    assert _dropped("age") == by_age + 1
    assert spool.size_bytes == 10


def test_an_interrupted_write_is_not_a_poll(tmp_path: Path) -> None:
    spool = PollSpool(tmp_path, max_bytes=10_000, max_age_ms=60 * MINUTE)
    spool.add(_poll("r", 1000), b"payload", now_ms=1000)
    race_dir = next(tmp_path.iterdir())
    (race_dir / "0000000000002000.tmp").write_bytes(b'{"race_id": "r"')  # a crash mid-write
    (race_dir / "0000000000003000.poll").write_bytes(b"not json\n")
    again = PollSpool(tmp_path, max_bytes=10_000, max_age_ms=60 * MINUTE)
    assert again.depth == 1
    assert not (race_dir / "0000000000002000.tmp").exists()
