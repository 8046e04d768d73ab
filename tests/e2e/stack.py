"""Helpers to run Raceday processes in tests and read back what they stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg

from services.common.audit import (
    baselines_per_entrant,
    duplicate_poll_rows,
    increment_invariant_violations,
    stored_polls,
)
from services.common.metrics import metric_values

__all__ = [
    "baselines_per_entrant",
    "duplicate_poll_rows",
    "increment_invariant_violations",
    "metric_values",
    "stored_polls",
]

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
