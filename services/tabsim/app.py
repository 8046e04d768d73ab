"""The simulated TAB as an ASGI app: the racing routes of spec nztab-api §10.1 plus `/__sim/`.

Every racing request passes the identification check and the fault knobs before
its payload is produced, and is recorded in the request log.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.nztime import nz_date
from services.tabsim.admin import admin_router
from services.tabsim.clock import NS_PER_S
from services.tabsim.envelope import error_body, success_body
from services.tabsim.event import EventOptions
from services.tabsim.meetings import meeting_document
from services.tabsim.pretty import dumps
from services.tabsim.state import LOGGED_HEADERS, LoggedRequest, SimState
from services.tabsim.templates import (
    EVENT_FILE,
    MEETING_FILE,
    MEETINGS_FILE,
    RACES_LIST_FILE,
    RECORDED_DATE,
    RECORDED_EVENT_ID,
    RECORDED_MEETING_ID,
    data_bytes,
)

PREFIX: Final = "/affiliates/v1/racing"
JSON_TYPE: Final = "application/json"
IDENTIFICATION_HEADERS: Final = ("From", "X-Partner", "X-Partner-ID")
MAX_LIMIT: Final = 200
GZIP_MINIMUM: Final = 1024
DEFAULT_LIMIT: Final = 100
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_HTML_502: Final = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
_NOT_JSON: Final = b"<!DOCTYPE html><html><body><p>Service temporarily unavailable.</p></body></html>"


class BadRequestError(ValueError):
    """A query parameter the upstream would reject with 400."""


@dataclass(slots=True)
class Reply:
    """A produced response before faults that act on the body."""

    status: int
    body: bytes
    media_type: str = JSON_TYPE


def create_app(state: SimState) -> FastAPI:
    """The ASGI app serving `state`."""
    app = FastAPI(title="Simulated NZ TAB", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = state
    app.include_router(admin_router(state))

    @app.get(PREFIX + "/meetings")
    async def meetings(request: Request) -> Response:
        return await _serve(state, request, "meetings", None, lambda t: _meetings(state, request, t))

    @app.get(PREFIX + "/meetings/{meeting_id}")
    async def meeting(request: Request, meeting_id: str) -> Response:
        return await _serve(
            state, request, "meeting", None, lambda t: _meeting(state, request, meeting_id, t)
        )

    @app.get(PREFIX + "/events/{event_id}")
    async def event(request: Request, event_id: str) -> Response:
        return await _serve(state, request, "events", event_id, lambda t: _event(state, request, event_id, t))

    @app.get(PREFIX + "/list")
    async def races_list(request: Request) -> Response:
        return await _serve(state, request, "list", None, lambda t: Reply(200, data_bytes(RACES_LIST_FILE)))

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    async def unknown(request: Request, path: str) -> Response:
        return _not_found(state, request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = (
            "NOT_FOUND"
            if exc.status_code == 404
            else "METHOD_NOT_ALLOWED"
            if exc.status_code == 405
            else "ERROR"
        )
        body = error_body("Error", _url(request), state.clock.now_ns(), str(exc.detail).lower(), code)
        return Response(body, status_code=exc.status_code, media_type=JSON_TYPE)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        body = error_body("Error", _url(request), state.clock.now_ns(), "bad request", "BAD_REQUEST")
        return Response(body, status_code=400, media_type=JSON_TYPE)

    return app


def _url(request: Request) -> str:
    query = request.scope.get("query_string", b"").decode("latin-1")
    return request.url.path + (f"?{query}" if query else "")


def _not_found(state: SimState, request: Request) -> Response:
    body = error_body("Not Found", _url(request), state.clock.now_ns(), "not found", "NOT_FOUND")
    return Response(body, status_code=404, media_type=JSON_TYPE)


async def _serve(
    state: SimState,
    request: Request,
    route: str,
    race_id: str | None,
    produce: Callable[[int], Reply],
) -> Response:
    """Log the request, apply identification and faults, then produce the payload."""
    entry = LoggedRequest(
        seq=state.log.next_seq(),
        method=request.method,
        path=request.url.path,
        query=request.scope.get("query_string", b"").decode("latin-1"),
        route=route,
        race_id=race_id,
        headers={name: request.headers.get(name) for name in LOGGED_HEADERS},
        received_at_ns=time.time_ns(),
        sim_time_ns=state.clock.now_ns(),
    )
    state.log.add(entry)
    response, fault = await _respond(state, request, route, race_id, produce)
    state.log.finish(entry, response.status_code, fault)
    return _compressed(state, request, response)


def _compressed(state: SimState, request: Request, response: Response) -> Response:
    """gzip the body when the client accepts it, as the real API does for its ~400 KB events.

    Done here rather than by middleware: one synchronous compress of the finished body
    is cheaper than the middleware's thread hand-off and keeps latency predictable.
    """
    level = state.config.gzip_level
    body = bytes(response.body)
    if level == 0 or len(body) < GZIP_MINIMUM or "gzip" not in request.headers.get("accept-encoding", ""):
        return response
    if "content-encoding" in response.headers:  # already encoded (a fault's broken stream)
        return response
    if state.snapshots.max_age_ns:
        compressed = state.snapshots.gzipped(
            body, lambda raw: gzip.compress(raw, compresslevel=level, mtime=0)
        )
    else:
        compressed = gzip.compress(body, compresslevel=level, mtime=0)
    headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
    headers["Content-Encoding"] = "gzip"
    headers["Vary"] = "Accept-Encoding"
    return Response(
        compressed, status_code=response.status_code, headers=headers, media_type=response.media_type
    )


async def _respond(
    state: SimState,
    request: Request,
    route: str,
    race_id: str | None,
    produce: Callable[[int], Reply],
) -> tuple[Response, str | None]:
    faults = state.faults
    rng = state.fault_rng
    url = _url(request)
    missing = [name for name in IDENTIFICATION_HEADERS if not request.headers.get(name)]
    if faults.require_identification and missing:
        message = "missing identification headers: " + ", ".join(missing)
        return _error(state, url, 403, message, "FORBIDDEN"), "identification"
    fault: str | None = None
    if faults.slow.fire(route, race_id, rng):
        fault = "slow"
        delay = faults.slow.delay_s + faults.slow.jitter_s * rng.random()
        if await _sleep_unless_gone(request, delay):
            return Response(status_code=499), fault
    if faults.http_429.fire(route, race_id, rng):
        response = _error(state, url, 429, "too many requests", "TOO_MANY_REQUESTS")
        if faults.http_429.retry_after is not None:
            response.headers["Retry-After"] = faults.http_429.retry_after
        return response, "http_429"
    if faults.http_5xx.fire(route, race_id, rng):
        return _error(state, url, faults.http_5xx.status, "simulated server error", "INTERNAL"), "http_5xx"
    malformed = faults.malformed.fire(route, race_id, rng)
    try:
        reply = produce(state.clock.now_ns())
    except BadRequestError as exc:
        return _error(state, url, 400, str(exc), "BAD_REQUEST"), fault
    if malformed:
        fault = f"malformed:{faults.malformed.mode}"
        if faults.malformed.mode == "html":
            reply = Reply(502, _HTML_502, "text/html")
        elif faults.malformed.mode == "not_json":
            reply = Reply(200, _NOT_JSON, "text/html")
        elif faults.malformed.mode == "bad_gzip":
            broken = gzip.compress(reply.body, compresslevel=1, mtime=0)
            response = Response(
                broken[: len(broken) // 2], status_code=reply.status, media_type=reply.media_type
            )
            response.headers["Content-Encoding"] = "gzip"
            return response, fault
        else:
            reply = Reply(reply.status, reply.body[: len(reply.body) // 2], reply.media_type)
    return Response(reply.body, status_code=reply.status, media_type=reply.media_type), fault


async def _sleep_unless_gone(request: Request, seconds: float) -> bool:
    """Sleep `seconds`; returns True early if the client disconnected meanwhile."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        left = end - loop.time()
        if left <= 0:
            return False
        await asyncio.sleep(min(left, 0.1))
        if await request.is_disconnected():
            return True


