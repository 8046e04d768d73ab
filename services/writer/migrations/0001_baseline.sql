-- Raceday baseline schema (spec/storage.md). Money is bigint cents, statuses are checked,
-- history cascades from meetings down to the time series. No partitions here: they are
-- created at run time per NZ racing day (services/writer/partitions.py).

CREATE TABLE meetings (
    meeting_id          text PRIMARY KEY,
    meeting_name        text NOT NULL,
    date                date NOT NULL,
    country             text NOT NULL,
    state               text,
    category            text NOT NULL CHECK (category IN ('T', 'H', 'G')),
    race_type           text NOT NULL GENERATED ALWAYS AS (
                            CASE category
                                WHEN 'T' THEN 'thoroughbred'
                                WHEN 'H' THEN 'harness'
                                WHEN 'G' THEN 'greyhound'
                            END) STORED,
    category_name       text,
    track_condition     text,
    weather             text,
    tote_status         text,
    tote_meeting_number integer,
    status              text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'completed', 'cancelled')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- Meetings of a day (ListMeetings).
CREATE INDEX meetings_date_idx ON meetings (date);

CREATE TABLE races (
    race_id           text PRIMARY KEY,
    meeting_id        text NOT NULL REFERENCES meetings (meeting_id) ON DELETE CASCADE,
    race_number       integer NOT NULL CHECK (race_number >= 0),
    name              text NOT NULL,
    status            text NOT NULL
                          CHECK (status IN ('open', 'closed', 'interim', 'final', 'abandoned', 'unknown')),
    status_raw        text,
    start_time        timestamptz NOT NULL,
    actual_start      timestamptz,
    race_date_nz      date NOT NULL,
    start_time_nz     text,
    tote_start_time   text,
    type              text CHECK (type IN ('T', 'H', 'G')),
    country           text,
    state             text,
    distance          integer,
    track_condition   text,
    track_surface     text,
    track_direction   text,
    weather           text,
    rail_position     text,
    race_class        text,
    entrant_count     integer,
    field_size        integer,
    positions_paid    integer,
    total_prize_money bigint,
    silk_url          text,
    silk_base_url     text,
    video_channels    jsonb,
    protest           boolean NOT NULL DEFAULT false,
    protest_reason    text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- Races of a meeting in order; meeting status recompute; the meeting foreign key's cascade.
CREATE INDEX races_meeting_number_idx ON races (meeting_id, race_number);
-- Scheduler selection, upcoming, next scheduled, navigation.
CREATE INDEX races_start_time_idx ON races (start_time);

CREATE TABLE entrants (
    entrant_id            text PRIMARY KEY,
    race_id               text NOT NULL REFERENCES races (race_id) ON DELETE CASCADE,
    runner_number         integer NOT NULL,
    name                  text NOT NULL,
    barrier               integer,
    barrier_position      text,
    jockey                text,
    trainer_name          text,
    silk_colours          text,
    silk_url_64x64        text,
    silk_url_128x128      text,
    is_scratched          boolean NOT NULL DEFAULT false,
    is_late_scratched     boolean NOT NULL DEFAULT false,
    scratch_time          timestamptz,
    favourite             boolean NOT NULL DEFAULT false,
    mover                 boolean NOT NULL DEFAULT false,
    runner_change         jsonb,
    fixed_win_odds        numeric(10, 2) CHECK (fixed_win_odds > 0),
    fixed_place_odds      numeric(10, 2) CHECK (fixed_place_odds > 0),
    pool_win_odds         numeric(10, 2) CHECK (pool_win_odds > 0),
    pool_place_odds       numeric(10, 2) CHECK (pool_place_odds > 0),
    hold_percentage       numeric(5, 2),
    bet_percentage        numeric(5, 2),
    win_pool_percentage   numeric(5, 2),
    place_pool_percentage numeric(5, 2),
    win_pool_amount       bigint,
    place_pool_amount     bigint,
    money_flow_at         timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- Entrants of a race in order; the race foreign key's cascade.
CREATE INDEX entrants_race_runner_idx ON entrants (race_id, runner_number);

CREATE TABLE race_pools (
    race_id             text PRIMARY KEY REFERENCES races (race_id) ON DELETE CASCADE,
    win_pool_total      bigint NOT NULL DEFAULT 0 CHECK (win_pool_total >= 0),
    place_pool_total    bigint NOT NULL DEFAULT 0 CHECK (place_pool_total >= 0),
    quinella_pool_total bigint NOT NULL DEFAULT 0 CHECK (quinella_pool_total >= 0),
    trifecta_pool_total bigint NOT NULL DEFAULT 0 CHECK (trifecta_pool_total >= 0),
    exacta_pool_total   bigint NOT NULL DEFAULT 0 CHECK (exacta_pool_total >= 0),
    first4_pool_total   bigint NOT NULL DEFAULT 0 CHECK (first4_pool_total >= 0),
    total_race_pool     bigint NOT NULL,
    currency            text NOT NULL DEFAULT '$',
    extracted_pools     smallint NOT NULL CHECK (extracted_pools BETWEEN 0 AND 6),
    data_quality_score  smallint NOT NULL CHECK (data_quality_score BETWEEN 0 AND 100),
    source              text NOT NULL CHECK (source IN ('tote_pools', 'dividends')),
    last_updated        timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT race_pools_total_check CHECK (
        total_race_pool = win_pool_total + place_pool_total + quinella_pool_total
                          + trifecta_pool_total + exacta_pool_total + first4_pool_total)
);

CREATE TABLE race_results (
    race_id           text PRIMARY KEY REFERENCES races (race_id) ON DELETE CASCADE,
    results_available boolean NOT NULL DEFAULT false,
    results_data      jsonb,
    dividends_data    jsonb,
    fixed_odds_data   jsonb,
    result_status     text CHECK (result_status IN ('interim', 'final', 'protest')),
    photo_finish      boolean NOT NULL DEFAULT false,
    stewards_inquiry  boolean NOT NULL DEFAULT false,
    protest_lodged    boolean NOT NULL DEFAULT false,
    result_time       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The identity of every written poll, (race_id, polled_at): inserted first in each race
-- write so that a second delivery of the same update writes nothing.
CREATE TABLE race_polls (
    race_id    text NOT NULL REFERENCES races (race_id) ON DELETE CASCADE,
    polled_at  timestamptz NOT NULL,
    baseline   boolean NOT NULL DEFAULT false,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (race_id, polled_at)
);
-- Newest race write (GetStatus, data age) and retention of old poll identities.
CREATE INDEX race_polls_written_at_idx ON race_polls (written_at);

CREATE TABLE user_alert_configs (
    indicator_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              text NOT NULL,
    indicator_type       text NOT NULL CHECK (indicator_type = 'percentage_range'),
    percentage_range_min numeric(5, 2) NOT NULL
                             CHECK (percentage_range_min >= 0 AND percentage_range_min <= 100),
    percentage_range_max numeric(5, 2),
    color                char(7) NOT NULL CHECK (color ~ '^#[0-9A-F]{6}$'),
    is_default           boolean NOT NULL DEFAULT false,
    enabled              boolean NOT NULL DEFAULT true,
    display_order        smallint NOT NULL CHECK (display_order BETWEEN 1 AND 6),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_alert_configs_max_check CHECK (
        percentage_range_max IS NULL
        OR (percentage_range_max <= 100 AND percentage_range_max > percentage_range_min)),
    -- A user's indicators in order; upserts by (user, display order).
    CONSTRAINT user_alert_configs_user_order_key UNIQUE (user_id, display_order)
);

CREATE TABLE user_alert_settings (
    user_id                text PRIMARY KEY,
    audible_alerts_enabled boolean NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE job_runs (
    job         text NOT NULL,
    run_key     text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
    stats       jsonb,
    PRIMARY KEY (job, started_at)
);

-- Time series: append-only, partitioned by NZ racing day on event_timestamp (= polled_at).
CREATE SEQUENCE money_flow_history_id_seq AS bigint;

CREATE TABLE money_flow_history (
    id                       bigint NOT NULL DEFAULT nextval('money_flow_history_id_seq'),
    race_id                  text NOT NULL,
    entrant_id               text NOT NULL REFERENCES entrants (entrant_id) ON DELETE CASCADE,
    event_timestamp          timestamptz NOT NULL,
    source_generated_at      timestamptz,
    advertised_start         timestamptz NOT NULL,
    time_to_start            integer NOT NULL,
    time_interval            integer NOT NULL,
    interval_type            text NOT NULL CHECK (interval_type IN ('5m', '2m', '30s', 'live')),
    hold_percentage          numeric(5, 2),
    bet_percentage           numeric(5, 2),
    win_pool_total           bigint NOT NULL,
    place_pool_total         bigint NOT NULL,
    win_pool_amount          bigint NOT NULL,
    place_pool_amount        bigint NOT NULL,
    total_pool_amount        bigint NOT NULL,
    win_pool_percentage      numeric(5, 2),
    place_pool_percentage    numeric(5, 2),
    incremental_win_amount   bigint NOT NULL,
    incremental_place_amount bigint NOT NULL,
    is_baseline              boolean NOT NULL,
    fixed_win_odds           numeric(10, 2),
    fixed_place_odds         numeric(10, 2),
    pool_win_odds            numeric(10, 2),
    pool_place_odds          numeric(10, 2),
    created_at               timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (event_timestamp);
ALTER SEQUENCE money_flow_history_id_seq OWNED BY money_flow_history.id;
-- Prior-state lookup, timeline, capped entrant history, cascade deletes.
CREATE INDEX money_flow_history_entrant_bucket_idx
    ON money_flow_history (entrant_id, time_interval, event_timestamp DESC);

CREATE SEQUENCE odds_history_id_seq AS bigint;

CREATE TABLE odds_history (
    id              bigint NOT NULL DEFAULT nextval('odds_history_id_seq'),
    race_id         text NOT NULL,
    entrant_id      text NOT NULL REFERENCES entrants (entrant_id) ON DELETE CASCADE,
    type            text NOT NULL CHECK (type IN ('fixed_win', 'fixed_place', 'pool_win', 'pool_place')),
    odds            numeric(10, 2),
    event_timestamp timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (event_timestamp);
ALTER SEQUENCE odds_history_id_seq OWNED BY odds_history.id;
-- Last stored odds, capped entrant history, cascade deletes.
CREATE INDEX odds_history_entrant_type_idx ON odds_history (entrant_id, type, event_timestamp DESC);
