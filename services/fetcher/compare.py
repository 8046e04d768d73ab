"""`raceday bench pipeline --compare REV`: this tree's whole poll against REV's, interleaved in one run.

REV is exported (`git archive`) once into a cache directory with its own virtualenv, where
`pip install -e .` builds its Rust extension (a couple of minutes the first time). Each tree then
runs its own writer and transformer (`raceday serve` of that tree's interpreter) and its own fetcher
(services/fetcher/bench_driver.py under that interpreter, so REV's TAB client and pipeline are what
is measured), against one simulated TAB and one PostgreSQL server with a database per tree.

Every round lays out new open races, starts both stacks on fresh databases, and runs each scenario
in pairs of blocks the trees take in turns (services/fetcher/compare_report.py). Between blocks it
reads each process's CPU clock: the driver (fetcher), transformer, writer, and the PostgreSQL
backends of the tree's database. The Python reference transform is timed before the first round
and after each (the yardstick of the machine's speed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import uvloop

import services
from services.common.config import Env
from services.common.cpuclock import cpu_used_ns, processes_cpu_ns
from services.common.database import database_name, scratch_database
from services.common.nztime import nz_date
from services.fetcher import bench_driver
from services.fetcher.bench import server_url, service_processes, start_bench_tabsim
from services.fetcher.compare_report import (
    TREES,
    Block,
    BlockResult,
    Figure,
    Scenario,
    cpu_figures,
    failures,
    format_table,
    median,
    plan_round,
    sample_figure,
    stage_figures,
    throughput_figure,
)
from services.tabsim.admin_client import TabSimAdmin
from services.transformer.bench import YARDSTICK_MS, reference_yardstick_ms

READY_STAMP = ".raceday-bench-ready"
# Fixed glibc malloc thresholds for every Raceday process of a comparison: glibc's dynamic ones
# (raised as large blocks are freed) made one tree's transformer take many more page faults.
MALLOC_TUNABLES = "glibc.malloc.trim_threshold=67108864:glibc.malloc.mmap_threshold=33554432"
# The day is laid out this far ahead of the clock: its races (2-10 minutes after the anchor) stay
# Open for the whole round, and are polled 12-20 minutes before their start.
DAY_LEAD_S = 600
# Races of each round: warm-up races (each stack's first polls, unmeasured) and measured ones.
WARMUP_RACES = 2
WARMUP_ROUNDS = 3
# Races whose first polls are measured each round (the batches poll the first 20 of them).
MEASURED_RACES = 24
TABSIM_MAX_RACES = 30
DRIVER_TIMEOUT_S = 600.0

LATENCY_SCENARIOS = (
    Scenario("first poll", "first", 1),
    Scenario("one race", "rounds", 1),
    Scenario("batch of 5", "rounds", 5),
    Scenario("batch of 20", "rounds", 20),
)
SATURATE = Scenario("saturating", "saturate", 20)
TARGET_RATIO = 0.5
TARGET_THROUGHPUT = 2.0


@dataclass(frozen=True, slots=True)
class Tree:
    """One side of the comparison: its source root and the interpreter that runs it."""

    label: str
    description: str
    root: Path
    python: str


def trees_dir(env: Env) -> Path:
    """Where exported trees are cached: $RACEDAY_DATA_DIR/bench/trees, else ~/.cache/raceday/bench/trees."""
    data = env.optional_text("RACEDAY_DATA_DIR")
    if data is not None:
        return Path(data).expanduser().resolve() / "bench" / "trees"
    return Path.home() / ".cache" / "raceday" / "bench" / "trees"


def this_tree() -> Tree:
    """The tree this command runs from (its working files, committed or not)."""
    root = Path(services.__file__).resolve().parent.parent
    head = _git(root, "rev-parse", "--short", "HEAD", check=False) or "?"
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no", check=False))
    return Tree("new", f"working tree at {head}{' (modified)' if dirty else ''}", root, sys.executable)


def _git(root: Path, *args: str, check: bool = True) -> str:
    completed = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        if check:
            raise RuntimeError(f"git {' '.join(args)}: {completed.stderr.strip()}")
        return ""
    return completed.stdout.strip()


def ensure_tree(repo: Path, rev: str, cache: Path, progress: Callable[[str], None]) -> Tree:
    """REV exported and installed under `cache`/<sha> (built once; later runs reuse it)."""
    sha = _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}")
    root = cache / sha
    python = root / ".venv" / "bin" / "python"
    description = f"{rev} ({sha[:10]})"
    if (root / READY_STAMP).exists() and python.exists():
        progress(f"using the cached build of {description} in {root}")
        return Tree("old", description, root, str(python))
    progress(f"building {description} in {root} (its own virtualenv and Rust extension: ~2 min) ...")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", sha], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {sha}: {archive.stderr.decode(errors='replace').strip()}")
    with tempfile.TemporaryFile() as handle:
        handle.write(archive.stdout)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(root, filter="data")
    log = root / "build.log"
    with log.open("wb") as out:
        for step in (
            [sys.executable, "-m", "venv", str(root / ".venv")],
            [str(python), "-m", "pip", "install", "--quiet", "-e", str(root)],
        ):
            if (
                subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, cwd=root, check=False).returncode
                != 0
            ):
                raise RuntimeError(f"building {description} failed: {' '.join(step)} (see {log})")
    (root / READY_STAMP).write_text(sha + "\n")
    progress(f"built {description}")
    return Tree("old", description, root, str(python))


def malloc_env(base: Mapping[str, str], mode: str) -> dict[str, str]:
    """`base` with the malloc settings of `mode`: "fixed" thresholds, or glibc's "default" behaviour."""
    env = {name: value for name, value in base.items() if name != "GLIBC_TUNABLES"}
    if mode == "fixed":
        env["GLIBC_TUNABLES"] = MALLOC_TUNABLES
    return env


