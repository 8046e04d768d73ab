"""The admin API under `/__sim/` (not part of the TAB surface): faults, clock, scenario, plunges, request log.

GET    /__sim/health
GET    /__sim/faults            POST (partial update: each named knob replaced)   DELETE (all off)
GET    /__sim/clock             POST {"now": RFC 3339 | epoch ms, "offset_s", "advance_s", "speed"}
GET    /__sim/scenario          POST {"seed", "anchor", ...ScenarioConfig fields} (re-lays the day)
GET    /__sim/races/{race_id}   the model's plan and state (?at=epoch ms; default now)
GET    /__sim/plunges           POST {"race_id", "runner_number" | "entrant_id", "share", "bucket"}
                                (or an array of them; adds, replacing the same race, runner and bucket)
                                DELETE (all off)
GET    /__sim/requests          ?limit=N&route=events      DELETE (clear)
POST   /__sim/reset             faults and plunges back to start-up settings, request log cleared
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response

from services.tabsim.clock import NS_PER_S
from services.tabsim.config import parse_instant_ns
from services.tabsim.faults import Faults
from services.tabsim.model import state_at
from services.tabsim.state import SimState


def _json(document: Any, status: int = 200) -> Response:
    return Response(json.dumps(document, indent=2), status_code=status, media_type="application/json")


def _problem(message: str, status: int = 400) -> Response:
    return _json({"error": message}, status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise ValueError("the body must be a JSON object")
    return document


def admin_router(state: SimState) -> APIRouter:
    """The `/__sim/` routes bound to `state`."""
    router = APIRouter(prefix="/__sim")

    @router.get("/health")
    async def health() -> Response:
        return _json({"status": "ok", "mode": "replay" if state.replay else "simulate"})

    @router.get("/faults")
    async def get_faults() -> Response:
        return _json(state.faults.to_json())

    @router.post("/faults")
    async def set_faults(request: Request) -> Response:
        try:
            state.faults = state.faults.updated(await _body(request))
        except ValueError as exc:
            return _problem(str(exc))
        return _json(state.faults.to_json())

    @router.delete("/faults")
    async def clear_faults() -> Response:
        state.faults = Faults(require_identification=state.initial_faults.require_identification)
        return _json(state.faults.to_json())

    @router.get("/clock")
    async def get_clock() -> Response:
        return _json(state.clock.snapshot())

    @router.post("/clock")
    async def set_clock(request: Request) -> Response:
        try:
            body = await _body(request)
            unknown = set(body) - {"now", "offset_s", "advance_s", "speed"}
            if unknown:
                raise ValueError(f"unknown clock settings: {', '.join(sorted(unknown))}")
            if "speed" in body:
                state.clock.set_speed(float(body["speed"]))
            if "now" in body:
                state.clock.set_now_ns(parse_instant_ns(body["now"]))
            if "offset_s" in body:
                state.clock.set_offset_s(float(body["offset_s"]))
            if "advance_s" in body:
                state.clock.advance_s(float(body["advance_s"]))
        except (ValueError, TypeError) as exc:
            return _problem(str(exc))
        return _json(state.clock.snapshot())

    @router.get("/scenario")
    async def get_scenario() -> Response:
        return _json(_scenario(state))

    @router.post("/scenario")
    async def set_scenario(request: Request) -> Response:
        if state.replay:
            return _problem("replay mode has no scenario", 409)
        try:
            body = await _body(request)
            seed = body.pop("seed", None)
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise ValueError("seed must be an integer")
            anchor = body.pop("anchor", None)
            scenario = state.scenario.updated(body)
            state.rebuild(
                seed=seed,
                scenario=scenario,
                anchor_ns=parse_instant_ns(anchor) if anchor is not None else None,
            )
        except ValueError as exc:
            return _problem(str(exc))
        return _json(_scenario(state))

    @router.get("/races/{race_id}")
    async def race(race_id: str, at: int | None = None) -> Response:
        day = state.day
        model = day.races.get(race_id) if day else None
        if model is None:
            return _problem("race not found", 404)
        clock_s = at / 1000 if at is not None else state.clock.now_ns() / NS_PER_S
        now = state_at(model, clock_s)
        document = model.describe()
        document["state"] = {
            **{k: v for k, v in asdict(now).items() if k not in ("runners", "tracker_rows", "pools")},
            "pools": dict(now.pools),
            "hold_total": now.hold_total,
            "tracker_rows": len(now.tracker_rows),
            "runners": [
                {"entrant_id": r.entrant_id, "runner_number": r.runner_number, **asdict(s)}
                for r, s in zip(model.runners, now.runners, strict=True)
            ],
        }
        return _json(document)

    @router.get("/plunges")
    async def get_plunges() -> Response:
        return _json(_plunges(state))

    @router.post("/plunges")
    async def add_plunges(request: Request) -> Response:
        if state.day is None:
            return _problem("plunges need the synthetic day: not in replay or archive mode", 409)
        try:
            raw = await request.body()
            document = json.loads(raw) if raw.strip() else None
            if not isinstance(document, dict | list) or not document:
                raise ValueError("the body must be a plunge object or a non-empty array of them")
            state.add_plunges(document if isinstance(document, list) else [document])
        except ValueError as exc:
            return _problem(str(exc))
        return _json(_plunges(state))

    @router.delete("/plunges")
    async def clear_plunges() -> Response:
        state.clear_plunges()
        return _json(_plunges(state))

    @router.get("/requests")
    async def requests(limit: int | None = None, route: str | None = None) -> Response:
        return _json(state.log.to_json(limit=limit, route=route))

    @router.delete("/requests")
    async def clear_requests() -> Response:
        state.log.clear()
        return _json(state.log.to_json())

    @router.post("/reset")
    async def reset() -> Response:
        state.reset()
        return _json(
            {
                "faults": state.faults.to_json(),
                "plunges": _plunges(state)["plunges"],
                "requests": state.log.to_json(limit=0),
            }
        )

    return router


def _plunges(state: SimState) -> dict[str, Any]:
    day = state.day
    if day is None:
        return {"plunges": []}
    return {"plunges": [plunge.to_json(day.races[plunge.race_id]) for plunge in state.plunges]}


def _scenario(state: SimState) -> dict[str, Any]:
    day = state.day
    if day is None:
        return {"mode": "replay", "seed": state.seed}
    return {
        "mode": "simulate",
        "seed": day.seed,
        "config": day.config.to_json(),
        "anchor": day.anchor_s,
        "date": day.date,
        "meetings": [
            {
                "meeting_id": meeting.meeting_id,
                "name": meeting.name,
                "country": meeting.country,
                "category": meeting.category,
                "date": meeting.date,
                "races": [race.describe() for race in meeting.races],
            }
            for meeting in day.meetings
        ],
    }
