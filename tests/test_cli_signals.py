"""A `raceday` command stopped with SIGTERM (`kill`, `timeout`) stops what it started, as Ctrl-C does,
and a benchmark works in a database of its own, never the one RACEDAY_DATABASE_URL names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

RACEDAY = str(Path(sys.executable).with_name("raceday"))


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _bench_databases(url: str) -> list[str]:
    """The scratch databases of `raceday bench pipeline` on the server of `url`."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'raceday_bench_pipeline_%'"
        ).fetchall()
    return [name for (name,) in rows]


def _tables(url: str) -> int:
    """Tables in the public schema of the database `url` names."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert row is not None
    return int(row[0])


def test_sigterm_stops_a_benchmark_and_the_services_it_started(
    fresh_database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "RACEDAY_DATABASE_URL": fresh_database_url, "RACEDAY_DATA_DIR": str(tmp_path)}
    # Another run's leftovers on a shared server are not this run's.
    earlier = set(_bench_databases(fresh_database_url))
    process = subprocess.Popen(
        [RACEDAY, "bench", "pipeline", "--batches", "1", "--iterations", "1000000", "--warmup", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started: set[int] = set()
    try:
        assert process.stdout is not None
        # Everything the benchmark starts is up once its measured rounds begin.
        for line in process.stdout:
            if "rounds ..." in line:
                break
        else:
            raise AssertionError(f"the benchmark ended early: {process.wait()} {process.stderr}")
        databases = sorted(set(_bench_databases(fresh_database_url)) - earlier)
        assert len(databases) == 1, databases
        started = _children(process.pid)
        assert len(started) >= 3, started  # the simulated TAB, the writer and the transformer
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 130
        assert process.stderr is not None
        stderr = process.stderr.read()
        assert "raceday bench: interrupted" in stderr
        assert "Traceback" not in stderr
        deadline = time.monotonic() + 30
        while any(_running(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in started if _running(pid)]
        # Its scratch database is gone, and the configured one was never written.
        assert databases[0] not in _bench_databases(fresh_database_url)
        assert _tables(fresh_database_url) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in started:  # whatever the failed run left behind
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