class Driver:
    """One tree's driver process (bench_driver.py under the tree's interpreter)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        """The driver's process id."""
        return self.process.pid

    async def answer(self) -> dict[str, Any]:
        """The driver's next answer line; raises when it failed or exited."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), DRIVER_TIMEOUT_S)
        if not line:
            raise RuntimeError(f"the bench driver exited (code {await self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"the bench driver failed: {answer.get('error')}")
        return answer

    async def call(self, op: str, **arguments: Any) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **arguments}).encode() + b"\n")
        await self.process.stdin.drain()
        return await self.answer()

    async def stop(self) -> None:
        """Ask the driver to quit; kill it when it does not."""
        if self.process.returncode is not None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            assert self.process.stdin is not None
            self.process.stdin.write(b'{"op": "quit"}\n')
            await self.process.stdin.drain()
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@dataclass(slots=True)
class Stack:
    """One tree's running services for one round."""

    tree: Tree
    database: str
    driver: Driver
    pids: dict[str, int]


@contextlib.asynccontextmanager
async def running_stack(
    tree: Tree, server: str, tab_url: str, env: Mapping[str, str], logs: Path
) -> AsyncIterator[Stack]:
    """A fresh database, the tree's writer and transformer on it, and its driver."""
    with scratch_database(server, f"raceday_bench_{tree.label}") as url:
        async with service_processes(url, logs, python=tree.python, env=env) as targets:
            with (logs / "driver").open("ab") as driver_log:
                process = await asyncio.create_subprocess_exec(
                    tree.python,
                    "-P",
                    bench_driver.__file__,
                    "--tab",
                    tab_url,
                    "--transformer",
                    targets.transformer,
                    "--writer",
                    targets.writer,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=driver_log,
                    env=dict(env),
                    limit=64 * 1024 * 1024,
                )
            driver = Driver(process)
            try:
                await driver.answer()  # {"ready": true}
                yield Stack(
                    tree,
                    database_name(url),
                    driver,
                    {
                        "fetcher": driver.pid,
                        "transformer": targets.transformer_pid,
                        "writer": targets.writer_pid,
                    },
                )
            finally:
                await driver.stop()


