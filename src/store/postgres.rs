//! PostgreSQL: the journal and the work store for several replicas (HA).
//!
//! Same tables, columns and migration versions as SQLite. What makes replicas safe:
//! - deliveries, due work orders and outbox operations are claimed
//!   `FOR UPDATE SKIP LOCKED`, so replicas share the work without waiting on each other;
//! - work-order keys are unique and rows are locked in key order, so two replicas that
//!   see the same alert (an Alertmanager HA pair) serialize on one row and the second
//!   sees the first one's decision (a duplicate);
//! - an outbox operation is leased; a replica that dies loses the lease, and the
//!   operation runs elsewhere (its create first looks for the key's marker);
//! - journal deduplication holds a transaction-scoped advisory lock on the body hash,
//!   so the same delivery posted to two replicas at once is stored once.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

use super::sqlite_work::{operation_row, timeline_row};
use super::work::{
    ClaimedOperation, OperationRow, Reconciled, TimelineEntry, TimelineRow, WorkOrderKeyRef,
    WorkOrderRow, WorkStats, WorkStore, WorkTx, decode_operation, decode_state, duration_micros,
    encode_operation, encode_state, issue_from_columns, should_map, timeline_detail,
};
use super::{
    Appended, DeliveryId, Journal, JournalOptions, JournalStats, NewDelivery, StoreError,
    StoredDelivery, from_micros, micros, source_from_str,
};
use crate::forge::{FoundIssue, IssueRef};
use crate::metrics::JournalMetrics;
use crate::pipeline::plan::Operation;
use crate::triage::lifecycle::{Phase, State};

const DELIVERY_COLUMNS: &str = "id, source, received_at, sender, request_id, body_sha256, body, \
     signals, signal_count, processed_at";
const WO_COLUMNS: &str = "id, key, key_label, state, issue_repo, issue_number, issue_url, \
     previous_issue_repo, previous_issue_number, previous_issue_url, created_at, updated_at";

fn db(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::backend(format!("postgres: {what}"), e)
}

/// Connects (pool), migrates and returns the pool both the journal and the work store
/// use. `url` is a secret: it never appears in errors.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    use anyhow::Context as _;
    let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| {
        anyhow::anyhow!(
            "store.postgres_url is not a valid PostgreSQL URL: {}",
            redact_url_error(&e)
        )
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to PostgreSQL (store.postgres_url): {}",
                redact_url_error(&e)
            )
        })?;
    super::migrations::apply_postgres(&pool, super::migrations::POSTGRES)
        .await
        .context("cannot migrate the PostgreSQL schema")?;
    Ok(pool)
}

/// sqlx errors may quote the URL; keep only the kind of failure.
fn redact_url_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(_) => "invalid connection settings".into(),
        sqlx::Error::Database(d) => d.message().to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(_) => "TLS error".into(),
        sqlx::Error::PoolTimedOut => "timed out".into(),
        other => format!("{}", other)
            .split("postgres://")
            .next()
            .unwrap_or("error")
            .to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Journal

/// PostgreSQL implementation of [`Journal`]: one transaction per delivery (PostgreSQL
/// groups concurrent commits' WAL flushes itself).
pub struct PgJournal {
    pool: PgPool,
    options: JournalOptions,
    metrics: JournalMetrics,
    closed: std::sync::atomic::AtomicBool,
}

impl PgJournal {
    pub fn new(pool: PgPool, options: JournalOptions, metrics: JournalMetrics) -> Self {
        PgJournal {
            pool,
            options,
            metrics,
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    async fn append_once(&self, d: &NewDelivery) -> Result<Appended, StoreError> {
        let window_us = duration_micros(self.options.dedup_window);
        let received = micros(d.received_at);
        let mut tx = self.pool.begin().await.map_err(db("begin"))?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("{}:{}", d.source.as_str(), d.body_sha256))
            .execute(&mut *tx)
            .await
            .map_err(db("lock the body hash"))?;
        let earlier: Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, received_at FROM deliveries
             WHERE source = $1 AND body_sha256 = $2 AND received_at >= $3
             ORDER BY id DESC LIMIT 1",
        )
        .bind(d.source.as_str())
        .bind(&d.body_sha256)
        .bind(received.saturating_sub(window_us))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("check for a duplicate"))?;
        let outcome = match earlier {
            Some((id, at)) => Appended::Duplicate {
                original: DeliveryId(id),
                original_received_at: from_micros(at)?,
            },
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO deliveries (source, received_at, sender, request_id, body_sha256,
                         body, signals, signal_count)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(d.source.as_str())
                .bind(received)
                .bind(&d.sender)
                .bind(&d.request_id)
                .bind(&d.body_sha256)
                .bind(&d.body[..])
                .bind(&d.signals_json)
                .bind(d.signal_count as i64)
                .fetch_one(&mut *tx)
                .await
                .map_err(db("insert a delivery"))?;
                Appended::Stored(DeliveryId(id))
            }
        };
        tx.commit().await.map_err(db("commit a delivery"))?;
        Ok(outcome)
    }
}

