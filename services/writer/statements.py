"""The SQL of the write path: entity upserts per source, pools, results, series and meeting status."""

from __future__ import annotations

from functools import cache
from typing import Final, Literal

from psycopg import sql

from services.writer.settings import WriterSettings
from services.writer.upsert import Col, Upsert, build_upsert

Source = Literal["poll", "baseline", "list"]

# Step 1 of every write transaction (storage §6.1): SET LOCAL of both timeouts.
SET_TIMEOUTS: Final = (
    "SELECT set_config('statement_timeout', %(statement)s, true), set_config('lock_timeout', %(lock)s, true)"
)


def timeouts(settings: WriterSettings) -> dict[str, str]:
    """Parameters of SET_TIMEOUTS."""
    return {"statement": str(settings.statement_timeout_ms), "lock": str(settings.lock_timeout_ms)}


# --- meetings -------------------------------------------------------------------------------

# A race write inserts a minimal meeting when it is unknown (storage §6.1 step 2) ...
MEETING_INSERT_MINIMAL: Final = """
INSERT INTO meetings (meeting_id, meeting_name, date, country, state, category, category_name,
                      track_condition, weather)
VALUES (%(meeting_id)s, %(meeting_name)s, %(date)s, %(country)s, %(state)s, %(category)s,
        %(category_name)s, %(track_condition)s, %(weather)s)
ON CONFLICT (meeting_id) DO NOTHING
"""
# ... and otherwise refreshes only the descriptive fields the race carries. A plain UPDATE
# with the change in its WHERE locks nothing when nothing changed, so concurrent writes of
# one meeting's races do not queue behind each other.
MEETING_REFRESH_CONDITIONS: Final = """
UPDATE meetings AS t
SET track_condition = COALESCE(%(track_condition)s, t.track_condition),
    weather = COALESCE(%(weather)s, t.weather),
    updated_at = now()
WHERE t.meeting_id = %(meeting_id)s
  AND (t.track_condition, t.weather) IS DISTINCT FROM
      (COALESCE(%(track_condition)s, t.track_condition), COALESCE(%(weather)s, t.weather))
"""

MEETINGS_FROM_LIST: Final[Upsert] = build_upsert(
    "meetings",
    ("meeting_id",),
    (
        Col("meeting_id", "text"),
        Col("meeting_name", "text"),
        Col("date", "date"),
        Col("country", "text"),
        Col("state", "text", mode="keep"),
        Col("category", "text"),
        Col("category_name", "text", mode="keep"),
        Col("track_condition", "text", mode="keep"),
        Col("weather", "text", mode="keep"),
        Col("tote_status", "text", mode="keep"),
        Col("tote_meeting_number", "integer", mode="keep"),
    ),
)

# Meeting status from its races (storage §1.1). The meeting row is locked first so that two
# writers finishing the last races of a meeting at once both see each other's race status.
MEETING_STATUS_LOCK: Final = """
SELECT 1 FROM meetings WHERE meeting_id = ANY(%(meeting_ids)s) ORDER BY meeting_id FOR NO KEY UPDATE
"""
MEETING_STATUS_RECOMPUTE: Final = """
UPDATE meetings AS m
SET status = s.status, updated_at = now()
FROM (
    SELECT meeting_id,
           CASE WHEN bool_and(status = 'abandoned') THEN 'cancelled'
                WHEN bool_and(status IN ('final', 'abandoned')) THEN 'completed'
                ELSE 'active' END AS status
    FROM races
    WHERE meeting_id = ANY(%(meeting_ids)s)
    GROUP BY meeting_id
) AS s
WHERE m.meeting_id = s.meeting_id AND m.status IS DISTINCT FROM s.status
"""

# --- races ----------------------------------------------------------------------------------

# From the meetings list a race's status only moves forward along open -> closed -> interim ->
# final; abandoned may replace any non-terminal status; terminal statuses stay (scheduling §6).
_STATUS_RANK = (
    "CASE {s} WHEN 'unknown' THEN 0 WHEN 'open' THEN 1 WHEN 'closed' THEN 2 "
    "WHEN 'interim' THEN 3 WHEN 'final' THEN 4 ELSE -1 END"
)
_FORWARD_STATUS = (
    "CASE WHEN t.status IN ('final', 'abandoned') THEN t.status "
    "WHEN EXCLUDED.status = 'abandoned' THEN 'abandoned' "
    f"WHEN {_STATUS_RANK.format(s='EXCLUDED.status')} > {_STATUS_RANK.format(s='t.status')} "
    "THEN EXCLUDED.status ELSE t.status END"
)
_FORWARD_STATUS_RAW = (
    f"CASE WHEN ({_FORWARD_STATUS}) IS DISTINCT FROM t.status "
    "THEN COALESCE(EXCLUDED.status_raw, t.status_raw) ELSE t.status_raw END"
)


