-- Work orders, the timeline of every signal's decision, and the forge outbox.
-- The same tables, columns and indexes as migrations/sqlite/0002_workorders.sql;
-- PostgreSQL types. Times are BIGINT microseconds since the Unix epoch (UTC).

-- Why a delivery could not be processed (its signals do not decode); NULL when fine.
ALTER TABLE deliveries ADD COLUMN process_error TEXT;

-- One row per work-order key. The lifecycle state (src/triage/lifecycle.rs `State`) is
-- one JSON document; the columns beside it are what queries need.
CREATE TABLE work_orders (
    id                    BIGSERIAL PRIMARY KEY,
    -- prod/pets/deployment/store-front: unique, so two replicas cannot make two.
    key                   TEXT    NOT NULL UNIQUE,
    -- The short forge label (labels.key_prefix + hash).
    key_label             TEXT    NOT NULL,
    -- quiet | pending | open | resolved | closed (mirrors state.phase)
    phase                 TEXT    NOT NULL,
    -- When the scheduler must look again (debounce deadline, recheck, close); NULL: never.
    next_check            BIGINT,
    -- The current issue, set by the outbox when its create succeeds.
    issue_repo            TEXT,
    issue_number          BIGINT,
    issue_url             TEXT,
    -- The issue the current one follows (a failure back after the reopen window).
    previous_issue_repo   TEXT,
    previous_issue_number BIGINT,
    previous_issue_url    TEXT,
    state                 TEXT    NOT NULL,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL
);

CREATE INDEX work_orders_due ON work_orders (next_check) WHERE next_check IS NOT NULL;

-- Every journaled signal lands here exactly once (unique delivery_id + signal_index),
-- with the decision taken, in the timeline of the one work order it was correlated to.
-- Scheduler decisions (deadline, recheck, close) have no delivery.
CREATE TABLE timeline (
    id            BIGSERIAL PRIMARY KEY,
    work_order_id BIGINT  NOT NULL REFERENCES work_orders (id),
    delivery_id   BIGINT  REFERENCES deliveries (id),
    signal_index  BIGINT,
    at            BIGINT  NOT NULL,
    -- Decision kinds, comma-separated: 'wait', 'open', 'route_change,comment' …
    decision      TEXT    NOT NULL,
    -- JSON: the decisions in full, the signal's identity and summary, the route.
    detail        TEXT    NOT NULL,
    CHECK ((delivery_id IS NULL) = (signal_index IS NULL))
);

CREATE UNIQUE INDEX timeline_signal ON timeline (delivery_id, signal_index)
    WHERE delivery_id IS NOT NULL;
CREATE INDEX timeline_work_order ON timeline (work_order_id, id);

-- Forge operations, written in the same transaction as the decision that caused them,
-- performed in id order per work order.
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    work_order_id BIGINT  NOT NULL REFERENCES work_orders (id),
    -- create | comment | set_state | add_labels | remove_labels
    op            TEXT    NOT NULL,
    -- JSON (src/pipeline/plan.rs `Operation`), rendered at decision time.
    payload       TEXT    NOT NULL,
    -- pending | done | parked
    status        TEXT    NOT NULL,
    attempts      BIGINT  NOT NULL,
    -- Earliest next attempt (backoff, retry-after).
    not_before    BIGINT  NOT NULL,
    -- A worker holds the operation until then; after it, another may take it over.
    leased_until  BIGINT,
    -- The last failure, or why it was parked.
    last_error    TEXT,
    created_at    BIGINT  NOT NULL,
    finished_at   BIGINT
);

CREATE INDEX outbox_pending ON outbox (work_order_id, id) WHERE status = 'pending';
CREATE INDEX outbox_pending_order ON outbox (id) WHERE status = 'pending';
CREATE INDEX outbox_parked ON outbox (id) WHERE status = 'parked';