#[async_trait]
impl Journal for PgJournal {
    async fn append(&self, delivery: NewDelivery) -> Result<Appended, StoreError> {
        self.check_open()?;
        let started = Instant::now();
        match self.append_once(&delivery).await {
            Ok(a) => {
                self.metrics.commit(started.elapsed().as_secs_f64(), 1);
                Ok(a)
            }
            Err(e) => {
                self.metrics.commit_error();
                Err(e)
            }
        }
    }

    async fn get(&self, id: DeliveryId) -> Result<Option<StoredDelivery>, StoreError> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read a delivery"))?
            .map(|r| delivery_from_row(&r))
            .transpose()
    }

    async fn list(
        &self,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        let sql =
            format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id > $1 ORDER BY id LIMIT $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.map_or(0, |a| a.0))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db("read deliveries"))?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    async fn unprocessed(&self, limit: usize) -> Result<Vec<StoredDelivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE processed_at IS NULL ORDER BY id LIMIT $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db("read deliveries"))?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    async fn mark_processed(&self, ids: &[DeliveryId], at: Timestamp) -> Result<(), StoreError> {
        let ids: Vec<i64> = ids.iter().map(|d| d.0).collect();
        sqlx::query(
            "UPDATE deliveries SET processed_at = $1 WHERE id = ANY($2) AND processed_at IS NULL",
        )
        .bind(micros(at))
        .bind(ids)
        .execute(&self.pool)
        .await
        .map_err(db("mark deliveries processed"))?;
        Ok(())
    }

    async fn stats(&self) -> Result<JournalStats, StoreError> {
        let (deliveries, unprocessed): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM deliveries),
                    (SELECT count(*) FROM deliveries WHERE processed_at IS NULL)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("count deliveries"))?;
        Ok(JournalStats {
            deliveries: deliveries.max(0) as u64,
            unprocessed: unprocessed.max(0) as u64,
        })
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.check_open()?;
        let read_only: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&self.pool)
            .await
            .map_err(db("check the server"))?;
        if read_only {
            return Err(StoreError::Corrupt(
                "PostgreSQL is a read-only standby (in recovery); point store.postgres_url at the primary"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

fn delivery_from_row(r: &PgRow) -> Result<StoredDelivery, StoreError> {
    let get = db("decode a delivery");
    let id: i64 = r.try_get(0).map_err(&get)?;
    let source: String = r.try_get(1).map_err(&get)?;
    Ok(StoredDelivery {
        id: DeliveryId(id),
        source: source_from_str(&source)?,
        received_at: from_micros(r.try_get(2).map_err(&get)?)?,
        sender: r.try_get(3).map_err(&get)?,
        request_id: r.try_get(4).map_err(&get)?,
        body_sha256: r.try_get(5).map_err(&get)?,
        body: r.try_get(6).map_err(&get)?,
        signals_json: r.try_get(7).map_err(&get)?,
        signal_count: usize::try_from(r.try_get::<i64, _>(8).map_err(&get)?).unwrap_or(0),
        processed_at: r
            .try_get::<Option<i64>, _>(9)
            .map_err(&get)?
            .map(from_micros)
            .transpose()?,
    })
}

// ---------------------------------------------------------------------------------------
// Work store

/// PostgreSQL implementation of [`WorkStore`].
#[derive(Clone)]
pub struct PgWorkStore {
    pool: PgPool,
}

impl PgWorkStore {
    pub fn new(pool: PgPool) -> Self {
        PgWorkStore { pool }
    }
}

fn wo_from_row(r: &PgRow) -> Result<WorkOrderRow, StoreError> {
    let get = db("decode a work order");
    let key: String = r.try_get(1).map_err(&get)?;
    let state: String = r.try_get(3).map_err(&get)?;
    Ok(WorkOrderRow {
        id: r.try_get(0).map_err(&get)?,
        state: decode_state(&key, &state)?,
        key_label: r.try_get(2).map_err(&get)?,
        issue: issue_from_columns(
            r.try_get(4).map_err(&get)?,
            r.try_get(5).map_err(&get)?,
            r.try_get(6).map_err(&get)?,
        )?,
        previous_issue: issue_from_columns(
            r.try_get(7).map_err(&get)?,
            r.try_get(8).map_err(&get)?,
            r.try_get(9).map_err(&get)?,
        )?,
        created_at: from_micros(r.try_get(10).map_err(&get)?)?,
        updated_at: from_micros(r.try_get(11).map_err(&get)?)?,
        key,
    })
}

async fn select_one(
    conn: &mut sqlx::PgConnection,
    key: &str,
    lock: bool,
) -> Result<Option<WorkOrderRow>, StoreError> {
    let sql = if lock {
        format!("SELECT {WO_COLUMNS} FROM work_orders WHERE key = $1 FOR UPDATE")
    } else {
        format!("SELECT {WO_COLUMNS} FROM work_orders WHERE key = $1")
    };
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .fetch_optional(conn)
        .await
        .map_err(db("read a work order"))?
        .map(|r| wo_from_row(&r))
        .transpose()
}

async fn write_issue(
    conn: &mut sqlx::PgConnection,
    wo: i64,
    current: Option<&IssueRef>,
    issue: &IssueRef,
    now: Timestamp,
) -> Result<(), StoreError> {
    if current == Some(issue) {
        return Ok(());
    }
    sqlx::query(
        "UPDATE work_orders SET issue_repo = $1, issue_number = $2, issue_url = $3,
             previous_issue_repo = coalesce($4, previous_issue_repo),
             previous_issue_number = coalesce($5, previous_issue_number),
             previous_issue_url = coalesce($6, previous_issue_url),
             updated_at = $7
         WHERE id = $8",
    )
    .bind(issue.repo.to_string())
    .bind(issue.number as i64)
    .bind(&issue.url)
    .bind(current.map(|p| p.repo.to_string()))
    .bind(current.map(|p| p.number as i64))
    .bind(current.map(|p| p.url.clone()))
    .bind(micros(now))
    .bind(wo)
    .execute(conn)
    .await
    .map_err(db("set a work order's issue"))?;
    Ok(())
}

#[async_trait]
impl WorkStore for PgWorkStore {
    async fn begin(&self) -> Result<Box<dyn WorkTx>, StoreError> {
        let tx = self.pool.begin().await.map_err(db("begin"))?;
        Ok(Box::new(PgTx { tx }))
    }

    async fn claim_operation(
        &self,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<ClaimedOperation>, StoreError> {
        let now_us = micros(now);
        let mut tx = self.pool.begin().await.map_err(db("begin"))?;
        let row = sqlx::query(
            "SELECT o.id, o.work_order_id, w.key, w.key_label, w.issue_repo, w.issue_number,
                    w.issue_url, o.payload, o.attempts, o.created_at
             FROM outbox o JOIN work_orders w ON w.id = o.work_order_id
             WHERE o.status = 'pending' AND o.not_before <= $1
               AND (o.leased_until IS NULL OR o.leased_until <= $1)
               AND NOT EXISTS (SELECT 1 FROM outbox p
                               WHERE p.work_order_id = o.work_order_id
                                 AND p.status = 'pending' AND p.id < o.id)
             ORDER BY o.id LIMIT 1
             FOR UPDATE OF o SKIP LOCKED",
        )
        .bind(now_us)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("claim an operation"))?;
        let Some(r) = row else {
            return Ok(None);
        };
        let get = db("decode an operation");
        let id: i64 = r.try_get(0).map_err(&get)?;
        let attempts: i64 = r.try_get(8).map_err(&get)?;
        let payload: String = r.try_get(7).map_err(&get)?;
        let claimed = ClaimedOperation {
            id,
            work_order_id: r.try_get(1).map_err(&get)?,
            key: r.try_get(2).map_err(&get)?,
            key_label: r.try_get(3).map_err(&get)?,
            issue: issue_from_columns(
                r.try_get(4).map_err(&get)?,
                r.try_get(5).map_err(&get)?,
                r.try_get(6).map_err(&get)?,
            )?,
            operation: decode_operation(id, &payload)?,
            attempts: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
            created_at: from_micros(r.try_get(9).map_err(&get)?)?,
        };
        sqlx::query("UPDATE outbox SET leased_until = $1, attempts = attempts + 1 WHERE id = $2")
            .bind(now_us.saturating_add(duration_micros(lease)))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db("lease an operation"))?;
        tx.commit().await.map_err(db("commit a lease"))?;
        Ok(Some(claimed))
    }

    async fn complete_operation(
        &self,
        id: i64,
        now: Timestamp,
        issue: Option<&IssueRef>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("begin"))?;
        let wo: i64 = sqlx::query_scalar(
            "UPDATE outbox SET status = 'done', finished_at = $1, leased_until = NULL,
                    last_error = NULL
             WHERE id = $2 RETURNING work_order_id",
        )
        .bind(micros(now))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("complete an operation"))?;
        if let Some(issue) = issue {
            let sql = format!("SELECT {WO_COLUMNS} FROM work_orders WHERE id = $1 FOR UPDATE");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(wo)
                .fetch_one(&mut *tx)
                .await
                .map_err(db("read a work order"))?;
            let current = wo_from_row(&row)?;
            write_issue(&mut tx, wo, current.issue.as_ref(), issue, now).await?;
        }
        tx.commit().await.map_err(db("commit"))?;
        Ok(())
    }

    async fn retry_operation(
        &self,
        id: i64,
        not_before: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET not_before = $1, leased_until = NULL, last_error = $2
             WHERE id = $3 AND status = 'pending'",
        )
        .bind(micros(not_before))
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db("reschedule an operation"))?;
        Ok(())
    }

    async fn park_operation(
        &self,
        id: i64,
        now: Timestamp,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET status = 'parked', finished_at = $1, leased_until = NULL,
                    last_error = $2
             WHERE id = $3",
        )
        .bind(micros(now))
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db("park an operation"))?;
        Ok(())
    }

    async fn next_operation_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let us: Option<i64> = sqlx::query_scalar(
            "SELECT min(greatest(o.not_before, coalesce(o.leased_until, 0))) FROM outbox o
             WHERE o.status = 'pending'
               AND NOT EXISTS (SELECT 1 FROM outbox p
                               WHERE p.work_order_id = o.work_order_id
                                 AND p.status = 'pending' AND p.id < o.id)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("read the outbox"))?;
        us.map(from_micros).transpose()
    }

    async fn next_check_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let us: Option<i64> = sqlx::query_scalar(
            "SELECT min(next_check) FROM work_orders WHERE next_check IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("read work orders"))?;
        us.map(from_micros).transpose()
    }

    async fn work_order(&self, key: &str) -> Result<Option<WorkOrderRow>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db("connect"))?;
        select_one(&mut conn, key, false).await
    }

    async fn work_orders(&self) -> Result<Vec<WorkOrderRow>, StoreError> {
        let sql = format!("SELECT {WO_COLUMNS} FROM work_orders ORDER BY id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(db("read work orders"))?
            .iter()
            .map(wo_from_row)
            .collect()
    }

    async fn timeline(&self, work_order_id: i64) -> Result<Vec<TimelineRow>, StoreError> {
        let rows: Vec<(i64, i64, Option<i64>, Option<i64>, i64, String, String)> = sqlx::query_as(
            "SELECT id, work_order_id, delivery_id, signal_index, at, decision, detail
             FROM timeline WHERE work_order_id = $1 ORDER BY id",
        )
        .bind(work_order_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read the timeline"))?;
        rows.into_iter()
            .map(|(id, wo, d, i, at, decision, detail)| {
                timeline_row(id, wo, d, i, at, decision, &detail)
            })
            .collect()
    }

    async fn operations(
        &self,
        work_order_id: Option<i64>,
    ) -> Result<Vec<OperationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, work_order_id, payload, status, attempts, not_before, last_error,
                    created_at, finished_at
             FROM outbox WHERE $1::BIGINT IS NULL OR work_order_id = $1 ORDER BY id",
        )
        .bind(work_order_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read the outbox"))?;
        let get = db("decode an operation");
        rows.iter()
            .map(|r| {
                operation_row(
                    r.try_get(0).map_err(&get)?,
                    r.try_get(1).map_err(&get)?,
                    &r.try_get::<String, _>(2).map_err(&get)?,
                    &r.try_get::<String, _>(3).map_err(&get)?,
                    r.try_get(4).map_err(&get)?,
                    r.try_get(5).map_err(&get)?,
                    r.try_get(6).map_err(&get)?,
                    r.try_get(7).map_err(&get)?,
                    r.try_get(8).map_err(&get)?,
                )
            })
            .collect()
    }

    async fn work_stats(&self, _now: Timestamp) -> Result<WorkStats, StoreError> {
        let mut stats = WorkStats::default();
        let phases: Vec<(String, i64)> =
            sqlx::query_as("SELECT phase, count(*) FROM work_orders GROUP BY phase")
                .fetch_all(&self.pool)
                .await
                .map_err(db("count work orders"))?;
        for (phase, n) in phases {
            let phase = Phase::parse(&phase)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown phase {phase:?}")))?;
            stats.work_orders_by_phase.insert(phase, n.max(0) as u64);
        }
        let (pending, parked, done, oldest): (i64, i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM outbox WHERE status = 'pending'),
                    (SELECT count(*) FROM outbox WHERE status = 'parked'),
                    (SELECT count(*) FROM outbox WHERE status = 'done'),
                    (SELECT min(created_at) FROM outbox WHERE status = 'pending')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("count the outbox"))?;
        stats.outbox_pending = pending.max(0) as u64;
        stats.outbox_parked = parked.max(0) as u64;
        stats.outbox_done = done.max(0) as u64;
        stats.oldest_pending = oldest.map(from_micros).transpose()?;
        let (journal, timeline, unprocessed): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT coalesce(sum(signal_count), 0)::BIGINT FROM deliveries
                     WHERE processed_at IS NOT NULL AND process_error IS NULL),
                    (SELECT count(*) FROM timeline WHERE delivery_id IS NOT NULL),
                    (SELECT count(*) FROM deliveries WHERE processed_at IS NULL)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("count signals"))?;
        stats.journal_signals = journal.max(0) as u64;
        stats.timeline_signals = timeline.max(0) as u64;
        stats.unprocessed_deliveries = unprocessed.max(0) as u64;
        Ok(stats)
    }

    async fn gauge_stats(&self) -> Result<WorkStats, StoreError> {
        let mut stats = WorkStats::default();
        let phases: Vec<(String, i64)> =
            sqlx::query_as("SELECT phase, count(*) FROM work_orders GROUP BY phase")
                .fetch_all(&self.pool)
                .await
                .map_err(db("count work orders"))?;
        for (phase, n) in phases {
            if let Some(phase) = Phase::parse(&phase) {
                stats.work_orders_by_phase.insert(phase, n.max(0) as u64);
            }
        }
        let (pending, parked, oldest): (i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM outbox WHERE status = 'pending'),
                    (SELECT count(*) FROM outbox WHERE status = 'parked'),
                    (SELECT min(created_at) FROM outbox WHERE status = 'pending')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("count the outbox"))?;
        stats.outbox_pending = pending.max(0) as u64;
        stats.outbox_parked = parked.max(0) as u64;
        stats.oldest_pending = oldest.map(from_micros).transpose()?;
        Ok(stats)
    }

    async fn reconcile_issue(
        &self,
        found: &FoundIssue,
        key_label: &str,
        initial: &State,
        now: Timestamp,
    ) -> Result<Reconciled, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("begin"))?;
        let inserted = sqlx::query(
            "INSERT INTO work_orders (key, key_label, phase, next_check, issue_repo, issue_number,
                 issue_url, state, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&found.key)
        .bind(key_label)
        .bind(initial.phase.as_str())
        .bind(initial.next_check.map(micros))
        .bind(found.issue.repo.to_string())
        .bind(found.issue.number as i64)
        .bind(&found.issue.url)
        .bind(encode_state(initial)?)
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .map_err(db("create a reconciled work order"))?
        .rows_affected();
        let outcome = if inserted == 1 {
            Reconciled::Created
        } else {
            let row = select_one(&mut tx, &found.key, true)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("work order {} vanished", found.key)))?;
            if should_map(row.issue.as_ref(), &found.issue) {
                write_issue(&mut tx, row.id, row.issue.as_ref(), &found.issue, now).await?;
                Reconciled::Mapped
            } else {
                Reconciled::Unchanged
            }
        };
        tx.commit().await.map_err(db("commit"))?;
        Ok(outcome)
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

