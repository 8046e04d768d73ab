-- The raw-payload archive (issue 15): every event payload the fetcher received, kept with its
-- poll identity so that the transform can be re-run later (`raceday replay`).
--
-- Content-addressed: a payload is stored once per NZ racing day under the SHA-256 of its
-- uncompressed bytes, compressed with zstd; every poll refers to it by that hash, so an
-- unchanged snapshot polled twice is stored once. Both tables are partitioned by the NZ racing
-- day of the poll (`racing_day`, the Pacific/Auckland date of polled_at, computed by the writer
-- with services/common/nztime), one partition per day created by the same routine as the
-- series partitions (services/writer/partitions.py), with its own retention
-- (ARCHIVE_RETENTION_DAYS). The partition key is a `date`, so its bounds are plain dates: no
-- time zone can change their meaning. Like the series, no DEFAULT partition: a poll of a day
-- without a partition fails loudly and the writer creates it as recovery.
--
-- No foreign keys: the archive is what was received, independent of the entities (a race
-- deleted by retention or a purge keeps its raw polls until the archive's own retention).

CREATE TABLE archive_payloads (
    racing_day   date NOT NULL,
    payload_hash bytea NOT NULL CHECK (octet_length(payload_hash) = 32),
    -- Size of the uncompressed payload, and the zstd frame of it.
    raw_bytes    integer NOT NULL CHECK (raw_bytes >= 0),
    zstd_payload bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (racing_day, payload_hash)
) PARTITION BY RANGE (racing_day);
-- Already compressed: never try pglz on it again (EXTERNAL: out of line, uncompressed TOAST).
ALTER TABLE archive_payloads ALTER COLUMN zstd_payload SET STORAGE EXTERNAL;

CREATE TABLE archive_polls (
    racing_day        date NOT NULL,
    race_id           text NOT NULL,
    polled_at         timestamptz NOT NULL,
    -- A baseline poll (the day job's): replayed as a baseline write (no time series).
    baseline          boolean NOT NULL DEFAULT false,
    payload_hash      bytea NOT NULL CHECK (octet_length(payload_hash) = 32),
    -- How the body arrived (Content-Encoding) and its size on the wire.
    received_encoding text NOT NULL CHECK (received_encoding IN ('identity', 'gzip')),
    received_bytes    integer NOT NULL CHECK (received_bytes >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- Replay reads a day's polls in poll order; the key serves it and makes archiving idempotent.
    PRIMARY KEY (racing_day, race_id, polled_at)
) PARTITION BY RANGE (racing_day);
-- Replay's order over a range of days: by poll time.
CREATE INDEX archive_polls_polled_at_idx ON archive_polls (polled_at);
