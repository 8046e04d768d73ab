"""The pure parts of `raceday bench pipeline --compare`: the run order and the report's arithmetic.

A comparison runs two trees ("old" and "new") in rounds. In each round every scenario is split
into pairs of blocks; in each pair both trees take a block, in turns that alternate from one pair to
the next (old new, new old, old new ...), so drift in the machine's speed falls on both alike. Each
block yields samples (ms per poll or per round, or polls per second) and the CPU each process used.

A figure's pooled ratio is new/old of the statistic over all samples of each tree; its paired ratio
is the median over pairs of new/old of the block statistics, which cancels slower drift.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

TREES: tuple[str, str] = ("old", "new")
Kind = Literal["first", "rounds", "saturate"]
# The processes whose CPU a tree's polls cost (the simulated TAB is not one of them).
PROCESSES: tuple[str, ...] = ("fetcher", "transformer", "writer", "postgres")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One measured scenario: `first` polls new races one at a time, `rounds` polls `batch` races
    concurrently per round, `saturate` keeps `batch` pollers busy for a time."""

    name: str
    kind: Kind
    batch: int


@dataclass(frozen=True, slots=True)
class Block:
    """One tree's turn at a scenario: `pair` counts the scenario's pairs over the whole run."""

    round: int
    scenario: Scenario
    pair: int
    tree: str
    # Races polled by this block (a `first` block's share of the round's races).
    races: tuple[str, ...]


def pair_order(pair: int) -> tuple[str, str]:
    """Which tree goes first in a pair: old new, then new old, alternating."""
    return TREES if pair % 2 == 0 else (TREES[1], TREES[0])


def split(items: Sequence[str], parts: int) -> list[tuple[str, ...]]:
    """`items` in `parts` contiguous chunks as even as possible (none empty when there are enough)."""
    parts = max(1, min(parts, len(items))) if items else 1
    size, extra = divmod(len(items), parts)
    chunks: list[tuple[str, ...]] = []
    start = 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        chunks.append(tuple(items[start:end]))
        start = end
    return chunks


def plan_round(
    round_index: int, scenarios: Sequence[Scenario], races: Sequence[str], pairs: int
) -> list[Block]:
    """The blocks of one round in run order.

    `first` blocks share the round's races (each race's first poll, in each tree, happens once);
    other scenarios poll the first `batch` races. Pairs are numbered across rounds so the turns keep
    alternating from one round to the next.
    """
    blocks: list[Block] = []
    for scenario in scenarios:
        first = scenario.kind == "first"
        chunks = split(races, pairs) if first else [tuple(races[: scenario.batch])] * pairs
        for index, chunk in enumerate(chunks):
            pair = round_index * pairs + index
            blocks.extend(Block(round_index, scenario, pair, tree, chunk) for tree in pair_order(pair))
    return blocks


@dataclass(slots=True)
class BlockResult:
    """What one block measured."""

    block: Block
    # ms per poll (first), per round (rounds), or one value: polls per second (saturate).
    samples: list[float]
    polls: int
    failed: int
    # Stage timings (ms) of the successful polls: {"fetch": [...], "transform": [...], ...}.
    stages: dict[str, list[float]] = field(default_factory=dict)
    # CPU each process used during the block, in ns (a process that could not be read is absent).
    cpu_ns: dict[str, int] = field(default_factory=dict)


def ratio(new: float | None, old: float | None) -> float | None:
    """new / old, None when either is missing or old is zero."""
    if new is None or old is None or old == 0:
        return None
    return new / old


def median(values: Iterable[float]) -> float | None:
    """The median, None for no values."""
    ordered = list(values)
    return statistics.median(ordered) if ordered else None


@dataclass(frozen=True, slots=True)
class Figure:
    """One line of the comparison: the statistic for each tree and the ratios."""

    name: str
    unit: str
    old: float | None
    new: float | None
    pooled: float | None
    paired: float | None
    # The issue-12 target for new/old, and whether higher is better for this figure.
    target: float | None = None
    higher_is_better: bool = False

    @property
    def met(self) -> bool | None:
        """Whether the pooled ratio meets the target (None without one)."""
        if self.target is None or self.pooled is None:
            return None
        return self.pooled >= self.target if self.higher_is_better else self.pooled <= self.target


def _by_tree(results: Iterable[BlockResult], scenario: str) -> dict[str, list[BlockResult]]:
    grouped: dict[str, list[BlockResult]] = {tree: [] for tree in TREES}
    for result in results:
        if result.block.scenario.name == scenario:
            grouped[result.block.tree].append(result)
    return grouped


def _pairs(results: Sequence[BlockResult]) -> dict[int, dict[str, BlockResult]]:
    pairs: dict[int, dict[str, BlockResult]] = {}
    for result in results:
        pairs.setdefault(result.block.pair, {})[result.block.tree] = result
    return pairs


def _paired(results: Sequence[BlockResult]) -> list[tuple[BlockResult, BlockResult]]:
    """(old, new) blocks of each complete pair, in pair order."""
    return [
        (pair["old"], pair["new"]) for _, pair in sorted(_pairs(results).items()) if len(pair) == len(TREES)
    ]