struct PgTx {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl WorkTx for PgTx {
    async fn claim_deliveries(&mut self, limit: usize) -> Result<Vec<StoredDelivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE processed_at IS NULL
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *self.tx)
            .await
            .map_err(db("claim deliveries"))?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    async fn lock_work_orders(
        &mut self,
        keys: &[WorkOrderKeyRef],
        now: Timestamp,
    ) -> Result<Vec<WorkOrderRow>, StoreError> {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup_by(|a, b| a.key == b.key);
        let initial = encode_state(&State::new())?;
        for k in &keys {
            sqlx::query(
                "INSERT INTO work_orders (key, key_label, phase, next_check, state, created_at,
                     updated_at)
                 VALUES ($1, $2, 'quiet', NULL, $3, $4, $4) ON CONFLICT (key) DO NOTHING",
            )
            .bind(&k.key)
            .bind(&k.key_label)
            .bind(&initial)
            .bind(micros(now))
            .execute(&mut *self.tx)
            .await
            .map_err(db("create a work order"))?;
        }
        let names: Vec<String> = keys.iter().map(|k| k.key.clone()).collect();
        let sql = format!(
            "SELECT {WO_COLUMNS} FROM work_orders WHERE key = ANY($1) ORDER BY key FOR UPDATE"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(names)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(db("lock work orders"))?
            .iter()
            .map(wo_from_row)
            .collect()
    }

