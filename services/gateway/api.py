"""The REST endpoints of rest-api.md §2: each one parses its parameters, calls one writer RPC and
serializes the answer. The operation list also feeds the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Final

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.requests import Request
from starlette.responses import Response

from services.common.clock import Clock
from services.common.nztime import format_nz, from_epoch_ms, nz_midnight, nz_today
from services.common.proto.raceday.v1 import query_pb2
from services.common.timestamps import timestamp_from_ms
from services.gateway import alert_feed, alerts, serialize
from services.gateway.backend import Backend, Req, Resp
from services.gateway.cache import EncodingCache
from services.gateway.errors import ApiError
from services.gateway.health import HealthMonitor
from services.gateway.openapi import Operation
from services.gateway.params import (
    DEFAULT_USER,
    USER_ID,
    DateParam,
    IdListParam,
    IdParam,
    InstantParam,
    IntParam,
    PoolTypeParam,
    Query,
    RaceTypeParam,
    TextParam,
    read_id,
)
from services.gateway.responses import encoded_response, json_bytes, json_response
from services.gateway.schemas import array, nullable, ref
from services.gateway.timeline import timeline_envelope

RACE_NOT_FOUND: Final = "Race not found"
MEETING_NOT_FOUND: Final = "Meeting not found"

DATE = DateParam("date", "NZ date YYYY-MM-DD; default today's NZ date.")
DATE_FROM = DateParam("date_from", "First NZ date YYYY-MM-DD; default 30 days before date_to.")
DATE_TO = DateParam("date_to", "Last NZ date YYYY-MM-DD; default today's NZ date.")
BACKTEST_DEFAULT_DAYS: Final = 30
RACE_TYPE = RaceTypeParam("race_type", "thoroughbred, harness, greyhound or T, H, G (any case).")
COUNTRY = TextParam("country", "Country code, any case.", max_chars=16)
MEETING_ID = IdParam(
    "meeting_id", "Meeting id (required).", missing_error="meeting_id query parameter is required"
)
RACE_ID = IdParam("race_id", "Race id (required).", missing_error="race_id query parameter is required")
WINDOW_MINUTES = IntParam("window_minutes", "Minutes ahead, clamped to 0..480.", 0, 480, 120)
LOOKBACK_MINUTES = IntParam("lookback_minutes", "Minutes back, clamped to 0..120.", 0, 120, 5)
UPCOMING_LIMIT = IntParam("limit", "Races returned, clamped to 1..100.", 1, 100, 50)
HISTORY_LIMIT = IntParam("history_limit", "History rows per entrant, clamped to 0..200.", 0, 200, 50)
ENTRANTS = IdListParam("entrants", "Comma-separated entrant ids; may repeat. Default: every entrant.")
POOL_TYPE = PoolTypeParam("pool_type", "win, place or odds (echoed; every document carries all three).")
TIMELINE_LIMIT = IntParam("limit", "Documents per page, clamped to 1..5000.", 1, 5000, 2000)
CURSOR_AFTER = IntParam("cursor_after", "Only documents with a greater id (integer >= 0).", 0, 2**63 - 1)
CREATED_AFTER = InstantParam(
    "created_after", "Only documents whose latest poll was stored after this instant."
)
ALERTS_SINCE = InstantParam(
    "since", "Only alerts of polls observed at or after this instant; default the start of today's NZ day."
)
ALERTS_RACE_ID = IdParam("race_id", "Only this race's alerts (optional).")
ALERTS_LIMIT = IntParam("limit", "Alerts per page, clamped to 1..500.", 1, 500, 100)
ALERTS_CURSOR = IntParam(
    "cursor", "Only alerts older than this one: the previous page's next_cursor.", 0, 2**63 - 1
)


def _timestamp(value: Any) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def _json_body(request: Request) -> Any:
    """The parsed JSON body, None when there is none; 415 for other media types, 400 when malformed."""
    body = await request.body()
    if not body.strip():
        return None
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(415, "Unsupported media type: send application/json", {"content_type": media or None})
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ApiError(400, "Invalid JSON body") from None


def upcoming_body(
    response: query_pb2.ListUpcomingRacesResponse, window: int, lookback: int
) -> dict[str, Any]:
    """The upcoming-races body of §2.7."""
    races = [serialize.race_summary(item) for item in response.races]
    return {
        "races": races,
        "total": len(races),
        "timestamp": serialize.timestamp(response.now),
        "window": {
            "lower_bound": serialize.timestamp(response.lower_bound),
            "upper_bound": serialize.timestamp(response.upper_bound),
            "window_minutes": window,
            "lookback_minutes": lookback,
        },
    }


def build_operations(
    backend: Backend, health: HealthMonitor, *, compat_aliases: bool, clock: Clock
) -> list[Operation]:
    """Every REST operation bound to `backend`, in route-precedence order."""
    query = backend.query
    cache = EncodingCache()

    def simulated_now() -> Timestamp | None:
        """The shared clock's now when it is not real time (the writer defaults to its real clock)."""
        return timestamp_from_ms(clock.now_ms()) if clock.speed != 1.0 else None

    def respond(
        request: Request, kind: str, message: Message, build: Callable[[], Any], params: tuple[Any, ...] = ()
    ) -> Response:
        """The body of `message` as shaped by `params`, encoded once per distinct upstream answer."""
        entry = cache.get(EncodingCache.key(kind, message, params), lambda: json_bytes(build()))
        return encoded_response(request, entry)

    async def read_one(
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], message: Req, field: str, not_found: str
    ) -> Resp:
        """The writer's answer for one resource; 404 `not_found` when it has no `field`.

        The writer may answer NOT_FOUND or an empty response for a missing row; both are one 404.
        """
        response = await backend.call(method, message, not_found=not_found)
        if not response.HasField(field):
            raise ApiError(404, not_found)
        return response

    async def health_check(request: Request) -> Response:
        report = await health.report()
        return json_response(request, report.body, report.status_code)

    async def list_meetings(request: Request) -> Response:
        q = Query(request.query_params)
        day = DATE.read(q) or nz_today(from_epoch_ms(clock.now_ms()))
        message = query_pb2.ListMeetingsRequest(date=day.isoformat())
        category = RACE_TYPE.read(q)
        if category is not None:
            message.category = category
        country = COUNTRY.read(q)
        if country is not None:
            message.country = country.upper()
        response = await backend.call(query.ListMeetings, message)
        return respond(
            request, "meetings", response, lambda: [serialize.meeting_summary(m) for m in response.meetings]
        )

    async def get_meeting(request: Request) -> Response:
        meeting_id = read_id(request.path_params["meeting_id"], "meeting_id")
        response = await read_one(
            query.GetMeeting, query_pb2.GetMeetingRequest(meeting_id=meeting_id), "meeting", MEETING_NOT_FOUND
        )
        return respond(request, "meeting", response, lambda: serialize.meeting_detail(response.meeting))

    async def list_races(request: Request) -> Response:
        meeting_id = MEETING_ID.read(Query(request.query_params))
        response = await backend.call(
            query.ListRaces, query_pb2.ListRacesRequest(meeting_id=meeting_id), not_found=MEETING_NOT_FOUND
        )
        return respond(
            request, "races", response, lambda: [serialize.race_summary(r) for r in response.races]
        )

    async def race_navigation(request: Request) -> Response:
        race_id = RACE_ID.read(Query(request.query_params))
        response = await backend.call(
            query.GetRaceNavigation,
            query_pb2.GetRaceNavigationRequest(race_id=race_id, now=simulated_now()),
            not_found=RACE_NOT_FOUND,
        )
        return respond(request, "navigation", response, lambda: serialize.navigation(response))

    async def upcoming_races(request: Request) -> Response:
        q = Query(request.query_params)
        window = WINDOW_MINUTES.read(q)
        lookback = LOOKBACK_MINUTES.read(q)
        limit = UPCOMING_LIMIT.read(q)
        response = await backend.call(
            query.ListUpcomingRaces,
            query_pb2.ListUpcomingRacesRequest(
                window_minutes=window, lookback_minutes=lookback, limit=limit, now=simulated_now()
            ),
        )
        return respond(
            request,
            "upcoming",
            response,
            lambda: upcoming_body(response, window, lookback),
            (window, lookback),
        )

    async def next_scheduled_race(request: Request) -> Response:
        response = await backend.call(
            query.GetNextScheduledRace, query_pb2.GetNextScheduledRaceRequest(now=simulated_now())
        )
        present = response.HasField("race")
        return respond(
            request, "next", response, lambda: serialize.race_summary(response.race) if present else None
        )

    async def get_race(request: Request) -> Response:
        race_id = read_id(request.path_params["race_id"], "race_id")
        response = await read_one(
            query.GetRace, query_pb2.GetRaceRequest(race_id=race_id), "race", RACE_NOT_FOUND
        )
        return respond(request, "race", response, lambda: serialize.race_detail(response.race))

    async def list_entrants(request: Request) -> Response:
        q = Query(request.query_params)
        race_id = RACE_ID.read(q)
        history_limit = HISTORY_LIMIT.read(q)
        response = await backend.call(
            query.ListEntrants,
            query_pb2.ListEntrantsRequest(race_id=race_id, history_limit=history_limit),
            not_found=RACE_NOT_FOUND,
        )
        return respond(
            request, "entrants", response, lambda: [serialize.entrant(e) for e in response.entrants]
        )

    async def race_pools(request: Request) -> Response:
        race_id = RACE_ID.read(Query(request.query_params))
        response = await read_one(
            query.GetRacePools, query_pb2.GetRacePoolsRequest(race_id=race_id), "pools", "Pool data not found"
        )
        return respond(request, "pools", response, lambda: serialize.race_pools(response.pools))

    async def race_results(request: Request) -> Response:
        race_id = RACE_ID.read(Query(request.query_params))
        response = await read_one(
            query.GetRaceResults,
            query_pb2.GetRaceResultsRequest(race_id=race_id),
            "results",
            "Race results not found",
        )
        return respond(request, "results", response, lambda: serialize.race_results(response.results))

    async def money_flow_timeline(request: Request) -> Response:
        q = Query(request.query_params)
        race_id = RACE_ID.read(q)
        entrant_ids = ENTRANTS.read(q)
        pool_type = POOL_TYPE.read(q)
        limit = TIMELINE_LIMIT.read(q)
        cursor_after = CURSOR_AFTER.read_optional(q)
        created_after = CREATED_AFTER.read(q)
        message = query_pb2.GetMoneyFlowTimelineRequest(race_id=race_id, entrant_ids=entrant_ids, limit=limit)
        if cursor_after is not None:
            message.cursor_after = cursor_after
        if created_after is not None:
            message.created_after.CopyFrom(_timestamp(created_after))
        response = await backend.call(query.GetMoneyFlowTimeline, message, not_found=RACE_NOT_FOUND)
        shape = (race_id, pool_type, limit, created_after.isoformat() if created_after else None)
        return respond(
            request,
            "timeline",
            response,
            lambda: timeline_envelope(
                response, race_id=race_id, pool_type=pool_type, limit=limit, created_after=created_after
            ),
            shape,
        )

    async def get_alert_config(request: Request) -> Response:
        user_id = USER_ID.read(Query(request.query_params)) or DEFAULT_USER
        response = await backend.call(query.GetAlertConfig, query_pb2.GetAlertConfigRequest(user_id=user_id))
        return respond(request, "alerts", response, lambda: serialize.alert_config(response.config))

    async def save_alert_config(request: Request) -> Response:
        message = alerts.save_request(await _json_body(request))
        response = await backend.call(query.SaveAlertConfig, message, coalesce=False)
        return json_response(request, {"success": True, **serialize.alert_config(response.config)})

    async def reset_alert_config(request: Request) -> Response:
        query_user = USER_ID.read(Query(request.query_params))
        user_id = alerts.reset_user(await _json_body(request), query_user)
        response = await backend.call(
            query.ResetAlertConfig, query_pb2.ResetAlertConfigRequest(user_id=user_id), coalesce=False
        )
        return json_response(request, serialize.alert_config(response.config))

    async def list_alerts(request: Request) -> Response:
        q = Query(request.query_params)
        since = ALERTS_SINCE.read(q) or nz_midnight(nz_today(from_epoch_ms(clock.now_ms())))
        race_id = ALERTS_RACE_ID.read_optional(q)
        limit = ALERTS_LIMIT.read(q)
        cursor = ALERTS_CURSOR.read_optional(q)
        user_id = USER_ID.read(q) or DEFAULT_USER

        async def fetch(before: int | None, size: int) -> Sequence[query_pb2.RaceAlert]:
            message = query_pb2.ListAlertsRequest(limit=size, since=_timestamp(since))
            if race_id is not None:
                message.race_id = race_id
            if before is not None:
                message.cursor = before
            return (await backend.call(query.ListAlerts, message)).alerts

        # The user's ranges (stored merged with the defaults by the writer) classify every alert.
        config = (
            await backend.call(query.GetAlertConfig, query_pb2.GetAlertConfigRequest(user_id=user_id))
        ).config
        page = await alert_feed.user_page(fetch, config.indicators, limit=limit, cursor=cursor)
        body = {
            "alerts": [alert_feed.alert_document(alert, indicator) for alert, indicator in page.alerts],
            "total": len(page.alerts),
            "user_id": config.user_id,
            "since": format_nz(since),
            "race_id": race_id,
            "limit": limit,
            "next_cursor": None if page.next_cursor is None else str(page.next_cursor),
        }
        return json_response(request, body)

    async def get_backtest(request: Request) -> Response:
        q = Query(request.query_params)
        last = DATE_TO.read(q) or nz_today(from_epoch_ms(clock.now_ms()))
        first = DATE_FROM.read(q) or last - timedelta(days=BACKTEST_DEFAULT_DAYS - 1)
        if last < first:
            raise ApiError(400, "date_to is before date_from")
        message = query_pb2.GetBacktestRequest(date_from=first.isoformat(), date_to=last.isoformat())
        response = await backend.call(query.GetBacktest, message)
        return json_response(request, serialize.backtest(first.isoformat(), last.isoformat(), response))

    health_responses = {200: ref("HealthOk"), 503: ref("HealthDown")}
    race_errors = (400, 404, 500, 503, 504)
    body_errors = (400, 413, 415, 500, 503, 504)
    operations = [
        Operation(
            "GET",
            "/health",
            health_check,
            "Health of the gateway and the services behind it",
            "health",
            health_responses,
            errors=(500,),
            extra_paths=("/api/health",),
        ),
        Operation(
            "GET",
            "/api/meetings",
            list_meetings,
            "Meetings of an NZ date",
            "meetings",
            {200: array(ref("MeetingSummary"))},
            params=(DATE, RACE_TYPE, COUNTRY),
            extra_paths=("/meetings",) if compat_aliases else (),
        ),
        Operation(
            "GET",
            "/api/meetings/{meeting_id}",
            get_meeting,
            "One meeting",
            "meetings",
            {200: ref("MeetingDetail")},
            path_params=("meeting_id",),
            errors=race_errors,
            extra_paths=("/meetings/{meeting_id}",) if compat_aliases else (),
        ),
        Operation(
            "GET",
            "/api/races",
            list_races,
            "Races of a meeting",
            "races",
            {200: array(ref("RaceSummary"))},
            params=(MEETING_ID,),
            errors=race_errors,
            extra_paths=("/races",) if compat_aliases else (),
        ),
        # The fixed /api/races/... paths come before /api/races/{race_id} (route precedence).
        Operation(
            "GET",
            "/api/races/navigation",
            race_navigation,
            "Previous, next and next scheduled race",
            "races",
            {200: ref("Navigation")},
            params=(RACE_ID,),
            errors=race_errors,
        ),
        Operation(
            "GET",
            "/api/races/upcoming",
            upcoming_races,
            "Races starting soon",
            "races",
            {200: ref("UpcomingRaces")},
            params=(WINDOW_MINUTES, LOOKBACK_MINUTES, UPCOMING_LIMIT),
        ),
        Operation(
            "GET",
            "/api/races/next-scheduled",
            next_scheduled_race,
            "The next race to start",
            "races",
            {200: nullable(ref("RaceSummary"))},
        ),
        Operation(
            "GET",
            "/api/races/{race_id}",
            get_race,
            "One race",
            "races",
            {200: ref("RaceDetail")},
            path_params=("race_id",),
            errors=race_errors,
        ),
        Operation(
            "GET",
            "/api/entrants",
            list_entrants,
            "Entrants of a race with capped histories",
            "entrants",
            {200: array(ref("Entrant"))},
            params=(RACE_ID, HISTORY_LIMIT),
            errors=race_errors,
        ),
        Operation(
            "GET",
            "/api/race-pools",
            race_pools,
            "Pool totals of a race (cents)",
            "pools",
            {200: ref("RacePools")},
            params=(RACE_ID,),
            errors=race_errors,
        ),
        Operation(
            "GET",
            "/api/race-results",
            race_results,
            "Results and dividends of a race",
            "results",
            {200: ref("RaceResults")},
            params=(RACE_ID,),
            errors=race_errors,
        ),
        Operation(
            "GET",
            "/api/money-flow-timeline",
            money_flow_timeline,
            "Money-flow timeline: one document per entrant and interval",
            "timeline",
            {200: ref("Timeline")},
            params=(RACE_ID, ENTRANTS, POOL_TYPE, TIMELINE_LIMIT, CURSOR_AFTER, CREATED_AFTER),
            errors=race_errors,
        ),
        Operation(
            "GET",
            "/api/backtest",
            get_backtest,
            "Backtest: how the runners with the most late Win money finished",
            "backtest",
            {200: ref("Backtest")},
            params=(DATE_FROM, DATE_TO),
            description=(
                "For the final races of NZ dates date_from..date_to (at most 366 days): the runner with "
                "the most Win money in the last 5, 2 and 1 minutes before betting closed, its win and place "
                "strike rates (fractions) with 95% Wilson intervals, and the mean return of $1 on it at the "
                "final tote dividends, with the number of races behind each figure."
            ),
        ),
        Operation(
            "GET",
            "/api/alerts",
            list_alerts,
            "Alerts of today's races for a user, newest first",
            "alerts",
            {200: ref("Alerts")},
            params=(ALERTS_SINCE, USER_ID, ALERTS_RACE_ID, ALERTS_LIMIT, ALERTS_CURSOR),
            description=(
                "Moves of at least 5 stored for every committed poll: a runner's rise in share (points) "
                "of a timeline column's positive Win (`win_money`) or Place (`place_money`) increments, "
                "or the shortening of its win price in percent (`win_price`), measured from the "
                "previous column (rest-api.md §4.1). Each carries the user's classification: the first "
                "enabled indicator, by display_order, whose range holds the value; alerts outside the "
                "user's enabled ranges are not listed. Newest first by alert_id; `next_cursor` (null "
                "when nothing older is left) is the `cursor` of the next page, which may hold fewer than "
                "`limit` alerts when the user's ranges skip many."
            ),
        ),
        Operation(
            "GET",
            "/api/user-alert-configs",
            get_alert_config,
            "A user's alert indicators",
            "alerts",
            {200: ref("AlertConfig")},
            params=(USER_ID,),
        ),
        Operation(
            "POST",
            "/api/user-alert-configs",
            save_alert_config,
            "Save alert indicators",
            "alerts",
            {200: ref("AlertConfigSaved")},
            body=ref("AlertConfigInput"),
            errors=body_errors,
        ),
        # Reset is accepted as POST and as PUT: one operation each (distinct operationIds).
        *(
            Operation(
                method,
                "/api/user-alert-configs/reset",
                reset_alert_config,
                "Reset indicators to defaults",
                "alerts",
                {200: ref("AlertConfig")},
                params=(USER_ID,),
                body=ref("AlertResetInput"),
                errors=body_errors,
            )
            for method in ("POST", "PUT")
        ),
    ]
    return operations
