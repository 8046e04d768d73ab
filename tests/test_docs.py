"""Every environment variable the code reads is documented in README.md and .env.example."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Any string literal shaped like one of our variables: readers, constants and tuples of names alike.
VARIABLE = re.compile(
    r"[\"']((?:RACEDAY|NZTAB|SCHED|BASELINE|TABSIM|API|RETENTION|PARTITION|MEETINGS|EVENING)_[A-Z0-9_]+)[\"']"
)
# Families written with a placeholder in the README (RACEDAY_<SERVICE>_METRICS_PORT, ...).
PER_SERVICE = re.compile(r"^RACEDAY_(FETCHER|TRANSFORMER|WRITER|GATEWAY)_(PORT|METRICS_PORT)$")


def _variables() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        if "proto" not in path.parts:
            names.update(VARIABLE.findall(path.read_text()))
    return names


def test_the_code_reads_variables() -> None:
    found = _variables()
    assert {"RACEDAY_DATABASE_URL", "NZTAB_FROM", "SCHED_LOOKAHEAD_MIN", "RETENTION_DAYS"} <= found


def test_every_variable_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    undocumented_readme = sorted(
        name for name in _variables() if name not in readme and not PER_SERVICE.match(name)
    )
    undocumented_example = sorted(name for name in _variables() if name not in example)
    assert undocumented_readme == [], "add these to README.md's configuration tables"
    assert undocumented_example == [], "add these to .env.example"