def sample_figure(
    results: Sequence[BlockResult],
    scenario: str,
    name: str,
    unit: str,
    *,
    target: float | None = None,
    higher_is_better: bool = False,
) -> Figure:
    """The median of a scenario's samples per tree, pooled and paired."""
    grouped = _by_tree(results, scenario)
    old = median(s for result in grouped["old"] for s in result.samples)
    new = median(s for result in grouped["new"] for s in result.samples)
    paired = median(
        r
        for o, n in _paired(grouped["old"] + grouped["new"])
        if (r := ratio(median(n.samples), median(o.samples))) is not None
    )
    return Figure(name, unit, old, new, ratio(new, old), paired, target, higher_is_better)


def throughput_figure(
    results: Sequence[BlockResult], scenario: str, *, target: float | None = None
) -> Figure:
    """Successful polls per second per tree (all its saturating blocks together), pooled and paired."""
    grouped = _by_tree(results, scenario)

    def rate(blocks: Sequence[BlockResult]) -> float | None:
        # samples[0] of a saturating block: its polls per second; weight each by its duration.
        seconds = sum((b.polls - b.failed) / b.samples[0] for b in blocks if b.samples and b.samples[0] > 0)
        done = sum(b.polls - b.failed for b in blocks)
        return done / seconds if seconds > 0 else None

    old, new = rate(grouped["old"]), rate(grouped["new"])
    paired = median(
        r
        for o, n in _paired(grouped["old"] + grouped["new"])
        if (r := ratio(rate([n]), rate([o]))) is not None
    )
    return Figure(
        "saturating: race-polls/s", "1/s", old, new, ratio(new, old), paired, target, higher_is_better=True
    )


def cpu_figures(
    results: Sequence[BlockResult], scenarios: Sequence[str], *, target: float | None = None
) -> list[Figure]:
    """CPU per successful poll (ms) of each process and in total, over the named scenarios' blocks."""
    chosen = [result for result in results if result.block.scenario.name in scenarios]
    figures: list[Figure] = []
    for process in (*PROCESSES, "total"):

        def per_poll(blocks: Sequence[BlockResult], process: str = process) -> float | None:
            polls = sum(b.polls - b.failed for b in blocks)
            if polls == 0:
                return None
            if process == "total":
                if any(not set(PROCESSES) <= set(b.cpu_ns) for b in blocks):
                    return None
                used = sum(sum(b.cpu_ns[p] for p in PROCESSES) for b in blocks)
            else:
                if any(process not in b.cpu_ns for b in blocks):
                    return None
                used = sum(b.cpu_ns[process] for b in blocks)
            return used / polls / 1e6

        old = per_poll([r for r in chosen if r.block.tree == "old"])
        new = per_poll([r for r in chosen if r.block.tree == "new"])
        paired = median(
            r for o, n in _paired(chosen) if (r := ratio(per_poll([n]), per_poll([o]))) is not None
        )
        figures.append(
            Figure(
                f"CPU per poll: {process}",
                "ms",
                old,
                new,
                ratio(new, old),
                paired,
                target if process == "total" else None,
            )
        )
    return figures


def stage_figures(results: Sequence[BlockResult], scenario: str) -> list[Figure]:
    """Median stage times of a scenario's successful polls (fetch, transform, write)."""
    grouped = _by_tree(results, scenario)
    figures: list[Figure] = []
    for stage in ("fetch", "transform", "write"):
        old = median(ms for result in grouped["old"] for ms in result.stages.get(stage, []))
        new = median(ms for result in grouped["new"] for ms in result.stages.get(stage, []))
        paired = median(
            r
            for o, n in _paired(grouped["old"] + grouped["new"])
            if (r := ratio(median(n.stages.get(stage, [])), median(o.stages.get(stage, [])))) is not None
        )
        figures.append(Figure(f"{scenario}: {stage} median", "ms", old, new, ratio(new, old), paired))
    return figures


def failures(results: Iterable[BlockResult]) -> dict[str, int]:
    """Failed polls per tree."""
    counts = {tree: 0 for tree in TREES}
    for result in results:
        counts[result.block.tree] += result.failed
    return counts


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(figures: Sequence[Figure]) -> list[str]:
    """The figures as aligned text lines: old, new, new/old pooled and paired, and the target."""
    width = max([len(figure.name) for figure in figures] + [6])
    lines = [
        f"{'figure':<{width}} {'unit':>4} {'old':>9} {'new':>9} {'new/old':>8} {'paired':>7}  target",
    ]
    for figure in figures:
        if figure.target is None:
            verdict = ""
        else:
            sign = ">=" if figure.higher_is_better else "<="
            met = {True: "met", False: "MISSED", None: "?"}[figure.met]
            verdict = f"{sign} {figure.target:g}  {met}"
        lines.append(
            f"{figure.name:<{width}} {figure.unit:>4} {_number(figure.old):>9} {_number(figure.new):>9} "
            f"{_number(figure.pooled, 3):>8} {_number(figure.paired, 3):>7}  {verdict}".rstrip()
        )
    return lines
