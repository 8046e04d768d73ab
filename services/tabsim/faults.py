"""Fault knobs of the simulated TAB (spec nztab-api §10.3).

Every knob has the same trigger: it fires for the next `count` matching requests,
then with probability `rate` (so `{"count": 2}` fails exactly two requests and
`{"rate": 1}` fails all of them). `route` limits it to one route (`events`,
`meetings`, `meeting`, `list`; default `any`) and `race_id` to one event id.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

ROUTES: Final = ("any", "events", "meetings", "meeting", "list")
# truncated: half the JSON body; html: a proxy's 502 page; not_json: an HTML 200;
# bad_gzip: a gzip body cut in half (Content-Encoding gzip, a stream that does not inflate).
MALFORMED_MODES: Final = ("truncated", "html", "not_json", "bad_gzip")


@dataclass(slots=True)
class Trigger:
    """When a knob fires."""

    rate: float = 0.0
    count: int = 0
    route: str = "any"
    race_id: str | None = None

    def validate(self) -> None:
        """Raise ValueError on out-of-range settings."""
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within 0..1, got {self.rate}")
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        if self.route not in ROUTES:
            raise ValueError(f"route must be one of {', '.join(ROUTES)}, got {self.route!r}")

    def fire(self, route: str, race_id: str | None, rng: random.Random) -> bool:
        """True when this request is hit; consumes one of `count`."""
        if self.route not in ("any", route):
            return False
        if self.race_id is not None and self.race_id != race_id:
            return False
        if self.count > 0:
            self.count -= 1
            return True
        return self.rate > 0 and rng.random() < self.rate


@dataclass(slots=True)
class Http5xx(Trigger):
    """Answer with a 5xx status and the upstream error body."""

    status: int = 503

    def validate(self) -> None:
        """Raise ValueError on out-of-range settings."""
        Trigger.validate(self)
        if not 500 <= self.status <= 599:
            raise ValueError(f"status must be 5xx, got {self.status}")


@dataclass(slots=True)
class Http429(Trigger):
    """Answer 429; `retry_after` is sent verbatim (seconds or an HTTP date), None omits it."""

    retry_after: str | None = "1"


@dataclass(slots=True)
class Slow(Trigger):
    """Hold the response for `delay_s` plus up to `jitter_s` (may exceed the client's timeout)."""

    delay_s: float = 0.0
    jitter_s: float = 0.0

    def validate(self) -> None:
        """Raise ValueError on out-of-range settings."""
        Trigger.validate(self)
        if self.delay_s < 0 or self.jitter_s < 0:
            raise ValueError("delay_s and jitter_s must be >= 0")


@dataclass(slots=True)
class Malformed(Trigger):
    """`truncated` JSON (200), an HTML error page with 502 (`html`), or a 200 non-JSON body (`not_json`)."""

    mode: str = "truncated"

    def validate(self) -> None:
        """Raise ValueError on out-of-range settings."""
        Trigger.validate(self)
        if self.mode not in MALFORMED_MODES:
            raise ValueError(f"mode must be one of {', '.join(MALFORMED_MODES)}, got {self.mode!r}")


@dataclass(slots=True)
class DataError(Trigger):
    """A 200 event whose `data.error` is `message`."""

    message: str = "Simulated upstream error"


_KNOBS: Final[dict[str, type[Trigger]]] = {
    "http_5xx": Http5xx,
    "http_429": Http429,
    "slow": Slow,
    "malformed": Malformed,
    "data_error": DataError,
    "drop_money_tracker": Trigger,
    "empty_pools": Trigger,
}


@dataclass(slots=True)
class Faults:
    """All fault knobs; mutable at run time through the admin API."""

    http_5xx: Http5xx = field(default_factory=Http5xx)
    http_429: Http429 = field(default_factory=Http429)
    slow: Slow = field(default_factory=Slow)
    malformed: Malformed = field(default_factory=Malformed)
    data_error: DataError = field(default_factory=DataError)
    drop_money_tracker: Trigger = field(default_factory=Trigger)
    empty_pools: Trigger = field(default_factory=Trigger)
    status_override: dict[str, str] = field(default_factory=dict)
    require_identification: bool = True

    def to_json(self) -> dict[str, Any]:
        """The knobs as JSON."""
        return dataclasses.asdict(self)

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """A copy where each knob named in `changes` is replaced by the given settings."""
        result = copy.deepcopy(self)
        for key, value in changes.items():
            if key in _KNOBS:
                if not isinstance(value, Mapping):
                    raise ValueError(f"{key} must be an object")
                setattr(result, key, _knob(key, value))
            elif key == "status_override":
                if not isinstance(value, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()
                ):
                    raise ValueError("status_override must map race ids to status strings")
                result.status_override = dict(value)
            elif key == "require_identification":
                if not isinstance(value, bool):
                    raise ValueError("require_identification must be true or false")
                result.require_identification = value
            else:
                raise ValueError(f"unknown fault knob {key!r}")
        return result

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Faults:
        """Knobs from JSON; absent knobs are off."""
        return Faults().updated(document) if document else Faults()


def _knob(name: str, settings: Mapping[str, Any]) -> Trigger:
    kind = _KNOBS[name]
    names = {f.name: f for f in dataclasses.fields(kind)}
    values: dict[str, Any] = {}
    for key, given in settings.items():
        if key not in names:
            raise ValueError(f"{name}: unknown setting {key!r}")
        values[key] = _typed(f"{name}.{key}", getattr(kind(), key), given)
    knob = kind(**values)
    knob.validate()
    return knob


def _typed(path: str, default: Any, given: Any) -> Any:
    """`given` checked against the type of the knob's default (race_id and retry_after may be null)."""
    if isinstance(default, bool) or isinstance(given, bool):
        raise ValueError(f"{path} has the wrong type")
    if isinstance(default, float):
        if not isinstance(given, int | float):
            raise ValueError(f"{path} must be a number")
        return float(given)
    if isinstance(default, int):
        if not isinstance(given, int):
            raise ValueError(f"{path} must be an integer")
        return given
    if given is not None and not isinstance(given, str):
        raise ValueError(f"{path} must be a string")
    return given
