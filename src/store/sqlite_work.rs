//! SQLite implementation of [`WorkStore`]: one connection, one transaction at a time.
//!
//! SQLite has one writer per database: every pipeline transaction begins `IMMEDIATE`
//! (takes the write lock at once, waiting up to the busy timeout while the journal's
//! group commit holds it), so what a transaction read cannot change under it. The
//! work store's own tasks (processor, scheduler, outbox workers) share one connection
//! behind an async mutex; each database call runs on the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::sqlite::{COLUMNS, open_connection, raw_row};
use super::work::{
    ClaimedOperation, OperationRow, OperationStatus, Reconciled, TimelineEntry, TimelineRow,
    WorkOrderKeyRef, WorkOrderRow, WorkStats, WorkStore, WorkTx, decode_operation, decode_state,
    duration_micros, encode_operation, encode_state, issue_from_columns, should_map,
    timeline_detail,
};
use super::{DeliveryId, StoreError, StoredDelivery, from_micros, micros};
use crate::config::SqliteSync;
use crate::forge::{FoundIssue, IssueRef};
use crate::pipeline::plan::Operation;
use crate::triage::lifecycle::{Phase, State};

const WO_COLUMNS: &str = "id, key, key_label, state, issue_repo, issue_number, issue_url, \
     previous_issue_repo, previous_issue_number, previous_issue_url, created_at, updated_at";

type Slot = Option<Connection>;

/// See the module docs.
pub struct SqliteWorkStore {
    path: PathBuf,
    synchronous: SqliteSync,
    conn: Arc<Mutex<Slot>>,
}

impl std::fmt::Debug for SqliteWorkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWorkStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteWorkStore {
    /// Opens the database (applying migrations, idempotently). Blocking.
    pub fn open(path: &Path, synchronous: SqliteSync) -> anyhow::Result<Self> {
        let mut conn = open_connection(path, synchronous)?;
        super::migrations::apply_sqlite(&mut conn, super::migrations::SQLITE)?;
        Ok(SqliteWorkStore {
            path: path.to_path_buf(),
            synchronous,
            conn: Arc::new(Mutex::new(Some(conn))),
        })
    }

    async fn guard(&self) -> OwnedMutexGuard<Slot> {
        self.conn.clone().lock_owned().await
    }

    /// Runs `f` in its own `IMMEDIATE` transaction.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut guard = self.guard().await;
        run(&mut guard, &self.path, self.synchronous, move |conn| {
            conn.execute_batch("BEGIN IMMEDIATE").map_err(db("begin"))?;
            match f(conn) {
                Ok(v) => {
                    conn.execute_batch("COMMIT").map_err(db("commit"))?;
                    Ok(v)
                }
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e)
                }
            }
        })
        .await
    }

    /// Runs `f` outside any explicit transaction (a consistent read of one statement).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut guard = self.guard().await;
        run(&mut guard, &self.path, self.synchronous, f).await
    }
}

fn db(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(format!("work store: {what}"), e)
}

/// Moves the connection onto the blocking pool for `f` and back. A connection lost to
/// a panic or a cancelled call is reopened on the next use.
async fn run<T: Send + 'static>(
    slot: &mut OwnedMutexGuard<Slot>,
    path: &Path,
    synchronous: SqliteSync,
    f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let conn = match slot.take() {
        Some(c) => c,
        None => open_connection(path, synchronous)?,
    };
    let (conn, result) = tokio::task::spawn_blocking(move || {
        let r = f(&conn);
        (conn, r)
    })
    .await
    .map_err(|e| StoreError::backend("work store task failed", e))?;
    **slot = Some(conn);
    result
}

#[async_trait]
impl WorkStore for SqliteWorkStore {
    async fn begin(&self) -> Result<Box<dyn WorkTx>, StoreError> {
        let mut guard = self.guard().await;
        run(&mut guard, &self.path, self.synchronous, |conn| {
            if !conn.is_autocommit() {
                // Left over by a cancelled transaction.
                let _ = conn.execute_batch("ROLLBACK");
            }
            conn.execute_batch("BEGIN IMMEDIATE").map_err(db("begin"))
        })
        .await?;
        Ok(Box::new(SqliteTx {
            guard: Some(guard),
            path: self.path.clone(),
            synchronous: self.synchronous,
        }))
    }

