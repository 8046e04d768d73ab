-- Moves worth a bettor's attention (issue 14): every move of a committed poll at or above the
-- indicator threshold (rest-api.md §4.1: values of at least 5) is kept as an alert candidate.
-- Users' indicator ranges classify them when they are read (GET /api/alerts), so one stored row
-- serves every user, and a user who disables a range simply stops seeing its alerts.
--
-- Idempotent per (race, runner, kind, bucket): a re-delivered poll, or a later poll in the same
-- bucket, creates none; the first poll that crossed the threshold keeps its value and time.
-- alert_id grows in commit order, so it is the feed's cursor.

CREATE TABLE race_alerts (
    alert_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    race_id           text NOT NULL REFERENCES races (race_id) ON DELETE CASCADE,
    entrant_id        text NOT NULL REFERENCES entrants (entrant_id) ON DELETE CASCADE,
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
