"""Helpers to run Raceday processes in tests and read back what they stored."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg

RACEDAY = [sys.executable, "-m", "services.cli"]


def wait_for(predicate: object, timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    """Poll `predicate()` until it is truthy or `timeout_s` passes (then fail naming `what`)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, str]:
    """GET a URL; returns (status, body) and never raises for HTTP errors."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def metric_values(metrics_text: str, name: str) -> dict[str, float]:
    """Samples of one Prometheus metric: label text -> value."""
    values: dict[str, float] = {}
    for line in metrics_text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if match:
            values[match.group(1) or ""] = float(match.group(2))
    return values


def children_of(parent_pid: int) -> dict[int, str]:
    """Direct child processes of `parent_pid`: pid -> command line."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent_pid:
            found[int(entry.name)] = cmdline
    return found


def service_pid(parent_pid: int, service: str) -> int | None:
    """The pid of `raceday serve <service>` started by `parent_pid`."""
    for pid, cmdline in children_of(parent_pid).items():
        if cmdline.endswith(f"serve {service}"):
            return pid
    return None


@dataclass
class Process:
    """A started child process with its log file."""

    popen: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM then wait (SIGKILL after `timeout_s`)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()

    def log(self) -> str:
        """The process's combined output so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_process(args: list[str], env: Mapping[str, str], log_path: Path) -> Process:
    """Start `raceday <args>` with output to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = log_path.open("wb")
    popen = subprocess.Popen(
        [*RACEDAY, *args], env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT
    )
    return Process(popen, log_path)


def table_counts(database_url: str) -> dict[str, int]:
    """Row counts of every table the pipeline writes."""
    tables = (
        "meetings",
        "races",
        "entrants",
        "race_pools",
        "race_results",
        "money_flow_history",
        "odds_history",
    )
    with psycopg.connect(database_url) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}  # type: ignore[index]


def _effective_rows(database_url: str) -> dict[str, list[tuple[int, int, int, int, bool]]]:
    """Per entrant, the latest poll of each effective bucket (money-flow.md §7.1), highest bucket first.

    Rows are (win_pool_amount, place_pool_amount, incremental_win, incremental_place, is_baseline).
    """
    query = """
        SELECT DISTINCT ON (entrant_id, time_interval)
               entrant_id, time_interval, event_timestamp, id, win_pool_amount, place_pool_amount,
               incremental_win_amount, incremental_place_amount, is_baseline
        FROM money_flow_history
        ORDER BY entrant_id, time_interval, event_timestamp DESC, id DESC
    """
    latest: dict[str, list[tuple[int, float, int, tuple[int, int, int, int, bool]]]] = defaultdict(list)
    with psycopg.connect(database_url) as conn:
        for entrant, bucket, stamp, row_id, win, place, inc_win, inc_place, baseline in conn.execute(query):
            latest[entrant].append(
                (bucket, stamp.timestamp(), row_id, (win, place, inc_win, inc_place, baseline))
            )
    effective: dict[str, list[tuple[int, int, int, int, bool]]] = {}
    for entrant, rows in latest.items():
        chosen = []
        newest = (float("-inf"), -1)
        for _bucket, stamp, row_id, values in sorted(rows, key=lambda r: -r[0]):
            if (stamp, row_id) > newest:
                chosen.append(values)
                newest = (stamp, row_id)
        effective[entrant] = chosen
    return effective


def increment_invariant_violations(database_url: str) -> list[str]:
    """Entrants whose increments over their effective buckets do not sum to their latest amounts."""
    violations = []
    for entrant, rows in _effective_rows(database_url).items():
        latest = rows[-1]
        if sum(r[2] for r in rows) != latest[0] or sum(r[3] for r in rows) != latest[1]:
            violations.append(entrant)
    return violations


def baselines_per_entrant(database_url: str) -> set[int]:
    """How many of each entrant's effective buckets are baselines (exactly one when state was kept)."""
    return {sum(1 for row in rows if row[4]) for rows in _effective_rows(database_url).values()}


def duplicate_poll_rows(database_url: str) -> int:
    """Money-flow and odds rows written twice for the same entrant and poll."""
    with psycopg.connect(database_url) as conn:
        money = conn.execute(
            "SELECT count(*) FROM (SELECT entrant_id, event_timestamp FROM money_flow_history "
            "GROUP BY 1, 2 HAVING count(*) > 1) d"
        ).fetchone()
        odds = conn.execute(
            "SELECT count(*) FROM (SELECT entrant_id, type, event_timestamp FROM odds_history "
            "GROUP BY 1, 2, 3 HAVING count(*) > 1) d"
        ).fetchone()
    assert money is not None and odds is not None
    return int(money[0]) + int(odds[0])
