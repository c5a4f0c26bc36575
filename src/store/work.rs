//! The work-order side of the store: work orders (unique key), the signal timeline and
//! the forge outbox, beside the journal in the same database.
//!
//! The pipeline's promise rests on transactions: a [`WorkTx`] claims deliveries, locks
//! the work orders they touch, writes the new states, the timeline, the outbox
//! operations and the deliveries' processed mark, and commits all of it at once — or
//! nothing. Two implementations share one schema: SQLite (one process; every
//! transaction takes the write lock) and PostgreSQL (several replicas: deliveries,
//! due work orders and operations are claimed `FOR UPDATE SKIP LOCKED`, work orders are
//! locked in key order, keys are unique).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{DeliveryId, StoreError, StoredDelivery};
use crate::forge::{FoundIssue, IssueRef, RepoRef};
use crate::pipeline::plan::Operation;
use crate::triage::lifecycle::{Decision, Phase, State};

/// One work order as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkOrderRow {
    pub id: i64,
    pub key: String,
    pub key_label: String,
    pub state: State,
    /// The current issue (set when the outbox created or adopted it).
    pub issue: Option<IssueRef>,
    /// The issue the current one follows.
    pub previous_issue: Option<IssueRef>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A key the processor needs a locked row for (created in phase `quiet` if missing).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WorkOrderKeyRef {
    pub key: String,
    pub key_label: String,
}

/// What the timeline records for one signal or one scheduler decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub work_order_id: i64,
    /// The delivery and the signal's index in it; `None` for scheduler decisions.
    pub signal: Option<(DeliveryId, u32)>,
    pub at: Timestamp,
    pub decisions: Vec<Decision>,
    /// Free-form detail for people and `status`: identity, title, status, route.
    pub detail: serde_json::Value,
}

impl TimelineEntry {
    /// `wait`, `route_change,comment`…; `none` when a tick decided nothing.
    pub fn decision_text(&self) -> String {
        if self.decisions.is_empty() {
            return "none".into();
        }
        self.decisions
            .iter()
            .map(Decision::kind)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A timeline row read back.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineRow {
    pub id: i64,
    pub work_order_id: i64,
    pub signal: Option<(DeliveryId, u32)>,
    pub at: Timestamp,
    pub decision: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    Pending,
    Done,
    Parked,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Pending => "pending",
            OperationStatus::Done => "done",
            OperationStatus::Parked => "parked",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(OperationStatus::Pending),
            "done" => Ok(OperationStatus::Done),
            "parked" => Ok(OperationStatus::Parked),
            other => Err(StoreError::Corrupt(format!(
                "unknown outbox status {other:?}"
            ))),
        }
    }
}

/// An outbox row read back.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRow {
    pub id: i64,
    pub work_order_id: i64,
    pub operation: Operation,
    pub status: OperationStatus,
    pub attempts: u32,
    pub not_before: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// An operation a worker leased, with what it needs to perform it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedOperation {
    pub id: i64,
    pub work_order_id: i64,
    pub key: String,
    pub key_label: String,
    /// The work order's current issue (`None` before its create succeeded).
    pub issue: Option<IssueRef>,
    pub operation: Operation,
    /// Attempts including this one.
    pub attempts: u32,
    pub created_at: Timestamp,
}

/// Counts for metrics, `status` and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkStats {
    pub work_orders_by_phase: BTreeMap<Phase, u64>,
    pub outbox_pending: u64,
    pub outbox_parked: u64,
    pub outbox_done: u64,
    /// `created_at` of the oldest pending operation.
    pub oldest_pending: Option<Timestamp>,
    /// Signals in processed deliveries (the journal's side of "accounted for").
    pub journal_signals: u64,
    /// Timeline rows that record a signal (the work orders' side).
    pub timeline_signals: u64,
    pub unprocessed_deliveries: u64,
}

/// What `reconcile_issue` did with one issue found on the forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reconciled {
    /// No work order had this key: one was created, mapped to the issue.
    Created,
    /// The work order had no issue (or an older one): now mapped to this one.
    Mapped,
    /// The work order already pointed at this issue (or a newer one).
    Unchanged,
}

/// One open transaction of the pipeline. Dropping it without `commit` rolls back.
#[async_trait]
pub trait WorkTx: Send {
    /// Unprocessed deliveries, lowest id first, at most `limit`, locked for this
    /// transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so replicas share the work).
    async fn claim_deliveries(&mut self, limit: usize) -> Result<Vec<StoredDelivery>, StoreError>;

    /// The rows for `keys`, created (phase `quiet`) where missing, locked, in key order
    /// (a fixed lock order: concurrent processors cannot deadlock on them).
    async fn lock_work_orders(
        &mut self,
        keys: &[WorkOrderKeyRef],
        now: Timestamp,
    ) -> Result<Vec<WorkOrderRow>, StoreError>;

