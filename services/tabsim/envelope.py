"""The response envelope (`header`, `params`, `data`) and the upstream error body."""

from __future__ import annotations

from typing import Any

from services.tabsim.clock import format_rfc3339_ns
from services.tabsim.pretty import dumps


def header(title: str, url: str, generated_ns: int) -> dict[str, Any]:
    """`header` as upstream writes it (title, generated_time with nanoseconds, url)."""
    return {"title": title, "generated_time": format_rfc3339_ns(generated_ns), "url": url}


def success_body(title: str, url: str, generated_ns: int, params: dict[str, Any], data: Any) -> bytes:
    """A 200 body: header, echoed params and data, indent-4 JSON in UTF-8."""
    document = {"header": header(title, url, generated_ns), "params": params, "data": data}
    return dumps(document).encode()


def error_body(title: str, url: str, generated_ns: int, message: str, code: str) -> bytes:
    """The upstream error shape: a header with `error` and `error_code`, and no `data`."""
    document = {"header": {**header(title, url, generated_ns), "error": message, "error_code": code}}
    return dumps(document).encode()
