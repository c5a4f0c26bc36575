-- The delivery journal (see migrations/sqlite/0001_journal.sql for the meaning of each
-- column). Same table, columns and indexes; PostgreSQL types.

CREATE TABLE deliveries (
    id            BIGSERIAL PRIMARY KEY,
    source        TEXT   NOT NULL,
    received_at   BIGINT NOT NULL,
    sender        TEXT   NOT NULL,
    request_id    TEXT   NOT NULL,
    body_sha256   TEXT   NOT NULL,
    body          BYTEA  NOT NULL,
    signals       TEXT   NOT NULL,
    signal_count  BIGINT NOT NULL,
    processed_at  BIGINT
);

CREATE INDEX deliveries_dedup ON deliveries (source, body_sha256, received_at);
CREATE INDEX deliveries_unprocessed ON deliveries (id) WHERE processed_at IS NULL;