@cache
def race_upsert(source: Source, with_protest: bool) -> Upsert:
    """The race upsert for a source; `protest` is only written when the source carried it."""
    forward_only = source == "list"
    columns = [
        Col("race_id", "text"),
        Col("meeting_id", "text"),
        Col("race_number", "integer"),
        Col("name", "text"),
        Col("status", "text", mode="custom", expr=_FORWARD_STATUS) if forward_only else Col("status", "text"),
        (
            Col("status_raw", "text", mode="custom", expr=_FORWARD_STATUS_RAW)
            if forward_only
            else Col("status_raw", "text", mode="keep")
        ),
        Col("start_time", "timestamptz"),
        Col("actual_start", "timestamptz", mode="keep"),
        Col("race_date_nz", "date"),
        Col("start_time_nz", "text", mode="keep"),
        Col("tote_start_time", "text", mode="keep"),
        Col("type", "text", mode="keep"),
        Col("country", "text", mode="keep"),
        Col("state", "text", mode="keep"),
        Col("distance", "integer", mode="keep"),
        Col("track_condition", "text", mode="keep"),
        Col("track_surface", "text", mode="keep"),
        Col("track_direction", "text", mode="keep"),
        Col("weather", "text", mode="keep"),
        Col("rail_position", "text", mode="keep"),
        Col("race_class", "text", mode="keep"),
        Col("entrant_count", "integer", mode="keep"),
        Col("field_size", "integer", mode="keep"),
        Col("positions_paid", "integer", mode="keep"),
        Col("total_prize_money", "bigint", mode="keep"),
        Col("silk_url", "text", mode="keep"),
        Col("silk_base_url", "text", mode="keep"),
        Col("video_channels", "text", "jsonb", mode="keep"),
        Col("protest_reason", "text", mode="keep"),
    ]
    if with_protest:
        columns.append(Col("protest", "boolean"))
    return build_upsert("races", ("race_id",), columns)


RACE_PREVIOUS_STATUS: Final = "SELECT status FROM races WHERE race_id = %(race_id)s"

# The poll's identity: nothing is returned when this (race_id, polled_at) was already written.
RACE_POLL_INSERT: Final = """
INSERT INTO race_polls (race_id, polled_at, baseline) VALUES (%(race_id)s, %(polled_at)s, %(baseline)s)
ON CONFLICT (race_id, polled_at) DO NOTHING
RETURNING 1
"""

# --- entrants -------------------------------------------------------------------------------

_ODDS = ("fixed_win_odds", "fixed_place_odds", "pool_win_odds", "pool_place_odds")
MONEY_FLOW_ENTRANT_COLUMNS: Final = (
    "hold_percentage",
    "bet_percentage",
    "win_pool_percentage",
    "place_pool_percentage",
    "win_pool_amount",
    "place_pool_amount",
    "money_flow_at",
)


@cache
def entrant_upsert(odds_owned: bool, with_money_flow: bool) -> Upsert:
    """The entrant upsert.

    `odds_owned`: a poll owns the four current odds and sets them, null included (a
    scratched runner loses its prices); other sources only fill them when present.
    `with_money_flow`: the runner produced money flow in this poll, so its money-flow
    columns are set; otherwise they are not part of the statement at all.
    """
    columns = [
        Col("entrant_id", "text"),
        Col("race_id", "text"),
        Col("runner_number", "integer"),
        Col("name", "text"),
        Col("barrier", "integer", mode="keep"),
        Col("barrier_position", "text", mode="keep"),
        Col("jockey", "text", mode="keep"),
        Col("trainer_name", "text", mode="keep"),
        Col("silk_colours", "text", mode="keep"),
        Col("silk_url_64x64", "text", mode="keep"),
        Col("silk_url_128x128", "text", mode="keep"),
        Col("is_scratched", "boolean"),
        Col("is_late_scratched", "boolean"),
        Col("scratch_time", "timestamptz", mode="keep"),
        Col("favourite", "boolean"),
        Col("mover", "boolean"),
        Col("runner_change", "text", "jsonb", mode="keep"),
    ]
    columns += [Col(name, "numeric(10,2)", mode="set" if odds_owned else "keep") for name in _ODDS]
    if with_money_flow:
        columns += [
            Col("hold_percentage", "numeric(5,2)"),
            Col("bet_percentage", "numeric(5,2)"),
            Col("win_pool_percentage", "numeric(5,2)"),
            Col("place_pool_percentage", "numeric(5,2)"),
            Col("win_pool_amount", "bigint"),
            Col("place_pool_amount", "bigint"),
            Col("money_flow_at", "timestamptz"),
        ]
    return build_upsert("entrants", ("entrant_id",), columns)


