"""Pretty JSON exactly like the recorded responses, with pre-rendered fragments.

The recorded TAB bodies are `json.dumps(value, indent=4, ensure_ascii=False)`. An
event is ~400 KB, mostly static runner form data, so the simulator renders those
parts once (`Raw`) and splices them into each response; only the moving parts
(odds, pools, money tracker) are encoded per request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

INDENT = "    "


class Raw:
    """A JSON value already rendered by `dumps` at nesting level 0."""

    __slots__ = ("_by_level", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._by_level: dict[int, str] = {0: text}

    def at_level(self, level: int) -> str:
        """The text re-indented for a value nested `level` deep (cached)."""
        cached = self._by_level.get(level)
        if cached is None:
            cached = self.text.replace("\n", "\n" + INDENT * level)
            self._by_level[level] = cached
        return cached


def dumps(value: Any, level: int = 0) -> str:
    """Encode `value` as indent-4 JSON; `Raw` members are spliced in unchanged."""
    parts: list[str] = []
    _encode(value, level, parts)
    return "".join(parts)


def _encode(value: Any, level: int, out: list[str]) -> None:
    if isinstance(value, Raw):
        out.append(value.at_level(level))
    elif isinstance(value, Mapping):
        if not value:
            out.append("{}")
            return
        inner = "\n" + INDENT * (level + 1)
        out.append("{")
        first = True
        for key, item in value.items():
            out.append(inner if first else "," + inner)
            first = False
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(": ")
            _encode(item, level + 1, out)
        out.append("\n" + INDENT * level + "}")
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if not value:
            out.append("[]")
            return
        inner = "\n" + INDENT * (level + 1)
        out.append("[")
        first = True
        for item in value:
            out.append(inner if first else "," + inner)
            first = False
            _encode(item, level + 1, out)
        out.append("\n" + INDENT * level + "]")
    else:
        out.append(json.dumps(value, ensure_ascii=False))
