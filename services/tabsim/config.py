"""Start-up settings of the simulated TAB (environment, overridden by command-line flags)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from services.common.clock import ANCHOR_VAR, SPEED_VAR
from services.common.config import ConfigError, Env
from services.tabsim.faults import Faults
from services.tabsim.plunges import PlungeRequest, parse_plunges
from services.tabsim.scenario import SCENARIO_KINDS, ScenarioConfig

DEFAULT_PORT: Final = 8900
DEFAULT_SEED: Final = 1
DEFAULT_SCENARIO: Final = ScenarioConfig()


@dataclass(frozen=True, slots=True)
class TabSimConfig:
    """Everything the simulator needs at start-up."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    seed: int = DEFAULT_SEED
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    speed: float = 1.0
    now_ns: int | None = None
    offset_s: float = 0.0
    clock_anchor_ns: int | None = None
    replay: bool = False
    faults: Mapping[str, Any] = field(default_factory=dict)
    # Plunges set at start-up, as the admin API's JSON objects (plunges.py); bound to races when
    # the day is laid out, so `next` means the next race from the start-up instant.
    plunges: tuple[Mapping[str, Any], ...] = ()
    # Level 1: the simulator answers quickly (payloads are ~400 KB); clients see the same gzip format.
    gzip_level: int = 1
    # Like the real API, whose data refreshes about every 15 s: an event rendered less than this
    # many simulated seconds ago is served again as is (0 renders every request).
    snapshot_s: float = 0.0
    request_log_size: int = 5000
    # Serve an archived NZ day (services/tabsim/archive_day.py) from this database instead of a
    # synthetic day: `raceday tabsim --archive URL --archive-date D`.
    archive_url: str | None = None
    archive_date: date | None = None

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        if not 0 <= self.snapshot_s <= 60:
            raise ValueError(f"snapshot_s must be 0..60, got {self.snapshot_s}")
        if not 0 <= self.gzip_level <= 9:
            raise ValueError(f"gzip_level must be 0..9, got {self.gzip_level}")
        Faults.from_json(self.faults)  # validates the knobs early
        for document in self.plunges:
            PlungeRequest.from_json(document)
        if self.plunges and (self.replay or self.archive_url is not None):
            raise ValueError("plunges need the synthetic day: not with --replay or --archive")
        if (self.archive_url is None) != (self.archive_date is None):
            raise ValueError("--archive and --archive-date go together")
        if self.archive_url is not None and self.replay:
            raise ValueError("--archive and --replay are exclusive")

    @classmethod
    def from_env(cls, env: Env | None = None) -> TabSimConfig:
        """Read TABSIM_* variables (and the shared RACEDAY_CLOCK_*); each error names its variable."""
        env = env or Env()
        try:
            scenario = ScenarioConfig(
                kind=env.choice("TABSIM_SCENARIO", "day", SCENARIO_KINDS),  # type: ignore[arg-type]
                meetings=env.integer("TABSIM_MEETINGS", DEFAULT_SCENARIO.meetings, minimum=1, maximum=200),
                races=env.integer("TABSIM_RACES", DEFAULT_SCENARIO.races, minimum=1, maximum=30),
            )
        except ValueError as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError("TABSIM_SCENARIO", str(exc)) from None
        faults: dict[str, Any] = env.parsed("TABSIM_FAULTS", {}, parse_faults)
        replay = env.flag("TABSIM_REPLAY", False)
        plunges: tuple[dict[str, Any], ...] = env.parsed("TABSIM_PLUNGES", (), parse_plunges)
        if plunges and replay:
            raise ConfigError("TABSIM_PLUNGES", "plunges need the synthetic day: not with TABSIM_REPLAY")
        if not env.flag("TABSIM_REQUIRE_IDENTIFICATION", True):
            faults = {**faults, "require_identification": False}
        return cls(
            host=env.text("TABSIM_HOST", "127.0.0.1"),
            port=env.port("TABSIM_PORT", DEFAULT_PORT),
            seed=env.integer("TABSIM_SEED", DEFAULT_SEED),
            scenario=scenario,
            speed=env.number(
                "TABSIM_SPEED", env.number(SPEED_VAR, 1.0, minimum=0.001, maximum=100_000.0), minimum=0.001
            ),
            clock_anchor_ns=_anchor_ns(env),
            now_ns=env.parsed("TABSIM_NOW", None, parse_instant_ns),
            replay=replay,
            faults=faults,
            plunges=plunges,
            gzip_level=env.integer("TABSIM_GZIP_LEVEL", 1, minimum=0, maximum=9),
            snapshot_s=env.number("TABSIM_SNAPSHOT_S", 0.0, minimum=0.0, maximum=60.0),
        )


def _anchor_ns(env: Env) -> int | None:
    anchor_ms = env.optional_text(ANCHOR_VAR)
    if anchor_ms is None:
        return None
    return env.integer(ANCHOR_VAR, 0, minimum=0) * 1_000_000


def parse_faults(text: str) -> dict[str, Any]:
    """A JSON object of fault knobs (the admin API's format); ValueError when invalid."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError("must be a JSON object")
    Faults.from_json(document)
    return document


def parse_instant_ns(value: str | int | float) -> int:
    """An instant as RFC 3339 text (with offset or Z) or epoch milliseconds; returns epoch ns."""
    if isinstance(value, bool):
        raise ValueError("an instant must be RFC 3339 text or epoch milliseconds")
    if isinstance(value, int | float):
        return int(value * 1_000_000)
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text) * 1_000_000
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 instant: {value!r}") from None
    if instant.tzinfo is None:
        raise ValueError(f"an instant needs an offset or Z: {value!r}")
    return int(instant.timestamp()) * 1_000_000_000 + instant.microsecond * 1000
