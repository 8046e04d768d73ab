"""Fixtures of the TAB tests: a simulated TAB on a free loopback port, clients and its admin API."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from services.fetcher.tab_client import EventFetch, TabClient
from services.fetcher.tab_settings import TabSettings
from services.tabsim.admin_client import TabSimAdmin
from services.tabsim.config import TabSimConfig
from services.tabsim.server import RunningTabSim, run_tabsim
from tests.conftest import FIXTURES

# The recorded TAB responses (the simulator ships copies of them).
NZTAB_FIXTURES = FIXTURES / "nztab"
# Identification for raw HTTP requests to the simulator's TAB routes (bypassing TabClient).
HEADERS = {
    "From": "ops@example.co.nz",
    "X-Partner": "Example Partner Ltd",
    "X-Partner-ID": "Private Developer",
}
# The event query flags the fetcher sends.
FLAGS = {"with_money_tracker": "true", "with_tote_trends_data": "true"}

# Values with spaces, underscores and mixed case: they must reach the server unchanged.
IDENTITY: dict[str, str] = {
    "from_": "ops_team@example.co.nz",
    "partner": "Example_Partner Ltd",
    "partner_id": "Private Developer",
    "user_agent": "Raceday/1.0 (+ops_team@example.co.nz)",
}

ClientFactory = Callable[..., TabClient]


@pytest.fixture
async def sim() -> AsyncIterator[RunningTabSim]:
    """A simulated TAB (default day, seed 11) served in this event loop."""
    async with run_tabsim(TabSimConfig(port=0, seed=11)) as running:
        yield running


@pytest.fixture
async def admin(sim: RunningTabSim) -> AsyncIterator[TabSimAdmin]:
    """The admin API of `sim`."""
    async with TabSimAdmin(sim.url) as client:
        yield client


def racing_http(base_url: str) -> httpx.AsyncClient:
    """A raw HTTP client for the racing routes of the simulator at `base_url`, identified."""
    return httpx.AsyncClient(base_url=base_url + "/affiliates/v1/racing", headers=HEADERS)


@pytest.fixture
async def http(sim: RunningTabSim) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client for the racing routes of `sim`."""
    async with racing_http(sim.url) as client:
        yield client


def tab_settings(base_url: str, **overrides: Any) -> TabSettings:
    """Client settings pointing at `base_url`, identified with IDENTITY."""
    values: dict[str, Any] = {"base_url": base_url, **IDENTITY, **overrides}
    return TabSettings(**values)


@pytest.fixture
async def make_client(sim: RunningTabSim) -> AsyncIterator[ClientFactory]:
    """Build TabClients against `sim` (short backoff by default); all closed afterwards."""
    clients: list[TabClient] = []

    def build(settings: TabSettings | None = None, **options: Any) -> TabClient:
        options.setdefault("backoff_base_s", 0.02)
        options.setdefault("backoff_jitter_s", 0.01)
        client = TabClient(settings or tab_settings(sim.url), **options)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


def open_race_id(scenario: dict[str, Any], *, after_ms: int, local: bool = True) -> str:
    """The first race (in start order) of a default-filter meeting still Open at `after_ms`."""
    races = [
        race
        for meeting in scenario["meetings"]
        if not local or (meeting["country"] in ("NZ", "AUS") and meeting["category"] in ("T", "H"))
        for race in meeting["races"]
        if race["abandoned_at"] is None and race["jump"] * 1000 > after_ms + 600_000
    ]
    return str(min(races, key=lambda race: race["jump"])["race_id"])


def inflated(fetched: EventFetch) -> bytes:
    """An event payload without its content encoding (the client keeps it as received)."""
    return gzip.decompress(fetched.payload) if fetched.encoding == "gzip" else fetched.payload