# --- pools and results ----------------------------------------------------------------------

POOLS_UPSERT: Final = """
INSERT INTO race_pools AS t (race_id, win_pool_total, place_pool_total, quinella_pool_total,
                             trifecta_pool_total, exacta_pool_total, first4_pool_total, total_race_pool,
                             currency, extracted_pools, data_quality_score, source, last_updated)
VALUES (%(race_id)s, %(win_pool_total)s, %(place_pool_total)s, %(quinella_pool_total)s,
        %(trifecta_pool_total)s, %(exacta_pool_total)s, %(first4_pool_total)s, %(total_race_pool)s,
        %(currency)s, %(extracted_pools)s, %(data_quality_score)s, %(source)s, %(last_updated)s)
ON CONFLICT (race_id) DO UPDATE SET
    win_pool_total = EXCLUDED.win_pool_total,
    place_pool_total = EXCLUDED.place_pool_total,
    quinella_pool_total = EXCLUDED.quinella_pool_total,
    trifecta_pool_total = EXCLUDED.trifecta_pool_total,
    exacta_pool_total = EXCLUDED.exacta_pool_total,
    first4_pool_total = EXCLUDED.first4_pool_total,
    total_race_pool = EXCLUDED.total_race_pool,
    currency = EXCLUDED.currency,
    extracted_pools = EXCLUDED.extracted_pools,
    data_quality_score = EXCLUDED.data_quality_score,
    source = EXCLUDED.source,
    -- last_updated is the poll at which a total last changed (storage §1.4)
    last_updated = CASE
        WHEN (t.win_pool_total, t.place_pool_total, t.quinella_pool_total, t.trifecta_pool_total,
              t.exacta_pool_total, t.first4_pool_total)
             IS DISTINCT FROM
             (EXCLUDED.win_pool_total, EXCLUDED.place_pool_total, EXCLUDED.quinella_pool_total,
              EXCLUDED.trifecta_pool_total, EXCLUDED.exacta_pool_total, EXCLUDED.first4_pool_total)
        THEN EXCLUDED.last_updated ELSE t.last_updated END,
    updated_at = now()
WHERE (t.win_pool_total, t.place_pool_total, t.quinella_pool_total, t.trifecta_pool_total,
       t.exacta_pool_total, t.first4_pool_total, t.total_race_pool, t.currency, t.extracted_pools,
       t.data_quality_score, t.source)
      IS DISTINCT FROM
      (EXCLUDED.win_pool_total, EXCLUDED.place_pool_total, EXCLUDED.quinella_pool_total,
       EXCLUDED.trifecta_pool_total, EXCLUDED.exacta_pool_total, EXCLUDED.first4_pool_total,
       EXCLUDED.total_race_pool, EXCLUDED.currency, EXCLUDED.extracted_pools,
       EXCLUDED.data_quality_score, EXCLUDED.source)
"""