    async fn lock_due_work_orders(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<WorkOrderRow>, StoreError> {
        let sql = format!(
            "SELECT {WO_COLUMNS} FROM work_orders
             WHERE next_check IS NOT NULL AND next_check <= $1
             ORDER BY next_check, id LIMIT $2 FOR UPDATE SKIP LOCKED"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(micros(now))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *self.tx)
            .await
            .map_err(db("lock due work orders"))?
            .iter()
            .map(wo_from_row)
            .collect()
    }

    async fn save_work_order(
        &mut self,
        row: &WorkOrderRow,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE work_orders SET phase = $1, next_check = $2, state = $3, updated_at = $4
             WHERE id = $5",
        )
        .bind(row.state.phase.as_str())
        .bind(row.state.next_check.map(micros))
        .bind(encode_state(&row.state)?)
        .bind(micros(now))
        .bind(row.id)
        .execute(&mut *self.tx)
        .await
        .map_err(db("save a work order"))?;
        Ok(())
    }

    async fn append_timeline(&mut self, entries: &[TimelineEntry]) -> Result<(), StoreError> {
        for e in entries {
            sqlx::query(
                "INSERT INTO timeline (work_order_id, delivery_id, signal_index, at, decision,
                     detail)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(e.work_order_id)
            .bind(e.signal.map(|(d, _)| d.0))
            .bind(e.signal.map(|(_, i)| i64::from(i)))
            .bind(micros(e.at))
            .bind(e.decision_text())
            .bind(timeline_detail(e)?)
            .execute(&mut *self.tx)
            .await
            .map_err(db("append to the timeline"))?;
        }
        Ok(())
    }

    async fn enqueue(
        &mut self,
        work_order_id: i64,
        operations: &[Operation],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for op in operations {
            sqlx::query(
                "INSERT INTO outbox (work_order_id, op, payload, status, attempts, not_before,
                     created_at)
                 VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
            )
            .bind(work_order_id)
            .bind(op.kind())
            .bind(encode_operation(op)?)
            .bind(micros(now))
            .execute(&mut *self.tx)
            .await
            .map_err(db("enqueue an operation"))?;
        }
        Ok(())
    }

    async fn mark_processed(
        &mut self,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let ids: Vec<i64> = ids.iter().map(|d| d.0).collect();
        sqlx::query(
            "UPDATE deliveries SET processed_at = $1 WHERE id = ANY($2) AND processed_at IS NULL",
        )
        .bind(micros(now))
        .bind(ids)
        .execute(&mut *self.tx)
        .await
        .map_err(db("mark deliveries processed"))?;
        Ok(())
    }

    async fn mark_failed(
        &mut self,
        id: DeliveryId,
        now: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE deliveries SET processed_at = $1, process_error = $2 WHERE id = $3")
            .bind(micros(now))
            .bind(error)
            .bind(id.0)
            .execute(&mut *self.tx)
            .await
            .map_err(db("mark a delivery failed"))?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(db("commit"))
    }
}

/// True for errors a retry of the whole transaction resolves: deadlock, serialization
/// failure, a dropped connection.
pub fn is_retryable(err: &StoreError) -> bool {
    let StoreError::Backend { source, .. } = err else {
        return false;
    };
    match source.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(d)) => {
            matches!(d.code().as_deref(), Some("40P01" | "40001" | "57P01"))
        }
        Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => true,
        _ => false,
    }
}