    async fn claim_operation(
        &self,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<ClaimedOperation>, StoreError> {
        let now_us = micros(now);
        let until = now_us.saturating_add(duration_micros(lease));
        self.write(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT o.id, o.work_order_id, w.key, w.key_label, w.issue_repo, w.issue_number,
                            w.issue_url, o.payload, o.attempts, o.created_at
                     FROM outbox o JOIN work_orders w ON w.id = o.work_order_id
                     WHERE o.status = 'pending' AND o.not_before <= ?1
                       AND (o.leased_until IS NULL OR o.leased_until <= ?1)
                       AND NOT EXISTS (SELECT 1 FROM outbox p
                                       WHERE p.work_order_id = o.work_order_id
                                         AND p.status = 'pending' AND p.id < o.id)
                     ORDER BY o.id LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row([now_us], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, Option<i64>>(5)?,
                            r.get::<_, Option<String>>(6)?,
                            r.get::<_, String>(7)?,
                            r.get::<_, i64>(8)?,
                            r.get::<_, i64>(9)?,
                        ))
                    })
                    .optional()
                })
                .map_err(db("claim an operation"))?;
            let Some((id, wo, key, key_label, repo, number, url, payload, attempts, created)) = row
            else {
                return Ok(None);
            };
            conn.execute(
                "UPDATE outbox SET leased_until = ?1, attempts = attempts + 1 WHERE id = ?2",
                params![until, id],
            )
            .map_err(db("lease an operation"))?;
            Ok(Some(ClaimedOperation {
                id,
                work_order_id: wo,
                key,
                key_label,
                issue: issue_from_columns(repo, number, url)?,
                operation: decode_operation(id, &payload)?,
                attempts: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
                created_at: from_micros(created)?,
            }))
        })
        .await
    }

    async fn complete_operation(
        &self,
        id: i64,
        now: Timestamp,
        issue: Option<&IssueRef>,
    ) -> Result<(), StoreError> {
        let issue = issue.cloned();
        let now_us = micros(now);
        self.write(move |conn| {
            conn.execute(
                "UPDATE outbox SET status = 'done', finished_at = ?1, leased_until = NULL,
                        last_error = NULL
                 WHERE id = ?2",
                params![now_us, id],
            )
            .map_err(db("complete an operation"))?;
            if let Some(issue) = issue {
                set_issue(conn, id, &issue, now_us)?;
            }
            Ok(())
        })
        .await
    }

    async fn retry_operation(
        &self,
        id: i64,
        not_before: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = error.to_string();
        let at = micros(not_before);
        self.write(move |conn| {
            conn.execute(
                "UPDATE outbox SET not_before = ?1, leased_until = NULL, last_error = ?2
                 WHERE id = ?3 AND status = 'pending'",
                params![at, error, id],
            )
            .map_err(db("reschedule an operation"))?;
            Ok(())
        })
        .await
    }

    async fn park_operation(
        &self,
        id: i64,
        now: Timestamp,
        reason: &str,
    ) -> Result<(), StoreError> {
        let reason = reason.to_string();
        let at = micros(now);
        self.write(move |conn| {
            conn.execute(
                "UPDATE outbox SET status = 'parked', finished_at = ?1, leased_until = NULL,
                        last_error = ?2
                 WHERE id = ?3",
                params![at, reason, id],
            )
            .map_err(db("park an operation"))?;
            Ok(())
        })
        .await
    }

    async fn next_operation_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read(|conn| {
            let us: Option<i64> = conn
                .query_row(
                    "SELECT min(max(o.not_before, coalesce(o.leased_until, 0))) FROM outbox o
                     WHERE o.status = 'pending'
                       AND NOT EXISTS (SELECT 1 FROM outbox p
                                       WHERE p.work_order_id = o.work_order_id
                                         AND p.status = 'pending' AND p.id < o.id)",
                    [],
                    |r| r.get(0),
                )
                .map_err(db("read the outbox"))?;
            us.map(from_micros).transpose()
        })
        .await
    }

    async fn next_check_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read(|conn| {
            let us: Option<i64> = conn
                .query_row(
                    "SELECT min(next_check) FROM work_orders WHERE next_check IS NOT NULL",
                    [],
                    |r| r.get(0),
                )
                .map_err(db("read work orders"))?;
            us.map(from_micros).transpose()
        })
        .await
    }

    async fn work_order(&self, key: &str) -> Result<Option<WorkOrderRow>, StoreError> {
        let key = key.to_string();
        self.read(move |conn| select_one(conn, &key)).await
    }

    async fn work_orders(&self) -> Result<Vec<WorkOrderRow>, StoreError> {
        self.read(|conn| {
            let sql = format!("SELECT {WO_COLUMNS} FROM work_orders ORDER BY id");
            let mut stmt = conn.prepare_cached(&sql).map_err(db("read work orders"))?;
            let rows = stmt
                .query_map([], wo_raw)
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(db("read work orders"))?;
            rows.into_iter().map(WoRaw::decode).collect()
        })
        .await
    }

    async fn timeline(&self, work_order_id: i64) -> Result<Vec<TimelineRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, work_order_id, delivery_id, signal_index, at, decision, detail
                     FROM timeline WHERE work_order_id = ?1 ORDER BY id",
                )
                .map_err(db("read the timeline"))?;
            let rows = stmt
                .query_map([work_order_id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                })
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(db("read the timeline"))?;
            rows.into_iter()
                .map(|(id, wo, d, i, at, decision, detail)| {
                    timeline_row(id, wo, d, i, at, decision, &detail)
                })
                .collect()
        })
        .await
    }

    async fn operations(
        &self,
        work_order_id: Option<i64>,
    ) -> Result<Vec<OperationRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, work_order_id, payload, status, attempts, not_before, last_error,
                            created_at, finished_at
                     FROM outbox WHERE ?1 IS NULL OR work_order_id = ?1 ORDER BY id",
                )
                .map_err(db("read the outbox"))?;
            let rows = stmt
                .query_map([work_order_id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, i64>(7)?,
                        r.get::<_, Option<i64>>(8)?,
                    ))
                })
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(db("read the outbox"))?;
            rows.into_iter()
                .map(
                    |(id, wo, payload, status, attempts, nb, err, created, fin)| {
                        operation_row(id, wo, &payload, &status, attempts, nb, err, created, fin)
                    },
                )
                .collect()
        })
        .await
    }

    async fn work_stats(&self, _now: Timestamp) -> Result<WorkStats, StoreError> {
        self.read(|conn| {
            let mut stats = WorkStats::default();
            let mut stmt = conn
                .prepare_cached("SELECT phase, count(*) FROM work_orders GROUP BY phase")
                .map_err(db("count work orders"))?;
            let phases = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(db("count work orders"))?;
            for (phase, n) in phases {
                let phase = Phase::parse(&phase)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown phase {phase:?}")))?;
                stats.work_orders_by_phase.insert(phase, n.max(0) as u64);
            }
            let (pending, parked, done, oldest): (i64, i64, i64, Option<i64>) = conn
                .query_row(
                    "SELECT (SELECT count(*) FROM outbox WHERE status = 'pending'),
                            (SELECT count(*) FROM outbox WHERE status = 'parked'),
                            (SELECT count(*) FROM outbox WHERE status = 'done'),
                            (SELECT min(created_at) FROM outbox WHERE status = 'pending')",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(db("count the outbox"))?;
            stats.outbox_pending = pending.max(0) as u64;
            stats.outbox_parked = parked.max(0) as u64;
            stats.outbox_done = done.max(0) as u64;
            stats.oldest_pending = oldest.map(from_micros).transpose()?;
            let (journal, timeline, unprocessed): (i64, i64, i64) = conn
                .query_row(
                    "SELECT (SELECT coalesce(sum(signal_count), 0) FROM deliveries
                             WHERE processed_at IS NOT NULL AND process_error IS NULL),
                            (SELECT count(*) FROM timeline WHERE delivery_id IS NOT NULL),
                            (SELECT count(*) FROM deliveries WHERE processed_at IS NULL)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(db("count signals"))?;
            stats.journal_signals = journal.max(0) as u64;
            stats.timeline_signals = timeline.max(0) as u64;
            stats.unprocessed_deliveries = unprocessed.max(0) as u64;
            Ok(stats)
        })
        .await
    }

    async fn gauge_stats(&self) -> Result<WorkStats, StoreError> {
        self.read(|conn| {
            let mut stats = WorkStats::default();
            let mut stmt = conn
                .prepare_cached("SELECT phase, count(*) FROM work_orders GROUP BY phase")
                .map_err(db("count work orders"))?;
            let phases = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(db("count work orders"))?;
            for (phase, n) in phases {
                if let Some(phase) = Phase::parse(&phase) {
                    stats.work_orders_by_phase.insert(phase, n.max(0) as u64);
                }
            }
            let (pending, parked, oldest): (i64, i64, Option<i64>) = conn
                .query_row(
                    "SELECT (SELECT count(*) FROM outbox WHERE status = 'pending'),
                            (SELECT count(*) FROM outbox WHERE status = 'parked'),
                            (SELECT min(created_at) FROM outbox WHERE status = 'pending')",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(db("count the outbox"))?;
            stats.outbox_pending = pending.max(0) as u64;
            stats.outbox_parked = parked.max(0) as u64;
            stats.oldest_pending = oldest.map(from_micros).transpose()?;
            Ok(stats)
        })
        .await
    }

    async fn reconcile_issue(
        &self,
        found: &FoundIssue,
        key_label: &str,
        initial: &State,
        now: Timestamp,
    ) -> Result<Reconciled, StoreError> {
        let found = found.clone();
        let key_label = key_label.to_string();
        let state_json = encode_state(initial)?;
        let phase = initial.phase.as_str();
        let next_check = initial.next_check.map(micros);
        let now_us = micros(now);
        self.write(move |conn| {
            let current = select_one(conn, &found.key)?;
            let issue = &found.issue;
            match current {
                None => {
                    conn.execute(
                        "INSERT INTO work_orders (key, key_label, phase, next_check, issue_repo,
                             issue_number, issue_url, state, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                        params![
                            found.key,
                            key_label,
                            phase,
                            next_check,
                            issue.repo.to_string(),
                            issue.number as i64,
                            issue.url,
                            state_json,
                            now_us
                        ],
                    )
                    .map_err(db("create a reconciled work order"))?;
                    Ok(Reconciled::Created)
                }
                Some(row) if should_map(row.issue.as_ref(), issue) => {
                    write_issue(conn, row.id, row.issue.as_ref(), issue, now_us)?;
                    Ok(Reconciled::Mapped)
                }
                Some(_) => Ok(Reconciled::Unchanged),
            }
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// The transaction: holds the connection (and so the store) until commit or drop.
struct SqliteTx {
    guard: Option<OwnedMutexGuard<Slot>>,
    path: PathBuf,
    synchronous: SqliteSync,
}

impl SqliteTx {
    async fn exec<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let guard = self.guard.as_mut().ok_or(StoreError::Closed)?;
        if guard.is_none() {
            // The connection (and with it the transaction) was lost.
            return Err(StoreError::Corrupt(
                "the work store connection was lost mid-transaction".into(),
            ));
        }
        run(guard, &self.path, self.synchronous, f).await
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if let Some(mut guard) = self.guard.take()
            && let Some(conn) = guard.as_ref()
            && !conn.is_autocommit()
        {
            // Fast: this connection holds the write lock, nothing to wait for.
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "work store: rollback failed; reconnecting");
                *guard = None;
            }
        }
    }
}

#[async_trait]
impl WorkTx for SqliteTx {
    async fn claim_deliveries(&mut self, limit: usize) -> Result<Vec<StoredDelivery>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.exec(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM deliveries WHERE processed_at IS NULL ORDER BY id LIMIT ?1"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(db("claim deliveries"))?;
            let rows = stmt
                .query_map([limit], raw_row)
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(db("claim deliveries"))?;
            rows.into_iter().map(|r| r.decode()).collect()
        })
        .await
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
        let now_us = micros(now);
        self.exec(move |conn| {
            let mut out = Vec::with_capacity(keys.len());
            for k in &keys {
                conn.prepare_cached(
                    "INSERT INTO work_orders (key, key_label, phase, next_check, state,
                         created_at, updated_at)
                     VALUES (?1, ?2, 'quiet', NULL, ?3, ?4, ?4) ON CONFLICT (key) DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![k.key, k.key_label, initial, now_us]))
                .map_err(db("create a work order"))?;
                let row = select_one(conn, &k.key)?
                    .ok_or_else(|| StoreError::Corrupt(format!("work order {} vanished", k.key)))?;
                out.push(row);
            }
            Ok(out)
        })
        .await
    }

    async fn lock_due_work_orders(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<WorkOrderRow>, StoreError> {
        let now_us = micros(now);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.exec(move |conn| {
            let sql = format!(
                "SELECT {WO_COLUMNS} FROM work_orders
                 WHERE next_check IS NOT NULL AND next_check <= ?1
                 ORDER BY next_check, id LIMIT ?2"
            );
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(db("read due work orders"))?;
            let rows = stmt
                .query_map(params![now_us, limit], wo_raw)
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(db("read due work orders"))?;
            rows.into_iter().map(WoRaw::decode).collect()
        })
        .await
    }

    async fn save_work_order(
        &mut self,
        row: &WorkOrderRow,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let state = encode_state(&row.state)?;
        let phase = row.state.phase.as_str();
        let next = row.state.next_check.map(micros);
        let id = row.id;
        let now_us = micros(now);
        self.exec(move |conn| {
            conn.prepare_cached(
                "UPDATE work_orders SET phase = ?1, next_check = ?2, state = ?3, updated_at = ?4
                 WHERE id = ?5",
            )
            .and_then(|mut s| s.execute(params![phase, next, state, now_us, id]))
            .map_err(db("save a work order"))?;
            Ok(())
        })
        .await
    }

    async fn append_timeline(&mut self, entries: &[TimelineEntry]) -> Result<(), StoreError> {
        let rows = entries
            .iter()
            .map(|e| {
                Ok((
                    e.work_order_id,
                    e.signal.map(|(d, _)| d.0),
                    e.signal.map(|(_, i)| i64::from(i)),
                    micros(e.at),
                    e.decision_text(),
                    timeline_detail(e)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.exec(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "INSERT INTO timeline (work_order_id, delivery_id, signal_index, at, decision,
                         detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(db("append to the timeline"))?;
            for r in rows {
                stmt.execute(params![r.0, r.1, r.2, r.3, r.4, r.5])
                    .map_err(db("append to the timeline"))?;
            }
            Ok(())
        })
        .await
    }

    async fn enqueue(
        &mut self,
        work_order_id: i64,
        operations: &[Operation],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if operations.is_empty() {
            return Ok(());
        }
        let rows = operations
            .iter()
            .map(|op| Ok((op.kind(), encode_operation(op)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let now_us = micros(now);
        self.exec(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "INSERT INTO outbox (work_order_id, op, payload, status, attempts, not_before,
                         created_at)
                     VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4)",
                )
                .map_err(db("enqueue an operation"))?;
            for (kind, payload) in rows {
                stmt.execute(params![work_order_id, kind, payload, now_us])
                    .map_err(db("enqueue an operation"))?;
            }
            Ok(())
        })
        .await
    }

    async fn mark_processed(
        &mut self,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let ids: Vec<i64> = ids.iter().map(|d| d.0).collect();
        let now_us = micros(now);
        self.exec(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "UPDATE deliveries SET processed_at = ?1 WHERE id = ?2 AND processed_at IS NULL",
                )
                .map_err(db("mark deliveries processed"))?;
            for id in ids {
                stmt.execute(params![now_us, id])
                    .map_err(db("mark deliveries processed"))?;
            }
            Ok(())
        })
        .await
    }

    async fn mark_failed(
        &mut self,
        id: DeliveryId,
        now: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = error.to_string();
        let now_us = micros(now);
        self.exec(move |conn| {
            conn.execute(
                "UPDATE deliveries SET processed_at = ?1, process_error = ?2 WHERE id = ?3",
                params![now_us, error, id.0],
            )
            .map_err(db("mark a delivery failed"))?;
            Ok(())
        })
        .await
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.exec(|conn| conn.execute_batch("COMMIT").map_err(db("commit")))
            .await
    }
}