def _error(state: SimState, url: str, status: int, message: str, code: str) -> Response:
    body = error_body("Error", url, state.clock.now_ns(), message, code)
    return Response(body, status_code=status, media_type=JSON_TYPE)


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return False
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise BadRequestError(f"invalid boolean for {name}: {raw!r}")


def _integer(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequestError(f"invalid integer for {name}: {raw!r}") from None


def _check_encoding(request: Request) -> None:
    enc = request.query_params.get("enc") or "json"
    if enc != "json":
        raise BadRequestError(f"unsupported encoding {enc!r}: the simulator speaks json only")


def _event(state: SimState, request: Request, event_id: str, now_ns: int) -> Reply:
    _check_encoding(request)
    flags = {
        name: _flag(request, name)
        for name in (
            "present_overlay",
            "with_big_bets",
            "with_live_bets",
            "with_money_tracker",
            "with_biggest_bet",
            "with_will_pays",
            "with_tote_trends_data",
        )
    }
    params: dict[str, Any] = {
        "enc": "json",
        "id": event_id,
        "present_overlay": flags["present_overlay"],
        "with_big_bets": flags["with_big_bets"],
        "with_live_bets": flags["with_live_bets"],
        "with_money_tracker": flags["with_money_tracker"],
        "with_biggest_bet": flags["with_biggest_bet"],
        "will_pays": flags["with_will_pays"],
        "with_tote_trends_data": flags["with_tote_trends_data"],
        "bet_type_filter": request.query_params.get("bet_type_filter", ""),
        "bets_limit": 10,
    }
    faults = state.faults
    rng = state.fault_rng
    options = EventOptions(
        with_money_tracker=flags["with_money_tracker"],
        with_tote_trends=flags["with_tote_trends_data"],
        data_error=faults.data_error.message if faults.data_error.fire("events", event_id, rng) else "",
        status_override=faults.status_override.get(event_id),
        drop_money_tracker=faults.drop_money_tracker.fire("events", event_id, rng),
        empty_pools=faults.empty_pools.fire("events", event_id, rng),
    )
    url = _url(request)
    if state.replay:
        return _replay_event(state, event_id, url, now_ns, options)
    if state.archive is not None:
        archived = state.archive.event_at(event_id, now_ns)
        if archived is None:
            return Reply(
                404, error_body(f"Event Details: {event_id}", url, now_ns, "event not found", "NOT_FOUND")
            )
        return Reply(200, archived)
    race = state.day.races.get(event_id) if state.day else None
    if race is None:
        return Reply(
            404, error_body(f"Event Details: {event_id}", url, now_ns, "event not found", "NOT_FOUND")
        )
    if not state.snapshots.max_age_ns:
        data, _ = state.renderer.data(race, now_ns / NS_PER_S, options)
        return Reply(200, success_body(f"Event Details: {event_id}", url, now_ns, params, data))
    # Served from the TAB's cache: the data as of this race's last refresh.
    snapshot_key = (event_id, url, options)
    refreshed_ns = state.snapshots.boundary(event_id, now_ns)
    body = state.snapshots.get(snapshot_key, refreshed_ns)
    if body is None:
        data, _ = state.renderer.data(race, refreshed_ns / NS_PER_S, options)
        body = success_body(f"Event Details: {event_id}", url, refreshed_ns, params, data)
        state.snapshots.put(snapshot_key, refreshed_ns, body)
    return Reply(200, body)


def _replay_event(state: SimState, event_id: str, url: str, now_ns: int, options: EventOptions) -> Reply:
    if event_id != RECORDED_EVENT_ID:
        return Reply(
            404, error_body(f"Event Details: {event_id}", url, now_ns, "event not found", "NOT_FOUND")
        )
    raw = data_bytes(EVENT_FILE)
    if not (
        options.data_error or options.status_override or options.drop_money_tracker or options.empty_pools
    ):
        return Reply(200, raw)
    document = json.loads(raw)
    data = document["data"]
    if options.data_error:
        data["error"] = options.data_error
    if options.status_override:
        data["race"]["status"] = options.status_override
    if options.drop_money_tracker:
        data["money_tracker"] = None
    if options.empty_pools:
        data["tote_pools"] = [p for p in data["tote_pools"] if p.get("product_type") not in ("Win", "Place")]
    return Reply(200, dumps(document).encode())


def _date_param(raw: str | None, today: date, name: str, *, end: bool) -> tuple[date | None, str]:
    """(date, or None for unbounded; echo text) for date_from (`end` False) or date_to."""
    value = (raw or "today").strip()
    if value == "today":
        return today, ""
    if value in ("week", "month"):
        return (today + timedelta(days=6 if value == "week" else 30)) if end else today, ""
    if value == "all":
        return None, ""
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise BadRequestError(f"invalid {name}: {value!r}") from None
    return parsed, f"{parsed.isoformat()}T00:00:00Z"


def _meeting_query(state: SimState, request: Request, now_ns: int, today: date) -> dict[str, Any]:
    _check_encoding(request)
    raw_from = request.query_params.get("date_from")
    raw_to = request.query_params.get("date_to")
    date_from, echo_from = _date_param(raw_from, today, "date_from", end=False)
    date_to, echo_to = _date_param(raw_to, today, "date_to", end=True)
    minute = datetime.fromtimestamp(now_ns // NS_PER_S // 60 * 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    limit = _integer(request, "limit", DEFAULT_LIMIT)
    limit = DEFAULT_LIMIT if limit <= 0 else min(limit, MAX_LIMIT)
    offset = _integer(request, "offset", 0)
    if offset < 0:
        raise BadRequestError(f"invalid offset: {offset}")
    ids = request.query_params.get("ids")
    return {
        "date_from": date_from,
        "date_to": date_to,
        "limit": limit,
        "offset": offset,
        "country": request.query_params.get("country") or None,
        "category": request.query_params.get("category") or None,
        "ids": {i.strip() for i in ids.split(",") if i.strip()} if ids else None,
        "params": {
            "enc": "json",
            "ids": ids or None,
            "date_from": echo_from or minute,
            "date_to": echo_to or minute,
            "type": request.query_params.get("category") or " ",
            "country": request.query_params.get("country") or " ",
            "limit": limit,
            "offset": offset,
            "futures": _flag(request, "futures"),
            "meeting_numbers": request.query_params.get("meeting_numbers") or None,
        },
    }


def _keep(query: dict[str, Any], meeting_date: str, meeting_id: str, country: str, category: str) -> bool:
    day = date.fromisoformat(meeting_date[:10])
    if query["date_from"] is not None and day < query["date_from"]:
        return False
    if query["date_to"] is not None and day > query["date_to"]:
        return False
    if query["country"] is not None and country != query["country"]:
        return False
    if query["category"] is not None and category != query["category"]:
        return False
    return query["ids"] is None or meeting_id in query["ids"]


def _meetings(state: SimState, request: Request, now_ns: int) -> Reply:
    url = _url(request)
    if state.replay:
        return _replay_meetings(state, request, url, now_ns)
    if state.archive is not None:
        return _archive_meetings(state, request, url, now_ns)
    assert state.day is not None
    today = nz_date(datetime.fromtimestamp(now_ns // NS_PER_S, UTC))
    query = _meeting_query(state, request, now_ns, today)
    kept = [m for m in state.day.meetings if _keep(query, m.date, m.meeting_id, m.country, m.category)]
    page = kept[query["offset"] : query["offset"] + query["limit"]]
    clock_s = now_ns / NS_PER_S
    overrides = state.faults.status_override
    data = {"meetings": [meeting_document(m, clock_s, overrides) for m in page]}
    return Reply(200, success_body("Race Meetings", url, now_ns, query["params"], data))


def _replay_meetings(state: SimState, request: Request, url: str, now_ns: int) -> Reply:
    query = _meeting_query(state, request, now_ns, date.fromisoformat(RECORDED_DATE))
    raw = data_bytes(MEETINGS_FILE)
    recorded = json.loads(raw)["data"]["meetings"]
    kept = [m for m in recorded if _keep(query, m["date"], m["meeting"], m["country"], m["category"])]
    if len(kept) == len(recorded) and query["offset"] == 0 and query["limit"] >= len(recorded):
        return Reply(200, raw)
    page = kept[query["offset"] : query["offset"] + query["limit"]]
    return Reply(200, success_body("Race Meetings", url, now_ns, query["params"], {"meetings": page}))


def _archive_meetings(state: SimState, request: Request, url: str, now_ns: int) -> Reply:
    assert state.archive is not None
    query = _meeting_query(state, request, now_ns, state.archive.day)
    documents = state.archive.meetings_at(now_ns)
    kept = [
        m for m in documents if _keep(query, m["date"], m["meeting"], str(m["country"]), str(m["category"]))
    ]
    page = kept[query["offset"] : query["offset"] + query["limit"]]
    return Reply(200, success_body("Race Meetings", url, now_ns, query["params"], {"meetings": page}))


def _meeting(state: SimState, request: Request, meeting_id: str, now_ns: int) -> Reply:
    _check_encoding(request)
    url = _url(request)
    params = {"enc": "json", "id": meeting_id}
    if state.replay:
        if meeting_id == RECORDED_MEETING_ID:
            return Reply(200, data_bytes(MEETING_FILE))
        recorded = json.loads(data_bytes(MEETINGS_FILE))["data"]["meetings"]
        found = [m for m in recorded if m["meeting"] == meeting_id]
        if found:
            return Reply(200, success_body("Get meeting by id", url, now_ns, params, {"meetings": found}))
    elif state.day is not None and meeting_id in state.day.meetings_by_id:
        document = meeting_document(
            state.day.meetings_by_id[meeting_id], now_ns / NS_PER_S, state.faults.status_override, detail=True
        )
        return Reply(200, success_body("Get meeting by id", url, now_ns, params, {"meetings": [document]}))
    return Reply(404, error_body("Get meeting by id", url, now_ns, "meeting not found", "NOT_FOUND"))
