"""A small async client for the simulator's `/__sim/` admin API (tests, benchmarks, `raceday up`)."""

from __future__ import annotations

from typing import Any

import httpx


class TabSimAdmin:
    """Calls the admin API of the simulated TAB at `url` (its origin)."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/") + "/__sim", timeout=timeout_s)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> TabSimAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"tabsim admin {method} {path}: {response.status_code} {response.text}")
        # Every admin route answers a JSON object: the one place its type is declared.
        result: dict[str, Any] = response.json()
        return result

    async def health(self) -> dict[str, Any]:
        """{"status": "ok", "mode": ...}."""
        return await self._call("GET", "/health")

    async def faults(self) -> dict[str, Any]:
        """The current fault knobs."""
        return await self._call("GET", "/faults")

    async def set_faults(self, **knobs: Any) -> dict[str, Any]:
        """Replace the named knobs, e.g. `set_faults(http_5xx={"count": 2})`."""
        return await self._call("POST", "/faults", knobs)

    async def clear_faults(self) -> dict[str, Any]:
        """Every knob off (the identification check keeps its start-up setting)."""
        return await self._call("DELETE", "/faults")

    async def clock(self) -> dict[str, Any]:
        """{"now", "now_epoch_ms", "speed", "offset_s", "nz_date"}."""
        return await self._call("GET", "/clock")

    async def set_clock(self, **settings: Any) -> dict[str, Any]:
        """`now` (RFC 3339 or epoch ms), `offset_s`, `advance_s`, `speed`."""
        return await self._call("POST", "/clock", settings)

    async def scenario(self) -> dict[str, Any]:
        """The day's plan: seed, settings, meetings and each race's timeline."""
        return await self._call("GET", "/scenario")

    async def set_scenario(self, **settings: Any) -> dict[str, Any]:
        """Re-lay the day (`seed`, `anchor`, any ScenarioConfig field)."""
        return await self._call("POST", "/scenario", settings)

    async def race(self, race_id: str, at_ms: int | None = None) -> dict[str, Any]:
        """One race's plan and its model state now (or at `at_ms`)."""
        path = f"/races/{race_id}" + (f"?at={at_ms}" if at_ms is not None else "")
        return await self._call("GET", path)

    async def plunges(self) -> dict[str, Any]:
        """{"plunges": [...]}: every plunge set, with the instants its bucket covers."""
        return await self._call("GET", "/plunges")

    async def add_plunge(self, race_id: str, *, share: float, bucket: int, **runner: Any) -> dict[str, Any]:
        """Add one plunge; name the runner with `runner_number=` or `entrant_id=`. Returns all of them."""
        return await self._call(
            "POST", "/plunges", {"race_id": race_id, "share": share, "bucket": bucket, **runner}
        )

    async def clear_plunges(self) -> dict[str, Any]:
        """Remove every plunge."""
        return await self._call("DELETE", "/plunges")

    async def requests(self, *, limit: int | None = None, route: str | None = None) -> dict[str, Any]:
        """The request log: counters and the latest entries."""
        params = {k: v for k, v in (("limit", limit), ("route", route)) if v is not None}
        response = await self._http.get("/requests", params=params)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def clear_requests(self) -> None:
        """Empty the request log."""
        await self._call("DELETE", "/requests")

    async def reset(self) -> None:
        """Faults and plunges back to start-up settings and an empty request log."""
        await self._call("POST", "/reset")
