"""The soak run: the stack on its own PostgreSQL, the fault schedule, progress, then the audit.

The simulated TAB runs in this process (its fault knobs are set through its admin API); the
writer, transformer, fetcher and gateway run as supervised `raceday serve` processes, restarted
after a SIGKILL as Kubernetes would. The fetchers' logs say which polls were committed; the
database says which are stored; /metrics, scraped every second, gives the counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from services.common import audit
from services.common.clock import Clock, real_now_ms
from services.common.health import wait_serving
from services.common.localstack import StackPorts, own_postgres, service_env, stack_env
from services.common.metrics import metric_values
from services.common.nztime import NZ, from_epoch_ms
from services.common.pgcluster import LocalPostgres
from services.common.settings import ServiceName
from services.common.supervisor import ProcessSpec, Supervisor
from services.soak.report import CounterTotals, FaultResult, SoakReport, missed_slots
from services.soak.schedule import Fault, build_schedule, describe
from services.tabsim.admin_client import TabSimAdmin
from services.tabsim.config import TabSimConfig
from services.tabsim.scenario import ScenarioConfig
from services.tabsim.server import run_tabsim

logger = logging.getLogger(__name__)

START_ORDER: tuple[ServiceName, ...] = ("writer", "transformer", "fetcher", "gateway")
SCRAPE_EVERY_S = 1.0
PROGRESS_EVERY_S = 15.0
# A fault waits this long past its planned moment for the previous one's recovery.
MAX_FAULT_DELAY_S = 30.0
SETTLE_TIMEOUT_S = 180.0
RESTART_TIMEOUT_S = 60.0
FINAL_MINUTES_MS = 5 * 60_000
FINAL_TIER_MS = 15_000
COUNTERS = (
    "raceday_polls_total",
    "raceday_missed_polls_total",
    "raceday_tab_retries_total",
    "raceday_spool_caught_up_total",
)
# The simulated TAB's fault knobs (services/tabsim/faults.py) for each TAB fault.
TAB_KNOBS: dict[str, dict[str, dict[str, Any]]] = {
    "tab_5xx": {"http_5xx": {"rate": 1.0, "status": 503}},
    "tab_429": {"http_429": {"rate": 1.0, "retry_after": "1"}},
    # Half the responses late, some past the client's 5 s timeout.
    "tab_slow": {"slow": {"rate": 0.5, "delay_s": 2.0, "jitter_s": 5.0}},
    # Half the bodies cut in half.
    "tab_truncated": {"malformed": {"rate": 0.5, "mode": "truncated"}},
}
GAUGES = ("raceday_spool_depth", "raceday_commit_circuit_open", "raceday_tab_circuit_open")


@dataclass(frozen=True, slots=True)
class SoakOptions:
    """What `raceday soak` was asked for."""

    minutes: float
    seed: int
    speed: float = 60.0
    work_dir: Path | None = None


def scenario_for(minutes: float, speed: float) -> ScenarioConfig:
    """A race day whose races start throughout the run: four meetings, a race every 30 minutes."""
    simulated_minutes = minutes * speed
    races = max(1, min(30, math.ceil((simulated_minutes - 10) / 30)))
    return ScenarioConfig(
        meetings=4,
        races=races,
        first_start_offset_s=10 * 60,
        meeting_stagger_s=7 * 60,
        race_spacing_s=30 * 60,
    )


def _say(message: str) -> None:
    print(f"raceday soak: {message}", flush=True)


@dataclass
class Observed:
    """What the scraper saw last, and the counters over every process life."""

    counters: CounterTotals = field(default_factory=CounterTotals)
    gauges: dict[str, float] = field(default_factory=dict)
    fetcher_up: bool = False
    scraped_at: float = 0.0
    became_healthy: asyncio.Event = field(default_factory=asyncio.Event)

    def ok_polls(self) -> float:
        """Polls the fetchers committed directly or from the spool, by their counters."""
        return self.counters.sum_matching("raceday_polls_total", 'outcome="ok"') + self.counters.total(
            "raceday_spool_caught_up_total"
        )

    def healthy(self) -> bool:
        """The fetcher answers, its spool is empty and both breakers are closed."""
        return (
            self.fetcher_up
            and self.gauges.get("raceday_spool_depth", 1) == 0
            and self.gauges.get("raceday_commit_circuit_open", 1) == 0
            and self.gauges.get("raceday_tab_circuit_open", 1) == 0
        )


class Soak:
    """One run."""

    def __init__(self, options: SoakOptions) -> None:
        self.options = options
        self.schedule = build_schedule(options.seed, options.minutes)
        self.clock = Clock(speed=options.speed, anchor_ms=real_now_ms())
        self.ports = StackPorts()
        self.supervisor = Supervisor()
        self.observed = Observed()
        self.started = 0.0
        self.results: list[FaultResult] = []
        self.active: str = "none"
        self.work = options.work_dir or Path(tempfile.mkdtemp(prefix="raceday-soak-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.postgres: LocalPostgres | None = None
        self.database_url = ""

    def elapsed(self) -> float:
        """Real seconds since the fault clock started."""
        return time.monotonic() - self.started

    # ------------------------------------------------------------------ the run

    async def run(self) -> int:
        """Start, run the schedule, settle, stop, audit; 0 when nothing was lost or broken."""
        _say(f"work directory {self.work} (logs in {self.work / 'logs'})")
        _say(f"{len(self.schedule)} faults planned (seed {self.options.seed}):")
        for fault in self.schedule:
            _say("  " + describe(fault))
        self.postgres, self.database_url = await asyncio.to_thread(own_postgres, self.work / "postgres")
        scenario = scenario_for(self.options.minutes, self.options.speed)
        config = TabSimConfig(
            port=0,
            seed=self.options.seed,
            speed=self.options.speed,
            clock_anchor_ns=self.clock.anchor_ms * 1_000_000,
            scenario=scenario,
            snapshot_s=15,
        )
        try:
            async with run_tabsim(config) as tabsim, TabSimAdmin(tabsim.url) as admin:
                sim_start_ms = self.clock.now_ms()
                await self._start_services(tabsim.url)
                self.started = time.monotonic()
                scraper = asyncio.create_task(self._scrape_forever())
                progress = asyncio.create_task(self._progress_forever())
                try:
                    await self._run_schedule(admin)
                    await admin.clear_faults()
                    await self._settle()
                    sim_end_ms = self.clock.now_ms()
                finally:
                    scraper.cancel()
                    progress.cancel()
                    codes = await self.supervisor.stop(grace_s=20)
                    _say("stopped " + ", ".join(f"{name} (exit {code})" for name, code in codes.items()))
            report = await asyncio.to_thread(self._audit, sim_start_ms, sim_end_ms)
        finally:
            if self.postgres is not None:
                await asyncio.to_thread(self.postgres.remove)
        lines = report.lines()
        (self.work / "report.txt").write_text("\n".join(lines) + "\n")
        print("\n".join(lines), flush=True)
        return 1 if report.problems() else 0

    async def _start_services(self, tab_url: str) -> None:
        env = {
            **os.environ,
            **stack_env(
                self.ports,
                database_url=self.database_url,
                tab_url=tab_url,
                spool_dir=self.work / "spool",
                clock=self.clock,
                who="soak",
            ),
            # Fewer races tracked ahead: the 60 s tier is not what a soak is about.
            "SCHED_LOOKAHEAD_MIN": "65",
        }
        for service in START_ORDER:
            spec = ProcessSpec(
                service,
                [sys.executable, "-m", "services.cli", "serve", service],
                service_env(env, self.ports, service),
                self.work / "logs" / f"{service}.log",
            )
            await self.supervisor.start(spec)
            await wait_serving(self.ports.address(service), timeout_s=60)
            _say(f"{service} serving")

    # ------------------------------------------------------------------ faults

    async def _run_schedule(self, admin: TabSimAdmin) -> None:
        for index, fault in enumerate(self.schedule):
            await self._until(fault.at_s)
            # A previous fault still recovering delays this one (a little).
            deadline = fault.at_s + MAX_FAULT_DELAY_S
            await self._wait_healthy(deadline - self.elapsed())
            started = self.elapsed()
            self.active = fault.kind
            restarts = self._restarts()
            await self._inject(fault, admin, index)
            self.active = "recovering"
            ended = self.elapsed()
            if fault.kind.startswith("kill_"):
                # Recovered means after the new process: not a poll that was already past it.
                await self._wait_for(functools.partial(self._restarted_since, restarts), RESTART_TIMEOUT_S)
            baseline = self.observed.ok_polls()
            next_at = (
                self.schedule[index + 1].at_s + MAX_FAULT_DELAY_S if index + 1 < len(self.schedule) else None
            )
            recovered = await self._recovery(baseline, ended, next_at)
            self.results.append(FaultResult(fault, started, recovered))
            self.active = "none"
            _say(
                f"fault {index + 1}/{len(self.schedule)} {fault.kind} at {started:.1f} s: "
                + ("not recovered" if recovered is None else f"recovered in {recovered:.1f} s")
            )
        await self._until(self.options.minutes * 60)

    async def _inject(self, fault: Fault, admin: TabSimAdmin, index: int) -> None:
        kind = fault.kind
        if kind.startswith("kill_"):
            child = self.supervisor.children[kind.removeprefix("kill_")]
            if child.pid is not None:
                os.kill(child.pid, signal.SIGKILL)
            return
        postgres = self.postgres
        assert postgres is not None
        if kind == "postgres_restart":
            await asyncio.to_thread(postgres.stop, "fast")
            await asyncio.to_thread(postgres.start)
            return
        if kind == "postgres_outage":
            await asyncio.to_thread(postgres.stop, "immediate")  # as if it crashed
            await asyncio.sleep(fault.duration_s)
            await asyncio.to_thread(postgres.start)
            return
        knobs = dict(TAB_KNOBS[kind])
        if kind == "tab_truncated" and index % 2:
            knobs["malformed"] = {**knobs["malformed"], "mode": "bad_gzip"}  # a gzip stream cut in half
        await admin.set_faults(**knobs)
        await asyncio.sleep(fault.duration_s)
        await admin.set_faults(**{name: {} for name in knobs})

    async def _recovery(self, baseline: float, ended: float, give_up_at: float | None) -> float | None:
        """Seconds from the end of a fault until polls are committed again and all is healthy."""
        while give_up_at is None or self.elapsed() < give_up_at:
            if self.observed.ok_polls() > baseline and self.observed.healthy():
                return self.observed.scraped_at - self.started - ended
            if give_up_at is None and self.elapsed() > ended + SETTLE_TIMEOUT_S:
                return None
            await asyncio.sleep(0.25)
        return None

    async def _settle(self) -> None:
        """Wait until the last spooled poll is written (bounded)."""
        await self._wait_healthy(SETTLE_TIMEOUT_S)
        await asyncio.sleep(2 * SCRAPE_EVERY_S)  # one more scrape of the final counters

    def _restarts(self) -> int:
        return sum(child.restarts for child in self.supervisor.children.values())

    def _restarted_since(self, restarts: int) -> bool:
        return self._restarts() > restarts

    async def _wait_for(self, condition: Callable[[], bool], timeout_s: float) -> None:
        """Poll `condition` (state this process keeps) until it holds, at most `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.1)

    async def _wait_healthy(self, timeout_s: float) -> None:
        """Until the scraper sees a healthy fetcher (it sets the event), at most `timeout_s`."""
        self.observed.became_healthy.clear()
        if self.observed.healthy() or timeout_s <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.observed.became_healthy.wait(), timeout_s)

    async def _until(self, at_s: float) -> None:
        delay = at_s - self.elapsed()
        if delay > 0:
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ observation

    async def _scrape_forever(self) -> None:
        url = f"http://127.0.0.1:{self.ports.metrics['fetcher']}/metrics"
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                try:
                    text = (await http.get(url)).text
                except httpx.HTTPError:
                    self.observed.fetcher_up = False
                else:
                    self._observe(text)
                await asyncio.sleep(SCRAPE_EVERY_S)

    def _observe(self, text: str) -> None:
        # Which process answered: a restarted fetcher's counters start from zero.
        life = sum(metric_values(text, "process_start_time_seconds").values())
        for name in COUNTERS:
            for labels, value in metric_values(text, name).items():
                self.observed.counters.observe(name + labels, value, life)
        for name in GAUGES:
            self.observed.gauges[name] = sum(metric_values(text, name).values())
        self.observed.fetcher_up = True
        self.observed.scraped_at = time.monotonic()
        if self.observed.healthy():
            self.observed.became_healthy.set()

    async def _progress_forever(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            _say(self._progress_line())

    def _progress_line(self) -> str:
        counters = self.observed.counters

        def polls(outcome: str) -> float:
            return counters.sum_matching("raceday_polls_total", f'outcome="{outcome}"')

        now_nz = from_epoch_ms(self.clock.now_ms()).astimezone(NZ).strftime("%H:%M")
        restarts = self._restarts()
        missed = counters.sum_matching("raceday_missed_polls_total", 'tier="15s"')
        return (
            f"{self.elapsed():5.0f} s (NZ {now_nz}) fault: {self.active}; polls ok {polls('ok'):.0f}, "
            f"spooled {polls('spooled'):.0f}, failed {polls('failed'):.0f}, caught up "
            f"{counters.total('raceday_spool_caught_up_total'):.0f}; spool "
            f"{self.observed.gauges.get('raceday_spool_depth', 0):.0f}; missed 15 s {missed:.0f}; "
            f"restarts {restarts}"
        )

    # ------------------------------------------------------------------ audit

    def _log_events(self, event: str) -> list[dict[str, Any]]:
        found = []
        path = self.work / "logs" / "fetcher.log"
        for line in path.read_text(errors="replace").splitlines():
            if f'"event":"{event}"' not in line:
                continue
            with contextlib.suppress(json.JSONDecodeError):
                found.append(json.loads(line))
        return found

    def _audit(self, sim_start_ms: int, sim_end_ms: int) -> SoakReport:
        assert self.postgres is not None
        polls = self._log_events("race_poll")
        caught_up = [e for e in self._log_events("spooled_poll") if e.get("result") == "caught_up"]
        committed = {
            (str(e["race_id"]), int(e["polled_at_ms"]))
            for e in polls
            if e["outcome"] == "ok" and e.get("polled_at_ms")
        } | {(str(e["race_id"]), int(e["polled_at_ms"])) for e in caught_up}
        stored = audit.stored_polls(self.database_url)
        effective = audit.effective_rows(self.database_url)
        failed = Counter(str(e.get("failed_stage") or "unknown") for e in polls if e["outcome"] == "failed")
        counters = self.observed.counters
        missed = {
            tier: counters.sum_matching("raceday_missed_polls_total", f'tier="{tier}"')
            for tier in ("15s", "30s", "60s")
        }
        races, final_races, final_missing, final_expected = self._final_minutes(
            stored, sim_start_ms, sim_end_ms
        )
        return SoakReport(
            minutes=self.options.minutes,
            seed=self.options.seed,
            speed=self.options.speed,
            races=races,
            entrants=len(effective),
            polls_ok=sum(1 for e in polls if e["outcome"] == "ok"),
            polls_caught_up=len(caught_up),
            polls_spooled=sum(1 for e in polls if e["outcome"] == "spooled"),
            polls_failed=dict(failed),
            spool_dropped=len(self._log_events("spool_dropped")),
            tab_retries=counters.sum_matching("raceday_tab_retries_total"),
            committed=len(committed),
            stored=len(stored),
            lost=sorted(committed - stored),
            duplicate_rows=audit.duplicate_poll_rows(self.database_url),
            invariant_violations=audit.invariant_violations(effective),
            missed_by_tier=missed,
            final_minutes_races=final_races,
            final_minutes_missing_slots=final_missing,
            final_minutes_expected_slots=final_expected,
            faults=self.results,
            restarts={name: child.restarts for name, child in self.supervisor.children.items()},
        )

    def _final_minutes(
        self, stored: set[tuple[str, int]], sim_start_ms: int, sim_end_ms: int
    ) -> tuple[int, int, int, int]:
        """(races, races whose final five minutes the run saw, slots without a poll, slots)."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT race_id, (extract(epoch FROM start_time) * 1000)::bigint, status FROM races"
            ).fetchall()
        by_race: dict[str, list[int]] = {}
        for race, polled_ms in stored:
            by_race.setdefault(race, []).append(polled_ms)
        seen = missing = expected = 0
        for race_id, start_ms, status in rows:
            window_start = int(start_ms) - FINAL_MINUTES_MS
            # Only windows the stack was polling throughout, of races that ran.
            if status == "abandoned" or window_start < sim_start_ms + 60_000 or start_ms > sim_end_ms:
                continue
            seen += 1
            expected += FINAL_MINUTES_MS // FINAL_TIER_MS
            missing += missed_slots(by_race.get(race_id, []), window_start, int(start_ms), FINAL_TIER_MS)
        return len(rows), seen, missing, expected


def run_soak(options: SoakOptions, runner: Callable[[Any], int] | None = None) -> int:
    """Run one soak to the end; the exit code."""
    import uvloop

    soak = Soak(options)
    try:
        return (runner or uvloop.run)(soak.run())
    finally:
        if options.work_dir is None:
            _say(f"logs and report kept in {soak.work}")
            shutil.rmtree(soak.work / "spool", ignore_errors=True)
