"""The pure parts of `raceday bench pipeline --compare`: run order, report arithmetic, CPU readings.

The comparison itself takes minutes (it builds and runs two stacks) and is run by hand, not here.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from services.common.config import Env
from services.common.cpuclock import cpu_used_ns, process_cpu_ns, processes_cpu_ns
from services.fetcher import bench_driver
from services.fetcher.compare import MALLOC_TUNABLES, SATURATE, figures, malloc_env, trees_dir
from services.fetcher.compare_report import (
    Block,
    BlockResult,
    Scenario,
    cpu_figures,
    failures,
    format_table,
    pair_order,
    plan_round,
    sample_figure,
    split,
    stage_figures,
    throughput_figure,
)
from services.fetcher.pipeline import PollResult

FIRST = Scenario("first poll", "first", 1)
ONE = Scenario("one race", "rounds", 1)
FIVE = Scenario("batch of 5", "rounds", 5)
RACES = [f"r{i}" for i in range(10)]


def test_turns_alternate_from_pair_to_pair() -> None:
    assert [pair_order(pair) for pair in range(4)] == [
        ("old", "new"),
        ("new", "old"),
        ("old", "new"),
        ("new", "old"),
    ]


def test_split_is_contiguous_and_even() -> None:
    assert split(RACES, 3) == [("r0", "r1", "r2", "r3"), ("r4", "r5", "r6"), ("r7", "r8", "r9")]
    assert split(["a"], 2) == [("a",)]
    assert split([], 2) == [()]


def test_a_round_gives_each_tree_every_block_in_alternating_turns() -> None:
    blocks = plan_round(1, [FIRST, FIVE], RACES, pairs=2)
    assert [(b.scenario.name, b.pair, b.tree) for b in blocks] == [
        ("first poll", 2, "old"),
        ("first poll", 2, "new"),
        ("first poll", 3, "new"),
        ("first poll", 3, "old"),
        ("batch of 5", 2, "old"),
        ("batch of 5", 2, "new"),
        ("batch of 5", 3, "new"),
        ("batch of 5", 3, "old"),
    ]
    # First polls share the round's races: each race's first poll happens once in each tree.
    first = [b for b in blocks if b.scenario == FIRST and b.tree == "old"]
    assert [race for block in first for race in block.races] == RACES
    assert all(b.races == tuple(RACES[:5]) for b in blocks if b.scenario == FIVE)


def test_pairs_keep_alternating_across_rounds() -> None:
    firsts = [plan_round(r, [ONE], RACES, pairs=1)[0].tree for r in range(4)]
    assert firsts == ["old", "new", "old", "new"]


def _result(
    scenario: Scenario,
    pair: int,
    tree: str,
    samples: list[float],
    *,
    polls: int | None = None,
    failed: int = 0,
    cpu_ms: dict[str, float] | None = None,
    stages: dict[str, list[float]] | None = None,
) -> BlockResult:
    return BlockResult(
        Block(0, scenario, pair, tree, ("r0",)),
        samples,
        polls=len(samples) if polls is None else polls,
        failed=failed,
        stages=stages or {},
        cpu_ns={role: int(ms * 1e6) for role, ms in (cpu_ms or {}).items()},
    )


def test_pooled_and_paired_ratios() -> None:
    results = [
        _result(ONE, 0, "old", [10.0, 12.0, 14.0]),
        _result(ONE, 0, "new", [5.0, 6.0, 7.0]),
        _result(ONE, 1, "new", [9.0, 9.0, 9.0]),
        _result(ONE, 1, "old", [30.0, 30.0, 30.0]),
        _result(FIVE, 0, "old", [100.0]),
    ]
    figure = sample_figure(results, "one race", "one race", "ms", target=0.5)
    assert figure.old == 22.0  # median of 10 12 14 30 30 30
    assert figure.new == 8.0  # median of 5 6 7 9 9 9
    assert figure.pooled == pytest.approx(8 / 22)
    assert figure.paired == pytest.approx((0.5 + 0.3) / 2)  # median of 6/12 and 9/30
    assert figure.met is True


def test_an_unpaired_block_counts_in_the_pooled_ratio_only() -> None:
    results = [_result(ONE, 0, "old", [10.0]), _result(ONE, 0, "new", [6.0]), _result(ONE, 1, "old", [10.0])]
    figure = sample_figure(results, "one race", "one race", "ms", target=0.5)
    assert figure.paired == pytest.approx(0.6)
    assert figure.met is False


def test_throughput_weights_blocks_by_their_duration() -> None:
    results = [
        _result(SATURATE, 0, "old", [100.0], polls=400),  # 4 s
        _result(SATURATE, 0, "new", [250.0], polls=1000),  # 4 s
        _result(SATURATE, 1, "new", [150.0], polls=300, failed=0),  # 2 s
        _result(SATURATE, 1, "old", [50.0], polls=100),  # 2 s
    ]
    figure = throughput_figure(results, SATURATE.name, target=2.0)
    assert figure.old == pytest.approx(500 / 6)
    assert figure.new == pytest.approx(1300 / 6)
    assert figure.paired == pytest.approx((2.5 + 3.0) / 2)
    assert figure.met is True


def test_cpu_per_poll_by_process_and_in_total() -> None:
    roles = {"fetcher": 4.0, "transformer": 2.0, "writer": 3.0, "postgres": 1.0}
    results = [
        _result(ONE, 0, "old", [1.0] * 10, cpu_ms={r: v * 10 for r, v in roles.items()}),
        _result(ONE, 0, "new", [1.0] * 10, cpu_ms={r: v * 5 for r, v in roles.items()}),
    ]
    by_name = {figure.name: figure for figure in cpu_figures(results, ["one race"], target=0.5)}
    assert by_name["CPU per poll: fetcher"].old == pytest.approx(4.0)
    assert by_name["CPU per poll: total"].old == pytest.approx(10.0)
    assert by_name["CPU per poll: total"].new == pytest.approx(5.0)
    assert by_name["CPU per poll: total"].met is True
    assert by_name["CPU per poll: writer"].target is None


def test_cpu_per_poll_leaves_out_failed_polls_and_unreadable_processes() -> None:
    no_postgres = {"fetcher": 4.0, "transformer": 1.0, "writer": 1.0}
    results = [
        _result(ONE, 0, "old", [1.0] * 4, failed=2, cpu_ms=no_postgres),
        _result(ONE, 0, "new", [1.0] * 4, cpu_ms=no_postgres),
    ]
    by_name = {figure.name: figure for figure in cpu_figures(results, ["one race"])}
    assert by_name["CPU per poll: fetcher"].old == pytest.approx(2.0)  # 4 ms over 2 good polls
    assert by_name["CPU per poll: postgres"].old is None
    assert by_name["CPU per poll: total"].old is None


def test_stage_medians_and_failures() -> None:
    results = [
        _result(ONE, 0, "old", [1.0], stages={"fetch": [4.0, 2.0, 3.0]}, failed=1),
        _result(ONE, 0, "new", [1.0], stages={"fetch": [1.0, 1.0, 2.0]}),
    ]
    fetch = stage_figures(results, "one race")[0]
    assert (fetch.old, fetch.new) == (3.0, 1.0)
    assert fetch.pooled == pytest.approx(1 / 3)
    assert failures(results) == {"old": 1, "new": 0}


def test_the_table_shows_every_figure_with_its_verdict() -> None:
    results = [
        _result(ONE, 0, "old", [10.0]),
        _result(ONE, 0, "new", [6.0]),
        _result(SATURATE, 0, "old", [100.0], polls=100),
        _result(SATURATE, 0, "new", [250.0], polls=250),
    ]
    lines = format_table(figures(results))
    assert lines[0].split() == ["figure", "unit", "old", "new", "new/old", "paired", "target"]
    one = next(line for line in lines if line.startswith("one race: total median"))
    assert one.split()[-3:] == ["<=", "0.5", "MISSED"]
    saturating = next(line for line in lines if line.startswith("saturating: race-polls/s"))
    assert saturating.split()[-3:] == [">=", "2", "met"]
    assert any(line.startswith("first poll of a new race") and " - " in line for line in lines)


def test_malloc_settings() -> None:
    base = {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.arena_max=1"}
    assert malloc_env(base, "fixed") == {"PATH": "/bin", "GLIBC_TUNABLES": MALLOC_TUNABLES}
    assert malloc_env(base, "default") == {"PATH": "/bin"}
    assert "glibc.malloc.mmap_threshold=33554432" in MALLOC_TUNABLES


def test_tree_cache_location(tmp_path: Path) -> None:
    assert trees_dir(Env({"RACEDAY_DATA_DIR": str(tmp_path)})) == tmp_path / "bench" / "trees"
    assert trees_dir(Env({})) == Path.home() / ".cache" / "raceday" / "bench" / "trees"


def test_cpu_clock_of_a_process() -> None:
    own = process_cpu_ns(os.getpid())
    assert own is not None and own > 0
    readings = processes_cpu_ns([os.getpid(), 2**22 + 1, 2**31 - 1])
    assert list(readings) == [os.getpid()]  # a pid that does not exist is left out


def test_cpu_used_between_readings() -> None:
    # pid 3 started in between (counts from zero); pid 2 ended (its last CPU is unknown).
    assert cpu_used_ns({1: 100, 2: 50}, {1: 160, 3: 30}) == 90


# What the driver may import: modules the code at 47f0bbe (the oldest compared revision) has.
LEGACY_MODULES = {
    "services.common.channels",
    "services.common.clock",
    "services.common.config",
    "services.common.proto.raceday.v1",
    "services.common.proto.raceday.v1.writer_pb2_grpc",
    "services.fetcher.meetings",
    "services.fetcher.pipeline",
    "services.fetcher.tab_client",
    "services.fetcher.tab_results",
    "services.fetcher.tab_settings",
}


def test_the_driver_imports_only_what_the_oldest_revision_has() -> None:
    tree = ast.parse(Path(bench_driver.__file__).read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("services")
    }
    imported |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("services")
    }
    assert imported <= LEGACY_MODULES


def test_a_poll_as_the_driver_reports_it() -> None:
    poll = PollResult(
        race_id="r1",
        outcome="failed",
        failed_stage="write",
        failure_kind="unavailable",
        message="down",
        timings_ms={"fetch": 1.23456, "total": 9.0},
        rows={"odds": 4},
    )
    assert bench_driver.poll_record(poll) == {
        "race_id": "r1",
        "outcome": "failed",
        "failed_stage": "write",
        "failure": "unavailable down",
        "timings_ms": {"fetch": 1.2346, "total": 9.0},
        "rows": {"odds": 4},
    }
