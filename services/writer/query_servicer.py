"""QueryService: the read queries behind the REST contract, served by the writer process."""

from __future__ import annotations

from datetime import date, datetime

from google.protobuf.message import Message

from services.common.nztime import utc_now
from services.common.proto.raceday.v1 import query_pb2, query_pb2_grpc
from services.common.protofields import opt, opt_ts
from services.common.timestamps import datetime_to_ts
from services.writer import metrics
from services.writer.backtest import backtest
from services.writer.db import Database
from services.writer.errors import InvalidArgumentError
from services.writer.queries import alert_feed, alerts, entrants, meetings, pools, races, status, timeline
from services.writer.rpc import Context, handled

_Q = metrics.QUERY_SECONDS
# The longest range a backtest request may cover.
BACKTEST_MAX_DAYS = 366


def _nz_date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be an NZ date YYYY-MM-DD") from None


def _now(request: Message) -> datetime:
    """The request's `now`, or the current time when it is absent."""
    return opt_ts(request, "now") or utc_now()


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    """Every RPC of query.proto; unknown ids answer NOT_FOUND, bad arguments INVALID_ARGUMENT."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @handled("GetStatus", _Q)
    async def GetStatus(
        self, request: query_pb2.GetStatusRequest, context: Context
    ) -> query_pb2.GetStatusResponse:
        """Database connectivity and the time of the newest race write."""
        connected, last_write = await status.get_status(self._db)
        response = query_pb2.GetStatusResponse(database_connected=connected)
        if last_write is not None:
            datetime_to_ts(last_write, response.last_race_write)
        return response

    @handled("ListMeetings", _Q)
    async def ListMeetings(
        self, request: query_pb2.ListMeetingsRequest, context: Context
    ) -> query_pb2.ListMeetingsResponse:
        """Meetings of an NZ date (default today), optionally by category and country."""
        found = await meetings.list_meetings(
            self._db, request.date, opt(request, "category"), opt(request, "country")
        )
        return query_pb2.ListMeetingsResponse(meetings=found)

    @handled("GetMeeting", _Q)
    async def GetMeeting(
        self, request: query_pb2.GetMeetingRequest, context: Context
    ) -> query_pb2.GetMeetingResponse:
        """One meeting."""
        return query_pb2.GetMeetingResponse(meeting=await meetings.get_meeting(self._db, request.meeting_id))

    @handled("ListRaces", _Q)
    async def ListRaces(
        self, request: query_pb2.ListRacesRequest, context: Context
    ) -> query_pb2.ListRacesResponse:
        """Races of a meeting by number."""
        return query_pb2.ListRacesResponse(races=await races.list_races(self._db, request.meeting_id))

    @handled("GetRace", _Q)
    async def GetRace(self, request: query_pb2.GetRaceRequest, context: Context) -> query_pb2.GetRaceResponse:
        """One race."""
        return query_pb2.GetRaceResponse(race=await races.get_race(self._db, request.race_id))

    @handled("GetRaceNavigation", _Q)
    async def GetRaceNavigation(
        self, request: query_pb2.GetRaceNavigationRequest, context: Context
    ) -> query_pb2.GetRaceNavigationResponse:
        """Previous, next and next scheduled race."""
        nav = await races.get_navigation(self._db, request.race_id, _now(request))
        # None leaves a message field absent.
        return query_pb2.GetRaceNavigationResponse(
            previous_race=nav.previous_race,
            next_race=nav.next_race,
            next_scheduled_race=nav.next_scheduled_race,
        )

    @handled("ListUpcomingRaces", _Q)
    async def ListUpcomingRaces(
        self, request: query_pb2.ListUpcomingRacesRequest, context: Context
    ) -> query_pb2.ListUpcomingRacesResponse:
        """Races starting within the window, not final or abandoned."""
        upcoming = await races.list_upcoming(
            self._db,
            _now(request),
            request.window_minutes,
            request.lookback_minutes,
            request.limit,
        )
        response = query_pb2.ListUpcomingRacesResponse(races=upcoming.races)
        datetime_to_ts(upcoming.lower_bound, response.lower_bound)
        datetime_to_ts(upcoming.upper_bound, response.upper_bound)
        datetime_to_ts(upcoming.now, response.now)
        return response

    @handled("GetNextScheduledRace", _Q)
    async def GetNextScheduledRace(
        self, request: query_pb2.GetNextScheduledRaceRequest, context: Context
    ) -> query_pb2.GetNextScheduledRaceResponse:
        """The next race to start that is open or unknown (absent when none)."""
        race = await races.get_next_scheduled(self._db, _now(request))
        return query_pb2.GetNextScheduledRaceResponse(race=race)

    @handled("ListEntrants", _Q)
    async def ListEntrants(
        self, request: query_pb2.ListEntrantsRequest, context: Context
    ) -> query_pb2.ListEntrantsResponse:
        """Entrants with capped histories."""
        found = await entrants.list_entrants(self._db, request.race_id, request.history_limit)
        return query_pb2.ListEntrantsResponse(entrants=found)

    @handled("GetRacePools", _Q)
    async def GetRacePools(
        self, request: query_pb2.GetRacePoolsRequest, context: Context
    ) -> query_pb2.GetRacePoolsResponse:
        """Pool totals of a race."""
        return query_pb2.GetRacePoolsResponse(pools=await pools.get_pools(self._db, request.race_id))

    @handled("GetRaceResults", _Q)
    async def GetRaceResults(
        self, request: query_pb2.GetRaceResultsRequest, context: Context
    ) -> query_pb2.GetRaceResultsResponse:
        """Results, dividends and flags of a race."""
        return query_pb2.GetRaceResultsResponse(results=await pools.get_results(self._db, request.race_id))

    @handled("GetMoneyFlowTimeline", _Q)
    async def GetMoneyFlowTimeline(
        self, request: query_pb2.GetMoneyFlowTimelineRequest, context: Context
    ) -> query_pb2.GetMoneyFlowTimelineResponse:
        """One document per (entrant, effective bucket), ordered by id, paged."""
        page = await timeline.get_timeline(
            self._db,
            request.race_id,
            entrant_ids=list(request.entrant_ids),
            limit=request.limit,
            cursor_after=opt(request, "cursor_after"),
            created_after=opt_ts(request, "created_after"),
        )
        return query_pb2.GetMoneyFlowTimelineResponse(documents=page.documents, entrant_ids=page.entrant_ids)

    @handled("GetAlertConfig", _Q)
    async def GetAlertConfig(
        self, request: query_pb2.GetAlertConfigRequest, context: Context
    ) -> query_pb2.GetAlertConfigResponse:
        """A user's six indicators (defaults filled in, nothing stored)."""
        return query_pb2.GetAlertConfigResponse(
            config=await alerts.get_alert_config(self._db, request.user_id)
        )

    @handled("SaveAlertConfig", _Q)
    async def SaveAlertConfig(
        self, request: query_pb2.SaveAlertConfigRequest, context: Context
    ) -> query_pb2.SaveAlertConfigResponse:
        """Upsert indicators by (user, display order) and the audible flag."""
        config = await alerts.save_alert_config(
            self._db, request.user_id, list(request.indicators), opt(request, "audible_alerts_enabled")
        )
        return query_pb2.SaveAlertConfigResponse(config=config)

    @handled("ResetAlertConfig", _Q)
    async def ResetAlertConfig(
        self, request: query_pb2.ResetAlertConfigRequest, context: Context
    ) -> query_pb2.ResetAlertConfigResponse:
        """Back to the defaults; the audible flag stays."""
        return query_pb2.ResetAlertConfigResponse(
            config=await alerts.reset_alert_config(self._db, request.user_id)
        )

    @handled("ListAlerts", _Q)
    async def ListAlerts(
        self, request: query_pb2.ListAlertsRequest, context: Context
    ) -> query_pb2.ListAlertsResponse:
        """Stored alerts newest first, by poll time, race and alert id (unclassified)."""
        found = await alert_feed.list_alerts(
            self._db,
            since=opt_ts(request, "since"),
            race_id=opt(request, "race_id"),
            cursor=opt(request, "cursor"),
            after_id=opt(request, "after_id"),
            limit=request.limit,
        )
        return query_pb2.ListAlertsResponse(alerts=found)

    @handled("GetBacktest", _Q)
    async def GetBacktest(
        self, request: query_pb2.GetBacktestRequest, context: Context
    ) -> query_pb2.GetBacktestResponse:
        """The backtest's figures per window over NZ days date_from..date_to."""
        first, last = _nz_date(request.date_from, "date_from"), _nz_date(request.date_to, "date_to")
        if last < first:
            raise InvalidArgumentError("date_to is before date_from")
        if (last - first).days >= BACKTEST_MAX_DAYS:
            raise InvalidArgumentError(f"at most {BACKTEST_MAX_DAYS} days")
        async with self._db.read_connection() as conn:
            figures, _ = await backtest(conn, first, last)
        response = query_pb2.GetBacktestResponse()
        for row in figures:
            win_low, win_high = row.win_interval
            place_low, place_high = row.place_interval
            window = response.windows.add(
                window_minutes=row.window,
                races=row.races,
                wins=row.wins,
                places=row.places,
                win_ci_low=win_low,
                win_ci_high=win_high,
                place_ci_low=place_low,
                place_ci_high=place_high,
                win_return_races=len(row.win_returns),
                place_return_races=len(row.place_returns),
            )
            if row.win_return is not None:
                window.win_return = row.win_return
            if row.place_return is not None:
                window.place_return = row.place_return
        return response
