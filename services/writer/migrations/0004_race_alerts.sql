-- Moves worth a bettor's attention (issue 14): every move of a committed poll at or above the
-- indicator threshold (rest-api.md §4.1: values of at least 5) is kept as an alert candidate.
-- Users' indicator ranges classify them when they are read (GET /api/alerts), so one stored row
-- serves every user, and a user who disables a range simply stops seeing its alerts.
--
-- Idempotent per (race, runner, kind, bucket): a re-delivered poll, or a later poll in the same
-- bucket, creates none; the first poll that crossed the threshold keeps its value and time.
-- alert_id grows in commit order, so it is the feed's cursor.
--
-- No foreign keys: each is one more lookup and row lock per alert inside the poll's write (about
-- 9 µs a row here, while issue 14 allows move detection 0.3 ms per write, and a poll can create
-- a dozen alerts). Rows are only ever added by raceday_write_poll, whose document the Rust core
-- checked to name only entrants of the same update, written by the same statement just before;
-- races and entrants are never deleted by the application (a manual purge deletes a race's
-- alerts with it: DELETE FROM race_alerts WHERE race_id = ...).

CREATE TABLE race_alerts (
    alert_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    race_id           text NOT NULL,
    entrant_id        text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('win_money', 'place_money', 'win_price')),
    time_interval     integer NOT NULL,
    previous_interval integer NOT NULL,
    value             double precision NOT NULL CHECK (value >= 5),
    polled_at         timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (race_id, entrant_id, kind, time_interval)
);
-- The feed: a day's alerts newest first (polled_at window, then alert_id as the cursor).
CREATE INDEX race_alerts_polled_at_idx ON race_alerts (polled_at DESC, alert_id DESC);

-- The write of a poll (0002_write_poll.sql) stores its alerts in the same transaction: one more
-- argument, p_alerts (the JSON array of alert candidates the Rust core rendered: entrant_id,
-- kind, time_interval, previous_interval, value), step 6b below, and two more results: the
-- number of alerts created and their kinds (the writer counts them per kind). The change
-- announced on `raceday_changes` carries the number as `alerts` (RaceChange.alerts). Every
-- other step is as in 0002. The old signature is dropped, not overloaded: a caller with the
-- old argument list must fail loudly rather than write a poll without its alerts.
DROP FUNCTION raceday_write_poll(text, timestamptz, timestamptz, boolean, text, json, json, json, json,
                                 json, json, json);

CREATE FUNCTION raceday_write_poll(
    p_race_id       text,
    p_polled_at     timestamptz,
    p_generated_at  timestamptz,
    p_baseline      boolean,
    p_lock_timeout  text,
    p_meeting       json,
    p_race          json,
    p_entrants      json,
    p_money_flow    json,
    p_odds          json,
    p_pools         json,
    p_results       json,
    p_alerts        json,
    OUT races_written    integer,
    OUT entrants_written integer,
    OUT money_flow_rows  integer,
    OUT odds_rows        integer,
    OUT pools_written    boolean,
    OUT results_written  boolean,
    OUT change_id        bigint,
    OUT committed_at     timestamptz,
    OUT alerts           integer,
    OUT alert_kinds      text[]
)
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_meeting_id      text := p_race->>'meeting_id';
    v_status          text := p_race->>'status';
    v_previous_status text;
    v_rows            integer;