class CpuMeter:
    """Reads the CPU of a stack's processes, its PostgreSQL backends found through pg_stat_activity."""

    def __init__(self, server: str) -> None:
        self._admin = psycopg.connect(server, autocommit=True)

    def close(self) -> None:
        """Close the admin connection."""
        self._admin.close()

    def _backends(self, database: str) -> list[int]:
        rows = self._admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
        return [int(row[0]) for row in rows]

    def read(
        self, stack: Stack, previous: Mapping[str, Mapping[int, int]] | None = None
    ) -> dict[str, dict[int, int]]:
        """CPU (ns) of every process of the stack, by role and pid; backends seen in `previous` too."""
        backends = set(self._backends(stack.database))
        if previous is not None:
            backends |= set(previous.get("postgres", {}))
        readings = {role: processes_cpu_ns([pid]) for role, pid in stack.pids.items()}
        readings["postgres"] = processes_cpu_ns(sorted(backends))
        return readings


def _stages(polls: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {}
    for poll in polls:
        if poll["outcome"] == "ok":
            for stage, ms in poll["timings_ms"].items():
                stages.setdefault(stage, []).append(float(ms))
    return stages


async def run_block(block: Block, stack: Stack, meter: CpuMeter, args: argparse.Namespace) -> BlockResult:
    """One tree's turn at a scenario, with the CPU its processes used meanwhile."""
    races = list(block.races)
    # The simulated TAB renders an event once per snapshot: let it do so outside the measurement.
    await stack.driver.call("prefetch", races=races)
    before = meter.read(stack)
    scenario = block.scenario
    if scenario.kind == "first":
        answer = await stack.driver.call("first", races=races)
        samples = [float(poll["timings_ms"]["total"]) for poll in answer["polls"]]
    elif scenario.kind == "rounds":
        answer = await stack.driver.call("rounds", races=races, rounds=args.block_rounds)
        samples = [float(ms) for ms in answer["round_ms"]]
    else:
        answer = await stack.driver.call("saturate", races=races, seconds=args.saturate_s)
        ok = sum(poll["outcome"] == "ok" for poll in answer["polls"])
        samples = [ok / answer["elapsed_s"]] if answer["elapsed_s"] > 0 else []
    after = meter.read(stack, before)
    polls = answer["polls"]
    failed = [poll for poll in polls if poll["outcome"] != "ok"]
    for poll in failed[:3]:
        print(
            f"  failed poll ({block.tree}, {scenario.name}) {poll['race_id']}: "
            f"{poll['failed_stage']} {poll['failure']}",
            file=sys.stderr,
        )
    return BlockResult(
        block,
        samples,
        polls=len(polls),
        failed=len(failed),
        stages=_stages(polls),
        cpu_ns={
            role: cpu_used_ns(before.get(role, {}), readings)
            for role, readings in after.items()
            if readings or role == "postgres"
        },
    )


@dataclass(frozen=True, slots=True)
class Run:
    """What every round of a comparison shares."""

    args: argparse.Namespace
    trees: Mapping[str, Tree]
    server: str
    tab_url: str
    admin: TabSimAdmin
    env: Mapping[str, str]
    meter: CpuMeter
    logs: Path


async def _round(round_index: int, run: Run) -> list[BlockResult]:
    """Both stacks on fresh databases and new races, every scenario's blocks in turns."""
    args = run.args
    label = f"round {round_index + 1}/{args.rounds}"
    anchor_ms = int(time.time() * 1000) + DAY_LEAD_S * 1000
    await run.admin.set_scenario(anchor=anchor_ms)
    day = nz_date(datetime.fromtimestamp(anchor_ms / 1000, UTC))
    # Alternate which tree's stack starts first, as the blocks alternate.
    order = TREES if round_index % 2 == 0 else (TREES[1], TREES[0])
    _progress(f"{label}: starting both stacks on fresh databases")
    async with contextlib.AsyncExitStack() as exits:
        stacks: dict[str, Stack] = {}
        for tree in order:
            stacks[tree] = await exits.enter_async_context(
                running_stack(
                    run.trees[tree],
                    run.server,
                    run.tab_url,
                    run.env,
                    run.logs / f"round{round_index + 1}" / tree,
                )
            )
        race_lists = {
            tree: (await stacks[tree].driver.call("setup", day=day.isoformat()))["races"] for tree in order
        }
        races: list[str] = race_lists[TREES[0]]
        if race_lists[TREES[1]] != races:
            raise RuntimeError("the two trees see different races")
        warm, measured = races[:WARMUP_RACES], races[WARMUP_RACES:]
        for tree in order:
            await stacks[tree].driver.call("first", races=warm)
            await stacks[tree].driver.call("rounds", races=warm, rounds=WARMUP_ROUNDS)
        results: list[BlockResult] = []
        scenarios = [*LATENCY_SCENARIOS, *([SATURATE] if args.saturate_s > 0 else [])]
        blocks = plan_round(round_index, scenarios, measured, args.pairs)
        for scenario in scenarios:
            done = [
                await run_block(b, stacks[b.tree], run.meter, args) for b in blocks if b.scenario == scenario
            ]
            results.extend(done)
            summary = sample_figure(done, scenario.name, scenario.name, "")
            unit = "polls/s" if scenario.kind == "saturate" else "ms"
            _progress(
                f"{label}: {scenario.name:<11} old {_fmt(summary.old)} {unit}, new {_fmt(summary.new)} {unit}"
                f" (new/old {_fmt(summary.pooled, 3)}); failed polls {failures(done)}"
            )
    return results


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def figures(results: Sequence[BlockResult]) -> list[Figure]:
    """Every figure of the comparison, in report order."""
    table = [
        sample_figure(
            results, "first poll", "first poll of a new race: total median", "ms", target=TARGET_RATIO
        ),
        sample_figure(results, "one race", "one race: total median", "ms", target=TARGET_RATIO),
        sample_figure(results, "batch of 5", "batch of 5: round median", "ms", target=TARGET_RATIO),
        sample_figure(results, "batch of 20", "batch of 20: round median", "ms", target=TARGET_RATIO),
    ]
    if any(result.block.scenario == SATURATE for result in results):
        table.append(throughput_figure(results, SATURATE.name, target=TARGET_THROUGHPUT))
    table += cpu_figures(results, [s.name for s in LATENCY_SCENARIOS], target=TARGET_RATIO)
    if any(result.block.scenario == SATURATE for result in results):
        saturated = cpu_figures(results, [SATURATE.name])[-1]
        table.append(
            Figure(
                "saturating: CPU per poll: total",
                saturated.unit,
                saturated.old,
                saturated.new,
                saturated.pooled,
                saturated.paired,
            )
        )
    table += stage_figures(results, "first poll")
    table += stage_figures(results, "one race")
    return table


def _write_files(out: Path, document: dict[str, Any], table: Sequence[Figure]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    json_path = out / f"pipeline-compare-{stamp}.json"
    csv_path = out / f"pipeline-compare-{stamp}.csv"
    json_path.write_text(json.dumps(document, indent=2))
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["figure", "unit", "old", "new", "new_over_old", "paired", "target", "met"])
        for figure in table:
            writer.writerow(
                [
                    figure.name,
                    figure.unit,
                    figure.old,
                    figure.new,
                    figure.pooled,
                    figure.paired,
                    figure.target,
                    figure.met,
                ]
            )
    return json_path, csv_path


def _progress(message: str) -> None:
    print(f"bench pipeline --compare: {message}", flush=True)


async def _compare(args: argparse.Namespace, env: Env) -> int:
    new = this_tree()
    old = await asyncio.to_thread(ensure_tree, new.root, args.compare, trees_dir(env), _progress)
    trees = {"old": old, "new": new}
    process_env = malloc_env(os.environ, args.malloc)
    _progress(f"old = {old.description}; new = {new.description}")
    _progress(
        f"{args.rounds} rounds; per round and scenario {args.pairs} pairs of blocks; malloc {args.malloc}"
        + (f" ({MALLOC_TUNABLES})" if args.malloc == "fixed" else "")
    )
    loads: list[tuple[float, float, float]] = [os.getloadavg()]
    yardsticks = [reference_yardstick_ms()]
    _progress(f"yardstick before round 1: {yardsticks[0]:.2f} ms; load average {_load(loads[0])}")
    results: list[BlockResult] = []
    with tempfile.TemporaryDirectory(prefix="raceday-bench-compare-") as scratch:
        scratch_path = Path(scratch)
        server = await server_url(env, scratch_path)
        races = min(TABSIM_MAX_RACES, WARMUP_RACES + max(MEASURED_RACES, args.pairs))
        tabsim = start_bench_tabsim(races, process_env)
        meter = CpuMeter(server)
        try:
            async with TabSimAdmin(tabsim.url) as admin:
                run = Run(args, trees, server, tabsim.url, admin, process_env, meter, scratch_path / "logs")
                for round_index in range(args.rounds):
                    results += await _round(round_index, run)
                    yardsticks.append(reference_yardstick_ms())
                    loads.append(os.getloadavg())
                    _progress(
                        f"yardstick after round {round_index + 1}: {yardsticks[-1]:.2f} ms; "
                        f"load average {_load(loads[-1])}"
                    )
        finally:
            meter.close()
            tabsim.stop()
    table = figures(results)
    failed = failures(results)
    print()
    print(f"old = {old.description}; new = {new.description}")
    for line in format_table(table):
        print(line)
    print(
        "yardstick (the Python reference transform of the recorded event, ms; "
        f"{YARDSTICK_MS} where the targets were set): " + ", ".join(f"{y:.2f}" for y in yardsticks)
    )
    print(
        "load average (1, 5, 15 min) before and after each round: " + "; ".join(_load(load) for load in loads)
    )
    print(
        "CPU per poll: over the first-poll, one-race, batch-of-5 and batch-of-20 blocks; "
        "postgres = the backends of the tree's database; the simulated TAB is not counted."
    )
    print("paired = median over pairs of blocks of new/old; new/old = pooled over all blocks.")
    document = {
        "benchmark": "pipeline-compare",
        "trees": {label: {"description": t.description, "root": str(t.root)} for label, t in trees.items()},
        "settings": {
            "rounds": args.rounds,
            "pairs": args.pairs,
            "block_rounds": args.block_rounds,
            "saturate_s": args.saturate_s,
            "malloc": args.malloc,
            "malloc_tunables": MALLOC_TUNABLES if args.malloc == "fixed" else None,
        },
        "yardstick_ms": yardsticks,
        "load_average": loads,
        "failed_polls": failed,
        "figures": [asdict(figure) | {"met": figure.met} for figure in table],
        "blocks": [_block_json(result) for result in results],
    }
    json_path, csv_path = _write_files(args.out, document, table)
    print(f"bench pipeline --compare: reports written to {json_path} and {csv_path}")
    if any(failed.values()):
        print(f"bench pipeline --compare: FAILED: failed polls {failed}", file=sys.stderr)
        return 1
    return 0


def _load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in load)


def _block_json(result: BlockResult) -> dict[str, Any]:
    block = result.block
    return {
        "round": block.round,
        "scenario": block.scenario.name,
        "pair": block.pair,
        "tree": block.tree,
        "races": len(block.races),
        "samples": result.samples,
        "polls": result.polls,
        "failed": result.failed,
        "cpu_ms": {role: ns / 1e6 for role, ns in result.cpu_ns.items()},
        "stage_medians_ms": {stage: median(ms) for stage, ms in result.stages.items()},
    }


def run_compare(args: argparse.Namespace) -> int:
    """Build REV when needed, run the comparison, print and write its figures; 1 when a poll failed."""
    return uvloop.run(_compare(args, Env()))
