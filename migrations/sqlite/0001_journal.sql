-- The delivery journal: every webhook delivery Triage acknowledged with 2xx, committed
-- before the answer. PostgreSQL keeps the same table and column names
-- (migrations/postgres/0001_journal.sql); only the types are dialect-specific.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC) so that window arithmetic
-- is plain integer comparison in every dialect.

CREATE TABLE deliveries (
    -- Monotonic, never reused (AUTOINCREMENT): downstream stages read in id order.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- 'alertmanager' | 'argocd'
    source        TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    -- Who sent it: 'token:1', 'basic:<user>', 'hmac', 'anonymous@<ip>'; never a secret.
    sender        TEXT    NOT NULL,
    -- The x-request-id the delivery was answered with (logs carry the same id).
    request_id    TEXT    NOT NULL,
    -- Lower-case hex SHA-256 of the raw body: the duplicate-delivery key with source.
    -- SQLite keeps the keys of the dedup window in memory (rebuilt from the newest
    -- rows at start) instead of an index: random hashes make index inserts dirty a
    -- page per delivery.
    body_sha256   TEXT    NOT NULL,
    -- The exact bytes received.
    body          BLOB    NOT NULL,
    -- JSON array of the parsed signals (src/signal.rs `Signal`).
    signals       TEXT    NOT NULL,
    signal_count  INTEGER NOT NULL,
    -- Set by the pipeline in the same transaction that records what it did with the
    -- delivery; NULL means not yet processed.
    processed_at  INTEGER
);

-- "Unprocessed, in id order" stays cheap however long the journal grows.
CREATE INDEX deliveries_unprocessed ON deliveries (id) WHERE processed_at IS NULL;