BEGIN
    -- 1. The statement timeout is the pooled session's; the lock timeout is per write.
    PERFORM set_config('lock_timeout', p_lock_timeout, true);

    -- 2. Meeting: a minimal row when unknown, else only the descriptive fields a race carries.
    INSERT INTO meetings (meeting_id, meeting_name, date, country, state, category, category_name,
                          track_condition, weather)
    SELECT m.meeting_id, m.meeting_name, m.date, m.country, m.state, m.category, m.category_name,
           m.track_condition, m.weather
    FROM json_to_record(p_meeting) AS m (meeting_id text, meeting_name text, date date, country text,
                                         state text, category text, category_name text,
                                         track_condition text, weather text)
    ON CONFLICT (meeting_id) DO NOTHING;

    -- A plain UPDATE with the change in its WHERE locks nothing when nothing changed, so
    -- concurrent writes of one meeting's races do not queue behind each other.
    UPDATE meetings AS t
    SET track_condition = COALESCE(m.track_condition, t.track_condition),
        weather = COALESCE(m.weather, t.weather),
        updated_at = now()
    FROM json_to_record(p_meeting) AS m (meeting_id text, track_condition text, weather text)
    WHERE t.meeting_id = m.meeting_id
      AND (m.track_condition IS NOT NULL OR m.weather IS NOT NULL)
      AND (t.track_condition, t.weather) IS DISTINCT FROM
          (COALESCE(m.track_condition, t.track_condition), COALESCE(m.weather, t.weather));

    -- 3. Race.
    SELECT status INTO v_previous_status FROM races WHERE race_id = p_race_id;

    INSERT INTO races AS t (race_id, meeting_id, race_number, name, status, status_raw, start_time,
                            actual_start, race_date_nz, start_time_nz, tote_start_time, type, country,
                            state, distance, track_condition, track_surface, track_direction, weather,
                            rail_position, race_class, entrant_count, field_size, positions_paid,
                            total_prize_money, silk_url, silk_base_url, video_channels, protest_reason,
                            protest)
    SELECT p_race_id, r.meeting_id, r.race_number, r.name, r.status, r.status_raw, r.start_time,
           r.actual_start, r.race_date_nz, r.start_time_nz, r.tote_start_time, r.type, r.country,
           r.state, r.distance, r.track_condition, r.track_surface, r.track_direction, r.weather,
           r.rail_position, r.race_class, r.entrant_count, r.field_size, r.positions_paid,
           r.total_prize_money, r.silk_url, r.silk_base_url, r.video_channels, r.protest_reason,
           COALESCE(r.protest, false)
    FROM json_to_record(p_race) AS r (meeting_id text, race_number integer, name text, status text,
                                      status_raw text, start_time timestamptz, actual_start timestamptz,
                                      race_date_nz date, start_time_nz text, tote_start_time text,
                                      type text, country text, state text, distance integer,
                                      track_condition text, track_surface text, track_direction text,
                                      weather text, rail_position text, race_class text,
                                      entrant_count integer, field_size integer, positions_paid integer,
                                      total_prize_money bigint, silk_url text, silk_base_url text,
                                      video_channels jsonb, protest_reason text, protest boolean)
    ON CONFLICT (race_id) DO UPDATE SET
        meeting_id = EXCLUDED.meeting_id,
        race_number = EXCLUDED.race_number,
        name = EXCLUDED.name,
        status = EXCLUDED.status,
        status_raw = COALESCE(EXCLUDED.status_raw, t.status_raw),
        start_time = EXCLUDED.start_time,
        actual_start = COALESCE(EXCLUDED.actual_start, t.actual_start),
        race_date_nz = EXCLUDED.race_date_nz,
        start_time_nz = COALESCE(EXCLUDED.start_time_nz, t.start_time_nz),
        tote_start_time = COALESCE(EXCLUDED.tote_start_time, t.tote_start_time),
        type = COALESCE(EXCLUDED.type, t.type),
        country = COALESCE(EXCLUDED.country, t.country),
        state = COALESCE(EXCLUDED.state, t.state),
        distance = COALESCE(EXCLUDED.distance, t.distance),
        track_condition = COALESCE(EXCLUDED.track_condition, t.track_condition),
        track_surface = COALESCE(EXCLUDED.track_surface, t.track_surface),
        track_direction = COALESCE(EXCLUDED.track_direction, t.track_direction),
        weather = COALESCE(EXCLUDED.weather, t.weather),
        rail_position = COALESCE(EXCLUDED.rail_position, t.rail_position),
        race_class = COALESCE(EXCLUDED.race_class, t.race_class),
        entrant_count = COALESCE(EXCLUDED.entrant_count, t.entrant_count),
        field_size = COALESCE(EXCLUDED.field_size, t.field_size),
        positions_paid = COALESCE(EXCLUDED.positions_paid, t.positions_paid),
        total_prize_money = COALESCE(EXCLUDED.total_prize_money, t.total_prize_money),
        silk_url = COALESCE(EXCLUDED.silk_url, t.silk_url),
        silk_base_url = COALESCE(EXCLUDED.silk_base_url, t.silk_base_url),
        video_channels = COALESCE(EXCLUDED.video_channels, t.video_channels),
        protest_reason = COALESCE(EXCLUDED.protest_reason, t.protest_reason),
        -- Event payloads carry no protest flag (the meetings list does): absent keeps it.
        protest = COALESCE((p_race->>'protest')::boolean, t.protest),
        updated_at = now()
    WHERE (t.meeting_id, t.race_number, t.name, t.status, t.status_raw, t.start_time, t.actual_start,
           t.race_date_nz, t.start_time_nz, t.tote_start_time, t.type, t.country, t.state, t.distance,
           t.track_condition, t.track_surface, t.track_direction, t.weather, t.rail_position,
           t.race_class, t.entrant_count, t.field_size, t.positions_paid, t.total_prize_money,
           t.silk_url, t.silk_base_url, t.video_channels, t.protest_reason, t.protest)
          IS DISTINCT FROM
          (EXCLUDED.meeting_id, EXCLUDED.race_number, EXCLUDED.name, EXCLUDED.status,
           COALESCE(EXCLUDED.status_raw, t.status_raw), EXCLUDED.start_time,
           COALESCE(EXCLUDED.actual_start, t.actual_start), EXCLUDED.race_date_nz,
           COALESCE(EXCLUDED.start_time_nz, t.start_time_nz),
           COALESCE(EXCLUDED.tote_start_time, t.tote_start_time), COALESCE(EXCLUDED.type, t.type),
           COALESCE(EXCLUDED.country, t.country), COALESCE(EXCLUDED.state, t.state),
           COALESCE(EXCLUDED.distance, t.distance), COALESCE(EXCLUDED.track_condition, t.track_condition),
           COALESCE(EXCLUDED.track_surface, t.track_surface),
           COALESCE(EXCLUDED.track_direction, t.track_direction), COALESCE(EXCLUDED.weather, t.weather),
           COALESCE(EXCLUDED.rail_position, t.rail_position), COALESCE(EXCLUDED.race_class, t.race_class),
           COALESCE(EXCLUDED.entrant_count, t.entrant_count), COALESCE(EXCLUDED.field_size, t.field_size),
           COALESCE(EXCLUDED.positions_paid, t.positions_paid),
           COALESCE(EXCLUDED.total_prize_money, t.total_prize_money),
           COALESCE(EXCLUDED.silk_url, t.silk_url), COALESCE(EXCLUDED.silk_base_url, t.silk_base_url),
           COALESCE(EXCLUDED.video_channels, t.video_channels),
           COALESCE(EXCLUDED.protest_reason, t.protest_reason),
           COALESCE((p_race->>'protest')::boolean, t.protest));
    GET DIAGNOSTICS races_written = ROW_COUNT;

    -- The poll's identity: a second delivery of this update finds it and writes nothing.
    INSERT INTO race_polls (race_id, polled_at, baseline, generated_at)
    VALUES (p_race_id, p_polled_at, p_baseline, p_generated_at)
    ON CONFLICT (race_id, polled_at) DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows = 0 THEN
        RAISE EXCEPTION 'poll % of race % was already written', p_polled_at, p_race_id
            USING ERRCODE = 'RDDUP';
    END IF;

    -- 4. Entrants (all runners of the payload).
    INSERT INTO entrants AS t (entrant_id, race_id, runner_number, name, barrier, barrier_position, jockey,
                               trainer_name, silk_colours, silk_url_64x64, silk_url_128x128, is_scratched,
                               is_late_scratched, scratch_time, favourite, mover, runner_change,
                               fixed_win_odds, fixed_place_odds, pool_win_odds, pool_place_odds,
                               hold_percentage, bet_percentage, win_pool_percentage, place_pool_percentage,
                               win_pool_amount, place_pool_amount, money_flow_at)
    SELECT e.entrant_id, p_race_id, e.runner_number, e.name, e.barrier, e.barrier_position, e.jockey,
           e.trainer_name, e.silk_colours, e.silk_url_64x64, e.silk_url_128x128, e.is_scratched,
           e.is_late_scratched, e.scratch_time, e.favourite, e.mover, e.runner_change,
           e.fixed_win_odds, e.fixed_place_odds, e.pool_win_odds, e.pool_place_odds,
           e.hold_percentage, e.bet_percentage, e.win_pool_percentage, e.place_pool_percentage,
           e.win_pool_amount, e.place_pool_amount, e.money_flow_at
    FROM json_to_recordset(p_entrants) AS e (entrant_id text, runner_number integer, name text,
                                             barrier integer, barrier_position text, jockey text,
                                             trainer_name text, silk_colours text, silk_url_64x64 text,
                                             silk_url_128x128 text, is_scratched boolean,
                                             is_late_scratched boolean, scratch_time timestamptz,
                                             favourite boolean, mover boolean, runner_change jsonb,
                                             fixed_win_odds numeric(10,2), fixed_place_odds numeric(10,2),
                                             pool_win_odds numeric(10,2), pool_place_odds numeric(10,2),
                                             hold_percentage numeric(5,2), bet_percentage numeric(5,2),
                                             win_pool_percentage numeric(5,2),
                                             place_pool_percentage numeric(5,2), win_pool_amount bigint,
                                             place_pool_amount bigint, money_flow_at timestamptz)
    ON CONFLICT (entrant_id) DO UPDATE SET
        race_id = EXCLUDED.race_id,
        runner_number = EXCLUDED.runner_number,
        name = EXCLUDED.name,
        barrier = COALESCE(EXCLUDED.barrier, t.barrier),
        barrier_position = COALESCE(EXCLUDED.barrier_position, t.barrier_position),
        jockey = COALESCE(EXCLUDED.jockey, t.jockey),
        trainer_name = COALESCE(EXCLUDED.trainer_name, t.trainer_name),
        silk_colours = COALESCE(EXCLUDED.silk_colours, t.silk_colours),
        silk_url_64x64 = COALESCE(EXCLUDED.silk_url_64x64, t.silk_url_64x64),
        silk_url_128x128 = COALESCE(EXCLUDED.silk_url_128x128, t.silk_url_128x128),
        is_scratched = EXCLUDED.is_scratched,
        is_late_scratched = EXCLUDED.is_late_scratched,
        scratch_time = COALESCE(EXCLUDED.scratch_time, t.scratch_time),
        favourite = EXCLUDED.favourite,
        mover = EXCLUDED.mover,
        runner_change = COALESCE(EXCLUDED.runner_change, t.runner_change),
        fixed_win_odds = CASE WHEN p_baseline THEN COALESCE(EXCLUDED.fixed_win_odds, t.fixed_win_odds)
                              ELSE EXCLUDED.fixed_win_odds END,
        fixed_place_odds = CASE WHEN p_baseline THEN COALESCE(EXCLUDED.fixed_place_odds, t.fixed_place_odds)
                                ELSE EXCLUDED.fixed_place_odds END,
        pool_win_odds = CASE WHEN p_baseline THEN COALESCE(EXCLUDED.pool_win_odds, t.pool_win_odds)
                             ELSE EXCLUDED.pool_win_odds END,
        pool_place_odds = CASE WHEN p_baseline THEN COALESCE(EXCLUDED.pool_place_odds, t.pool_place_odds)
                               ELSE EXCLUDED.pool_place_odds END,
        hold_percentage = CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.hold_percentage
                               ELSE EXCLUDED.hold_percentage END,
        bet_percentage = CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.bet_percentage
                              ELSE EXCLUDED.bet_percentage END,
        win_pool_percentage = CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.win_pool_percentage
                                   ELSE EXCLUDED.win_pool_percentage END,
        place_pool_percentage = CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.place_pool_percentage
                                     ELSE EXCLUDED.place_pool_percentage END,
        win_pool_amount = CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.win_pool_amount
                               ELSE EXCLUDED.win_pool_amount END,
        place_pool_amount = CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.place_pool_amount
                                 ELSE EXCLUDED.place_pool_amount END,
        money_flow_at = COALESCE(EXCLUDED.money_flow_at, t.money_flow_at),
        updated_at = now()
    WHERE (t.race_id, t.runner_number, t.name, t.barrier, t.barrier_position, t.jockey, t.trainer_name,
           t.silk_colours, t.silk_url_64x64, t.silk_url_128x128, t.is_scratched, t.is_late_scratched,
           t.scratch_time, t.favourite, t.mover, t.runner_change, t.fixed_win_odds, t.fixed_place_odds,
           t.pool_win_odds, t.pool_place_odds, t.hold_percentage, t.bet_percentage,
           t.win_pool_percentage, t.place_pool_percentage, t.win_pool_amount, t.place_pool_amount,
           t.money_flow_at)
          IS DISTINCT FROM
          (EXCLUDED.race_id, EXCLUDED.runner_number, EXCLUDED.name, COALESCE(EXCLUDED.barrier, t.barrier),
           COALESCE(EXCLUDED.barrier_position, t.barrier_position), COALESCE(EXCLUDED.jockey, t.jockey),
           COALESCE(EXCLUDED.trainer_name, t.trainer_name), COALESCE(EXCLUDED.silk_colours, t.silk_colours),
           COALESCE(EXCLUDED.silk_url_64x64, t.silk_url_64x64),
           COALESCE(EXCLUDED.silk_url_128x128, t.silk_url_128x128), EXCLUDED.is_scratched,
           EXCLUDED.is_late_scratched, COALESCE(EXCLUDED.scratch_time, t.scratch_time),
           EXCLUDED.favourite, EXCLUDED.mover, COALESCE(EXCLUDED.runner_change, t.runner_change),
           CASE WHEN p_baseline THEN COALESCE(EXCLUDED.fixed_win_odds, t.fixed_win_odds)
                ELSE EXCLUDED.fixed_win_odds END,
           CASE WHEN p_baseline THEN COALESCE(EXCLUDED.fixed_place_odds, t.fixed_place_odds)
                ELSE EXCLUDED.fixed_place_odds END,
           CASE WHEN p_baseline THEN COALESCE(EXCLUDED.pool_win_odds, t.pool_win_odds)
                ELSE EXCLUDED.pool_win_odds END,
           CASE WHEN p_baseline THEN COALESCE(EXCLUDED.pool_place_odds, t.pool_place_odds)
                ELSE EXCLUDED.pool_place_odds END,
           CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.hold_percentage ELSE EXCLUDED.hold_percentage END,
           CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.bet_percentage ELSE EXCLUDED.bet_percentage END,
           CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.win_pool_percentage
                ELSE EXCLUDED.win_pool_percentage END,
           CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.place_pool_percentage
                ELSE EXCLUDED.place_pool_percentage END,
           CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.win_pool_amount ELSE EXCLUDED.win_pool_amount END,
           CASE WHEN EXCLUDED.money_flow_at IS NULL THEN t.place_pool_amount
                ELSE EXCLUDED.place_pool_amount END,
           COALESCE(EXCLUDED.money_flow_at, t.money_flow_at));
    GET DIAGNOSTICS entrants_written = ROW_COUNT;

    -- 5. Money-flow rows, in the order of the document (an empty or null document adds none).
    INSERT INTO money_flow_history (race_id, entrant_id, event_timestamp, source_generated_at,
                                    advertised_start, time_to_start, time_interval, interval_type,
                                    hold_percentage, bet_percentage, win_pool_total, place_pool_total,
                                    win_pool_amount, place_pool_amount, total_pool_amount,
                                    win_pool_percentage, place_pool_percentage, incremental_win_amount,
                                    incremental_place_amount, is_baseline, fixed_win_odds,
                                    fixed_place_odds, pool_win_odds, pool_place_odds)
    SELECT p_race_id, f.entrant_id, f.event_timestamp, f.source_generated_at, f.advertised_start,
           f.time_to_start, f.time_interval, f.interval_type, f.hold_percentage, f.bet_percentage,
           f.win_pool_total, f.place_pool_total, f.win_pool_amount, f.place_pool_amount,
           f.total_pool_amount, f.win_pool_percentage, f.place_pool_percentage,
           f.incremental_win_amount, f.incremental_place_amount, f.is_baseline, f.fixed_win_odds,
           f.fixed_place_odds, f.pool_win_odds, f.pool_place_odds
    FROM json_to_recordset(p_money_flow) AS f (entrant_id text, event_timestamp timestamptz,
                                               source_generated_at timestamptz,
                                               advertised_start timestamptz, time_to_start integer,
                                               time_interval integer, interval_type text,
                                               hold_percentage numeric(5,2), bet_percentage numeric(5,2),
                                               win_pool_total bigint, place_pool_total bigint,
                                               win_pool_amount bigint, place_pool_amount bigint,
                                               total_pool_amount bigint,
                                               win_pool_percentage numeric(5,2),
                                               place_pool_percentage numeric(5,2),
                                               incremental_win_amount bigint,
                                               incremental_place_amount bigint, is_baseline boolean,
                                               fixed_win_odds numeric(10,2), fixed_place_odds numeric(10,2),
                                               pool_win_odds numeric(10,2), pool_place_odds numeric(10,2));
    GET DIAGNOSTICS money_flow_rows = ROW_COUNT;

    -- 6. Changed odds (the transformer already decided which to write).
    INSERT INTO odds_history (race_id, entrant_id, type, odds, event_timestamp)
    SELECT p_race_id, o.entrant_id, o.type, o.odds, o.event_timestamp
    FROM json_to_recordset(p_odds) AS o (entrant_id text, type text, odds numeric(10,2),
                                         event_timestamp timestamptz);
    GET DIAGNOSTICS odds_rows = ROW_COUNT;

    -- 6b. Alerts: the poll's moves at or above the indicator threshold (the document holds only
    -- those; a baseline sends none), after the entrants they refer to. The first poll of a bucket
    -- that crossed the threshold keeps its alert: a later poll of the bucket adds none. Most polls
    -- have no candidate: they skip the statement.
    alert_kinds := '{}';
    IF json_array_length(p_alerts) > 0 THEN
        WITH created AS (
            INSERT INTO race_alerts (race_id, entrant_id, kind, time_interval, previous_interval, value,
                                     polled_at)
            SELECT p_race_id, a.entrant_id, a.kind, a.time_interval, a.previous_interval, a.value,
                   p_polled_at
            FROM json_to_recordset(p_alerts) AS a (entrant_id text, kind text, time_interval integer,
                                                   previous_interval integer, value double precision)
            ON CONFLICT (race_id, entrant_id, kind, time_interval) DO NOTHING
            RETURNING kind
        )
        SELECT COALESCE(array_agg(kind), '{}') INTO alert_kinds FROM created;
    END IF;
    alerts := cardinality(alert_kinds);

    -- 7. Pools: last_updated is the poll at which a total last changed (§1.4). A baseline only
    -- inserts (its ON CONFLICT condition is false).
    INSERT INTO race_pools AS t (race_id, win_pool_total, place_pool_total, quinella_pool_total,
                                 trifecta_pool_total, exacta_pool_total, first4_pool_total,
                                 total_race_pool, currency, extracted_pools, data_quality_score, source,
                                 last_updated)
    SELECT p_race_id, p.win_pool_total, p.place_pool_total, p.quinella_pool_total, p.trifecta_pool_total,
           p.exacta_pool_total, p.first4_pool_total, p.total_race_pool, p.currency, p.extracted_pools,
           p.data_quality_score, p.source, p.last_updated
    FROM json_to_record(p_pools) AS p (win_pool_total bigint, place_pool_total bigint,
                                       quinella_pool_total bigint, trifecta_pool_total bigint,
                                       exacta_pool_total bigint, first4_pool_total bigint,
                                       total_race_pool bigint, currency text, extracted_pools smallint,
                                       data_quality_score smallint, source text,
                                       last_updated timestamptz)
    WHERE p_pools IS NOT NULL
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
        last_updated = CASE
            WHEN (t.win_pool_total, t.place_pool_total, t.quinella_pool_total, t.trifecta_pool_total,
                  t.exacta_pool_total, t.first4_pool_total)
                 IS DISTINCT FROM
                 (EXCLUDED.win_pool_total, EXCLUDED.place_pool_total, EXCLUDED.quinella_pool_total,
                  EXCLUDED.trifecta_pool_total, EXCLUDED.exacta_pool_total, EXCLUDED.first4_pool_total)
            THEN EXCLUDED.last_updated ELSE t.last_updated END,
        updated_at = now()
    WHERE NOT p_baseline
      AND (t.win_pool_total, t.place_pool_total, t.quinella_pool_total, t.trifecta_pool_total,
           t.exacta_pool_total, t.first4_pool_total, t.total_race_pool, t.currency, t.extracted_pools,
           t.data_quality_score, t.source)
          IS DISTINCT FROM
          (EXCLUDED.win_pool_total, EXCLUDED.place_pool_total, EXCLUDED.quinella_pool_total,
           EXCLUDED.trifecta_pool_total, EXCLUDED.exacta_pool_total, EXCLUDED.first4_pool_total,
           EXCLUDED.total_race_pool, EXCLUDED.currency, EXCLUDED.extracted_pools,
           EXCLUDED.data_quality_score, EXCLUDED.source);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    pools_written := v_rows > 0;

    -- 8. Results: the three flags are sticky (money-flow §10); documents absent from a poll are
    -- kept. A baseline only inserts.
    INSERT INTO race_results AS t (race_id, results_available, results_data, dividends_data,
                                   fixed_odds_data, result_status, photo_finish, stewards_inquiry,
                                   protest_lodged, result_time)
    SELECT p_race_id, r.results_available, r.results_data, r.dividends_data, r.fixed_odds_data,
           r.result_status, r.photo_finish, r.stewards_inquiry, r.protest_lodged, r.result_time
    FROM json_to_record(p_results) AS r (results_available boolean, results_data jsonb,
                                         dividends_data jsonb, fixed_odds_data jsonb,
                                         result_status text, photo_finish boolean,
                                         stewards_inquiry boolean, protest_lodged boolean,
                                         result_time timestamptz)
    WHERE p_results IS NOT NULL
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
    WHERE NOT p_baseline
      AND (t.results_available, t.results_data, t.dividends_data, t.fixed_odds_data, t.result_status,
           t.photo_finish, t.stewards_inquiry, t.protest_lodged, t.result_time)
          IS DISTINCT FROM
          (EXCLUDED.results_available, COALESCE(EXCLUDED.results_data, t.results_data),
           COALESCE(EXCLUDED.dividends_data, t.dividends_data),
           COALESCE(EXCLUDED.fixed_odds_data, t.fixed_odds_data),
           COALESCE(EXCLUDED.result_status, t.result_status),
           t.photo_finish OR EXCLUDED.photo_finish, t.stewards_inquiry OR EXCLUDED.stewards_inquiry,
           t.protest_lodged OR EXCLUDED.protest_lodged, COALESCE(EXCLUDED.result_time, t.result_time));
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    results_written := v_rows > 0;

    -- 9. Meeting status from its races, when this race's status changed.
    IF v_previous_status IS DISTINCT FROM v_status THEN
        PERFORM raceday_recompute_meeting_status(ARRAY[v_meeting_id]);
    END IF;

    -- When the poll was committed: now, the function's last write (the commit follows at once).
    committed_at := clock_timestamp();
    UPDATE race_polls SET committed_at = raceday_write_poll.committed_at
    WHERE race_id = p_race_id AND polled_at = p_polled_at;

    change_id := nextval('raceday_change_seq');
    PERFORM pg_notify('raceday_changes', json_build_object(
        'id', change_id, 'race_id', p_race_id, 'meeting_id', v_meeting_id, 'polled_at', p_polled_at,
        'generated_at', p_generated_at, 'committed_at', committed_at, 'status', v_status,
        'money_flow_rows', money_flow_rows, 'odds_rows', odds_rows, 'baseline', p_baseline,
        'alerts', alerts)::text);
END
$fn$;