    /// Work orders whose `next_check` is due, oldest first, locked (PostgreSQL: skipping
    /// rows another replica holds).
    async fn lock_due_work_orders(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<WorkOrderRow>, StoreError>;

    /// Writes the row's state (and the phase and next_check derived from it).
    async fn save_work_order(
        &mut self,
        row: &WorkOrderRow,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    async fn append_timeline(&mut self, entries: &[TimelineEntry]) -> Result<(), StoreError>;

    /// Queues `operations` for the work order, in order, due now.
    async fn enqueue(
        &mut self,
        work_order_id: i64,
        operations: &[Operation],
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Sets `processed_at` on the deliveries; `error` records why one could not be used.
    async fn mark_processed(
        &mut self,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<(), StoreError>;

    async fn mark_failed(
        &mut self,
        id: DeliveryId,
        now: Timestamp,
        error: &str,
    ) -> Result<(), StoreError>;

    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Work orders, timeline and outbox. See the module docs.
#[async_trait]
pub trait WorkStore: Send + Sync + 'static {
    /// Starts a pipeline transaction (SQLite: takes the write lock).
    async fn begin(&self) -> Result<Box<dyn WorkTx>, StoreError>;

    /// Leases the next operation that may run now: pending, due, not leased, and the
    /// oldest pending one of its work order (per-work-order order). The lease lasts
    /// `lease`; a worker that dies loses it and another takes the operation over.
    async fn claim_operation(
        &self,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<ClaimedOperation>, StoreError>;

    /// Marks the operation done. `issue`: the issue a create made or adopted, which
    /// becomes the work order's current issue (the old one becomes `previous_issue`).
    async fn complete_operation(
        &self,
        id: i64,
        now: Timestamp,
        issue: Option<&IssueRef>,
    ) -> Result<(), StoreError>;

    /// Releases the lease and schedules the next attempt.
    async fn retry_operation(
        &self,
        id: i64,
        not_before: Timestamp,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Gives up on the operation (a permanent failure); the reason stays visible.
    async fn park_operation(&self, id: i64, now: Timestamp, reason: &str)
    -> Result<(), StoreError>;

    /// When the next pending operation becomes due (`None`: nothing pending).
    async fn next_operation_due(&self) -> Result<Option<Timestamp>, StoreError>;

    /// When the next work order needs the scheduler (`None`: none scheduled).
    async fn next_check_due(&self) -> Result<Option<Timestamp>, StoreError>;

    async fn work_order(&self, key: &str) -> Result<Option<WorkOrderRow>, StoreError>;

    async fn work_orders(&self) -> Result<Vec<WorkOrderRow>, StoreError>;

    async fn timeline(&self, work_order_id: i64) -> Result<Vec<TimelineRow>, StoreError>;

    async fn operations(&self, work_order_id: Option<i64>)
    -> Result<Vec<OperationRow>, StoreError>;

    /// Every count, including signals in the journal and the timeline (full scans: for
    /// tests, benches and tools, not for a metrics loop).
    async fn work_stats(&self, now: Timestamp) -> Result<WorkStats, StoreError>;

    /// The counts metrics need, from indexes only: work orders by phase, pending and
    /// parked operations, the oldest pending one (other fields are zero).
    async fn gauge_stats(&self) -> Result<WorkStats, StoreError>;

    /// Maps `found` (from the forge, after a lost database) to its work order: creates
    /// the row with `initial` if the key is unknown, else points the row at the issue
    /// if it has none or an older one.
    async fn reconcile_issue(
        &self,
        found: &FoundIssue,
        key_label: &str,
        initial: &State,
        now: Timestamp,
    ) -> Result<Reconciled, StoreError>;

    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
}

/// `(repo, number, url)` columns → an issue reference.
pub(crate) fn issue_from_columns(
    repo: Option<String>,
    number: Option<i64>,
    url: Option<String>,
) -> Result<Option<IssueRef>, StoreError> {
    match (repo, number, url) {
        (Some(repo), Some(number), Some(url)) => Ok(Some(IssueRef {
            repo: RepoRef::parse(&repo).map_err(StoreError::Corrupt)?,
            number: u64::try_from(number)
                .map_err(|_| StoreError::Corrupt(format!("issue number {number}")))?,
            url,
        })),
        (None, None, None) => Ok(None),
        _ => Err(StoreError::Corrupt(
            "issue columns are partly set".to_string(),
        )),
    }
}

pub(crate) fn encode_state(state: &State) -> Result<String, StoreError> {
    serde_json::to_string(state).map_err(|e| StoreError::Encode {
        what: "work-order state",
        message: e.to_string(),
    })
}

pub(crate) fn decode_state(key: &str, json: &str) -> Result<State, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("work order {key}: state cannot be decoded: {e}")))
}

pub(crate) fn encode_operation(op: &Operation) -> Result<String, StoreError> {
    serde_json::to_string(op).map_err(|e| StoreError::Encode {
        what: "outbox operation",
        message: e.to_string(),
    })
}

pub(crate) fn decode_operation(id: i64, json: &str) -> Result<Operation, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("outbox operation {id} cannot be decoded: {e}")))
}

pub(crate) fn timeline_detail(entry: &TimelineEntry) -> Result<String, StoreError> {
    let detail = serde_json::json!({
        "decisions": entry.decisions,
        "signal": entry.detail,
    });
    serde_json::to_string(&detail).map_err(|e| StoreError::Encode {
        what: "timeline detail",
        message: e.to_string(),
    })
}

/// The issue number to compare "older/newer" by when reconciling.
pub(crate) fn should_map(current: Option<&IssueRef>, found: &IssueRef) -> bool {
    match current {
        None => true,
        Some(c) => c.repo == found.repo && c.number < found.number,
    }
}

pub(crate) fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
