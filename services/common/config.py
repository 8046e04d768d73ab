"""Configuration from environment variables, validated at start-up.

Every reader takes the variable's name and raises ConfigError naming it when the
value is bad; `exit_on_config_error` turns that into one line on stderr and
exit code 2, without a traceback.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import NoReturn, TypeVar

T = TypeVar("T")

CONFIG_ERROR_EXIT_CODE = 2


class ConfigError(ValueError):
    """A configuration variable is missing or invalid. The message names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class Env:
    """Typed, validated access to a mapping of environment variables."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        """The variable's value stripped of whitespace, or None when unset or empty."""
        value = self._environ.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        """A string value with a default."""
        value = self.raw(name)
        return default if value is None else value

    def optional_text(self, name: str) -> str | None:
        """A string value, or None when unset."""
        return self.raw(name)

    def required_text(self, name: str) -> str:
        """A string value that must be set and non-empty."""
        value = self.raw(name)
        if value is None:
            raise ConfigError(name, "is required but not set")
        return value

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        """A base-10 integer within [minimum, maximum]."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value, 10)
        except ValueError:
            raise ConfigError(name, f"must be an integer, got {value!r}") from None
        _check_range(name, number, minimum, maximum)
        return number

    def number(
        self, name: str, default: float, *, minimum: float | None = None, maximum: float | None = None
    ) -> float:
        """A finite decimal number within [minimum, maximum]."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(name, f"must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(name, f"must be a finite number, got {value!r}")
        _check_range(name, number, minimum, maximum)
        return number

    def port(self, name: str, default: int) -> int:
        """A TCP port number (0 lets the OS choose)."""
        return self.integer(name, default, minimum=0, maximum=65535)

    def flag(self, name: str, default: bool) -> bool:
        """true/false, 1/0, yes/no, on/off (any case)."""
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, f"must be true or false, got {value!r}")

    def csv(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """A comma-separated list; items are trimmed and empty items dropped."""
        value = self.raw(name)
        if value is None:
            return default
        return tuple(item.strip() for item in value.split(",") if item.strip())

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        """One of a fixed set of values (compared case-insensitively, returned as listed)."""
        value = self.raw(name)
        if value is None:
            return default
        for option in choices:
            if option.lower() == value.lower():
                return option
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")

    def parsed(self, name: str, default: T, parse: Callable[[str], T]) -> T:
        """A value converted by `parse`; a ValueError from it becomes a ConfigError."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None


def _check_range(name: str, number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ConfigError(name, f"must be at most {maximum}, got {number}")


def fail(message: str) -> NoReturn:
    """Print one configuration error line and exit with code 2."""
    print(f"raceday: configuration error: {message}", file=sys.stderr)
    raise SystemExit(CONFIG_ERROR_EXIT_CODE)


@contextmanager
def exit_on_config_error() -> Iterator[None]:
    """Turn a ConfigError raised inside the block into one stderr line and exit code 2."""
    try:
        yield
    except ConfigError as exc:
        fail(str(exc))
