"""TAB client settings, Retry-After parsing and the breaker's state machine."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from services.common.config import ConfigError, Env
from services.fetcher.tab_breaker import CircuitBreaker
from services.fetcher.tab_retry import backoff_s, retry_after_s
from services.fetcher.tab_settings import TabSettings, normalise_base_url

IDENTIFIED = {
    "NZTAB_FROM": "ops@example.co.nz",
    "NZTAB_PARTNER": "Example_Partner Ltd",
    "NZTAB_PARTNER_ID": "Private Developer",
}


def test_defaults_and_verbatim_identification() -> None:
    settings = TabSettings.from_env(Env(IDENTIFIED))
    assert settings.base_url == "https://api.tab.co.nz"
    assert (settings.timeout_s, settings.max_concurrency) == (5.0, 8)
    assert settings.countries == ("NZ", "AUS") and settings.categories == ("T", "H")
    assert settings.user_agent.startswith("Raceday/")
    headers = settings.headers()
    assert headers["From"] == "ops@example.co.nz"
    assert headers["X-Partner"] == "Example_Partner Ltd"
    assert headers["X-Partner-ID"] == "Private Developer"
    assert headers["Accept"] == "application/json" and headers["Accept-Encoding"] == "gzip"


@pytest.mark.parametrize("missing", ["NZTAB_FROM", "NZTAB_PARTNER", "NZTAB_PARTNER_ID"])
def test_missing_identification_names_the_variable(missing: str) -> None:
    env = {k: v for k, v in IDENTIFIED.items() if k != missing}
    with pytest.raises(ConfigError) as error:
        TabSettings.from_env(Env(env))
    assert error.value.name == missing
    relaxed = TabSettings.from_env(Env(env), require_identification=False)
    header = {"NZTAB_FROM": "From", "NZTAB_PARTNER": "X-Partner", "NZTAB_PARTNER_ID": "X-Partner-ID"}[missing]
    assert header not in relaxed.headers() and len(relaxed.headers()) == 5


def test_overrides_from_the_environment() -> None:
    env = {
        **IDENTIFIED,
        "NZTAB_BASE_URL": "http://127.0.0.1:8900/affiliates/v1/",
        "NZTAB_USER_AGENT": "Raceday/1.0 (+ops@example.co.nz)",
        "NZTAB_TIMEOUT_S": "2.5",
        "NZTAB_MAX_CONCURRENCY": "3",
        "BASELINE_COUNTRIES": "nz, aus, uk",
        "BASELINE_CATEGORIES": "T,H,G",
    }
    settings = TabSettings.from_env(Env(env))
    assert settings.base_url == "http://127.0.0.1:8900"
    assert settings.user_agent == "Raceday/1.0 (+ops@example.co.nz)"
    assert (settings.timeout_s, settings.max_concurrency) == (2.5, 3)
    assert settings.countries == ("NZ", "AUS", "UK") and settings.categories == ("T", "H", "G")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NZTAB_BASE_URL", "ftp://api.tab.co.nz"),
        ("NZTAB_BASE_URL", "https://api.tab.co.nz/racing"),
        ("NZTAB_TIMEOUT_S", "0"),
        ("NZTAB_MAX_CONCURRENCY", "zero"),
        ("NZTAB_PARTNER", "bad\r\nInjected: 1"),
    ],
)
def test_bad_values_name_their_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        TabSettings.from_env(Env({**IDENTIFIED, name: value}))
    assert error.value.name == name


def test_base_url_is_an_origin() -> None:
    assert normalise_base_url("https://api.tab.co.nz/") == "https://api.tab.co.nz"
    assert normalise_base_url("https://api.tab.co.nz/affiliates/v1") == "https://api.tab.co.nz"
    assert normalise_base_url("http://127.0.0.1:8900//affiliates/v1//") == "http://127.0.0.1:8900"


def test_retry_after_forms() -> None:
    now = datetime(2025, 7, 17, 0, 0, tzinfo=UTC)
    assert retry_after_s("2", now) == 2.0
    assert retry_after_s(" 0 ", now) == 0.0
    assert retry_after_s(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == 7.0
    assert retry_after_s("Thu, 17 Jul 2025 00:00:05 GMT", now) == 5.0
    assert retry_after_s(format_datetime(now - timedelta(seconds=7), usegmt=True), now) == 0.0
    for unusable in (None, "", "soon", "-3", "nan"):
        assert retry_after_s(unusable, now) == 1.0


def test_backoff_doubles_with_bounded_jitter() -> None:
    rng = random.Random(1)
    first = [backoff_s(1, 0.1, 0.05, rng) for _ in range(200)]
    second = [backoff_s(2, 0.1, 0.05, rng) for _ in range(200)]
    assert min(first) >= 0.1 and max(first) <= 0.15
    assert min(second) >= 0.2 and max(second) <= 0.25
    assert len(set(first)) > 100  # jittered


def _state(breaker: CircuitBreaker) -> str:
    return breaker.state


def test_breaker_state_machine() -> None:
    now = [0.0]
    changes: list[tuple[str, str]] = []
    breaker = CircuitBreaker(clock=lambda: now[0], on_change=lambda old, new, _: changes.append((old, new)))
    for _ in range(4):
        assert breaker.allow()
        breaker.record_failure("http_5xx")
    assert _state(breaker) == "closed" and breaker.consecutive_failures == 4
    breaker.record_success()
    assert breaker.consecutive_failures == 0
    for _ in range(5):
        assert breaker.allow()
        breaker.record_failure("timeout")
    assert _state(breaker) == "open" and not breaker.allow()
    now[0] = 29.9
    assert not breaker.allow() and 0 < breaker.retry_in_s <= 0.1 + 1e-9
    now[0] = 30.0
    assert breaker.allow()  # the single trial
    assert not breaker.allow()
    breaker.record_failure("connect")
    assert _state(breaker) == "open"
    now[0] = 60.0
    assert breaker.allow()
    breaker.release()  # cancelled trial: another may try
    assert breaker.allow()
    breaker.record_success()
    assert _state(breaker) == "closed"
    assert changes == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
