"""A whole Raceday stack started with `raceday up` on an accelerated simulated race day."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.database import scratch_database
from tests.conftest import free_port
from tests.e2e.stack import Process, http_get, start_process, wait_for

# 15 s of simulated time is one real second: a busy machine (two CPU hogs beside the suite) still
# starts every poll of the 15 s tier on time.
SIM_SPEED = 15


@dataclass
class Stack:
    """A running `raceday up` and where to reach its parts."""

    up: Process
    database_url: str
    http_port: int
    fetcher_metrics_port: int
    tabsim_port: int

    def fetcher_metrics(self) -> str:
        """The fetcher's /metrics text ("" while it is down)."""
        return http_get(f"http://127.0.0.1:{self.fetcher_metrics_port}/metrics")[1]


@pytest.fixture(scope="module")
def module_database_url(pg_server_url: str) -> Iterator[str]:
    """A database shared by the tests of one module, dropped afterwards."""
    with scratch_database(pg_server_url, "raceday_e2e") as url:
        yield url


@contextlib.contextmanager
def running_stack(database_url: str, tmp: Path, *, speed: float) -> Iterator[Stack]:
    """`raceday up --sim-speed <speed>` with every port free, on `database_url`; stopped on exit."""
    http_port, tabsim_port, fetcher_metrics = free_port(), free_port(), free_port()
    env = {
        "RACEDAY_DATABASE_URL": database_url,
        "RACEDAY_DATA_DIR": str(tmp / "data"),
        "RACEDAY_FETCHER_METRICS_PORT": str(fetcher_metrics),
    }
    for service in ("fetcher", "transformer", "writer", "gateway"):
        env[f"RACEDAY_{service.upper()}_PORT"] = str(free_port())
        if service != "fetcher":
            env[f"RACEDAY_{service.upper()}_METRICS_PORT"] = str(free_port())
    up = start_process(
        ["up", "--http-port", str(http_port), "--sim-port", str(tabsim_port), "--sim-speed", str(speed)],
        env,
        tmp / "up.log",
    )
    running = Stack(up, database_url, http_port, fetcher_metrics, tabsim_port)
    try:
        wait_for(
            lambda: "dashboard:" in up.log() or up.popen.poll() is not None,
            120,
            "raceday up to report the dashboard",
        )
        assert up.popen.poll() is None, up.log()
        yield running
    finally:
        code = up.stop(timeout_s=40)
        print(up.log()[-5000:])
        assert code == 0, f"raceday up exited {code}"


@pytest.fixture(scope="module")
def stack(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A whole race day at 15x on the module's database."""
    with running_stack(module_database_url, tmp_path_factory.mktemp("up"), speed=SIM_SPEED) as running:
        yield running