# The three flags are sticky (money-flow §10); documents absent from a poll are kept.
RESULTS_UPSERT: Final = """
INSERT INTO race_results AS t (race_id, results_available, results_data, dividends_data, fixed_odds_data,
                               result_status, photo_finish, stewards_inquiry, protest_lodged, result_time)
VALUES (%(race_id)s, %(results_available)s, %(results_data)s::jsonb, %(dividends_data)s::jsonb,
        %(fixed_odds_data)s::jsonb, %(result_status)s, %(photo_finish)s, %(stewards_inquiry)s,
        %(protest_lodged)s, %(result_time)s)
ON CONFLICT (race_id) DO UPDATE SET
    results_available = EXCLUDED.results_available,
    results_data = COALESCE(EXCLUDED.results_data, t.results_data),
    dividends_data = COALESCE(EXCLUDED.dividends_data, t.dividends_data),
    fixed_odds_data = COALESCE(EXCLUDED.fixed_odds_data, t.fixed_odds_data),
    result_status = COALESCE(EXCLUDED.result_status, t.result_status),
    photo_finish = t.photo_finish OR EXCLUDED.photo_finish,
    stewards_inquiry = t.stewards_inquiry OR EXCLUDED.stewards_inquiry,
    protest_lodged = t.protest_lodged OR EXCLUDED.protest_lodged,
    result_time = COALESCE(EXCLUDED.result_time, t.result_time),
    updated_at = now()
WHERE (t.results_available, t.results_data, t.dividends_data, t.fixed_odds_data, t.result_status,
       t.photo_finish, t.stewards_inquiry, t.protest_lodged, t.result_time)
      IS DISTINCT FROM
      (EXCLUDED.results_available, COALESCE(EXCLUDED.results_data, t.results_data),
       COALESCE(EXCLUDED.dividends_data, t.dividends_data),
       COALESCE(EXCLUDED.fixed_odds_data, t.fixed_odds_data),
       COALESCE(EXCLUDED.result_status, t.result_status),
       t.photo_finish OR EXCLUDED.photo_finish, t.stewards_inquiry OR EXCLUDED.stewards_inquiry,
       t.protest_lodged OR EXCLUDED.protest_lodged, COALESCE(EXCLUDED.result_time, t.result_time))
"""

# A baseline never overwrites the pools or results of a live race: it only fills them in.
POOLS_INSERT_ONLY: Final = POOLS_UPSERT.partition("ON CONFLICT")[0] + "ON CONFLICT (race_id) DO NOTHING"
RESULTS_INSERT_ONLY: Final = RESULTS_UPSERT.partition("ON CONFLICT")[0] + "ON CONFLICT (race_id) DO NOTHING"

# --- time series ----------------------------------------------------------------------------

MONEY_FLOW_COLUMNS: Final = (
    "race_id",
    "entrant_id",
    "event_timestamp",
    "source_generated_at",
    "advertised_start",
    "time_to_start",
    "time_interval",
    "interval_type",
    "hold_percentage",
    "bet_percentage",
    "win_pool_total",
    "place_pool_total",
    "win_pool_amount",
    "place_pool_amount",
    "total_pool_amount",
    "win_pool_percentage",
    "place_pool_percentage",
    "incremental_win_amount",
    "incremental_place_amount",
    "is_baseline",
    "fixed_win_odds",
    "fixed_place_odds",
    "pool_win_odds",
    "pool_place_odds",
)
# Column types of the multi-row INSERT alternative (a JSON record per row).
_MONEY_FLOW_TYPES = (
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "integer",
    "integer",
    "text",
    "numeric(5,2)",
    "numeric(5,2)",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "numeric(5,2)",
    "numeric(5,2)",
    "bigint",
    "bigint",
    "boolean",
    "numeric(10,2)",
    "numeric(10,2)",
    "numeric(10,2)",
    "numeric(10,2)",
)
ODDS_COLUMNS: Final = ("race_id", "entrant_id", "type", "odds", "event_timestamp")
_ODDS_TYPES = ("text", "text", "text", "numeric(10,2)", "timestamptz")


def copy_statement(table: str, columns: tuple[str, ...]) -> bytes:
    """COPY ... FROM STDIN with the columns listed explicitly (text format), rendered once."""
    return (
        sql.SQL("COPY {} ({}) FROM STDIN")
        .format(sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns))
        .as_bytes(None)
    )


def insert_statement(table: str, columns: tuple[str, ...], types: tuple[str, ...]) -> bytes:
    """The multi-row INSERT alternative to COPY (rows as one JSON array parameter), rendered once."""
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    record = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(columns, types, strict=True)
    )
    return (
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM json_to_recordset(%s::json) AS s ({})")
        .format(sql.Identifier(table), names, names, record)
        .as_bytes(None)
    )


MONEY_FLOW_COPY: Final = copy_statement("money_flow_history", MONEY_FLOW_COLUMNS)
ODDS_COPY: Final = copy_statement("odds_history", ODDS_COLUMNS)
MONEY_FLOW_INSERT: Final = insert_statement("money_flow_history", MONEY_FLOW_COLUMNS, _MONEY_FLOW_TYPES)
ODDS_INSERT: Final = insert_statement("odds_history", ODDS_COLUMNS, _ODDS_TYPES)