struct WoRaw {
    id: i64,
    key: String,
    key_label: String,
    state: String,
    issue: (Option<String>, Option<i64>, Option<String>),
    previous: (Option<String>, Option<i64>, Option<String>),
    created_at: i64,
    updated_at: i64,
}

fn wo_raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<WoRaw> {
    Ok(WoRaw {
        id: r.get(0)?,
        key: r.get(1)?,
        key_label: r.get(2)?,
        state: r.get(3)?,
        issue: (r.get(4)?, r.get(5)?, r.get(6)?),
        previous: (r.get(7)?, r.get(8)?, r.get(9)?),
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

impl WoRaw {
    fn decode(self) -> Result<WorkOrderRow, StoreError> {
        Ok(WorkOrderRow {
            id: self.id,
            state: decode_state(&self.key, &self.state)?,
            key: self.key,
            key_label: self.key_label,
            issue: issue_from_columns(self.issue.0, self.issue.1, self.issue.2)?,
            previous_issue: issue_from_columns(self.previous.0, self.previous.1, self.previous.2)?,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

fn select_one(conn: &Connection, key: &str) -> Result<Option<WorkOrderRow>, StoreError> {
    let sql = format!("SELECT {WO_COLUMNS} FROM work_orders WHERE key = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_row([key], wo_raw).optional())
        .map_err(db("read a work order"))?
        .map(WoRaw::decode)
        .transpose()
}

/// Points the work order of operation `op_id` at `issue` (a create's result).
fn set_issue(
    conn: &Connection,
    op_id: i64,
    issue: &IssueRef,
    now_us: i64,
) -> Result<(), StoreError> {
    let wo: i64 = conn
        .query_row(
            "SELECT work_order_id FROM outbox WHERE id = ?1",
            [op_id],
            |r| r.get(0),
        )
        .map_err(db("read an operation"))?;
    let sql = format!("SELECT {WO_COLUMNS} FROM work_orders WHERE id = ?1");
    let current = conn
        .query_row(&sql, [wo], wo_raw)
        .map_err(db("read a work order"))?
        .decode()?;
    write_issue(conn, wo, current.issue.as_ref(), issue, now_us)
}

fn write_issue(
    conn: &Connection,
    wo: i64,
    current: Option<&IssueRef>,
    issue: &IssueRef,
    now_us: i64,
) -> Result<(), StoreError> {
    if current == Some(issue) {
        return Ok(());
    }
    let previous = current.cloned();
    conn.execute(
        "UPDATE work_orders SET issue_repo = ?1, issue_number = ?2, issue_url = ?3,
             previous_issue_repo = coalesce(?4, previous_issue_repo),
             previous_issue_number = coalesce(?5, previous_issue_number),
             previous_issue_url = coalesce(?6, previous_issue_url),
             updated_at = ?7
         WHERE id = ?8",
        params![
            issue.repo.to_string(),
            issue.number as i64,
            issue.url,
            previous.as_ref().map(|p| p.repo.to_string()),
            previous.as_ref().map(|p| p.number as i64),
            previous.as_ref().map(|p| p.url.clone()),
            now_us,
            wo
        ],
    )
    .map_err(db("set a work order's issue"))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn operation_row(
    id: i64,
    work_order_id: i64,
    payload: &str,
    status: &str,
    attempts: i64,
    not_before: i64,
    last_error: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
) -> Result<OperationRow, StoreError> {
    Ok(OperationRow {
        id,
        work_order_id,
        operation: decode_operation(id, payload)?,
        status: OperationStatus::parse(status)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        not_before: from_micros(not_before)?,
        last_error,
        created_at: from_micros(created_at)?,
        finished_at: finished_at.map(from_micros).transpose()?,
    })
}

pub(crate) fn timeline_row(
    id: i64,
    work_order_id: i64,
    delivery_id: Option<i64>,
    signal_index: Option<i64>,
    at: i64,
    decision: String,
    detail: &str,
) -> Result<TimelineRow, StoreError> {
    let signal = match (delivery_id, signal_index) {
        (Some(d), Some(i)) => Some((
            DeliveryId(d),
            u32::try_from(i).map_err(|_| StoreError::Corrupt(format!("signal index {i}")))?,
        )),
        _ => None,
    };
    Ok(TimelineRow {
        id,
        work_order_id,
        signal,
        at: from_micros(at)?,
        decision,
        detail: serde_json::from_str(detail)
            .map_err(|e| StoreError::Corrupt(format!("timeline {id}: {e}")))?,
    })
}
