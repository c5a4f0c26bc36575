//! Work-order and outbox metrics.
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `triage_work_orders` | `state` | work orders per lifecycle phase (refreshed every few seconds) |
//! | `triage_decisions_total` | `decision` | lifecycle decisions (wait, open, comment, throttle, …) |
//! | `triage_ignored_signals_total` | `reason` | signals that changed nothing (observe, ignored workload, duplicate, …) |
//! | `triage_suppressed_transients_total` | | failures that ended inside their debounce window |
//! | `triage_deliveries_processed_total` | | journaled deliveries the pipeline processed |
//! | `triage_deliveries_undecodable_total` | | deliveries whose signals could not be decoded (reason in the store) |
//! | `triage_outbox_depth` | | pending forge operations |
//! | `triage_outbox_parked` | | operations parked after a permanent failure |
//! | `triage_outbox_oldest_age_seconds` | | age of the oldest pending operation |
//! | `triage_outbox_operations_total` | `op`, `outcome` | attempts: `done`, `retry`, `parked` |
//! | `triage_outbox_failures_total` | `op`, `reason` | failed attempts: `transient`, `rate_limited`, `permanent`, `no_issue` |
//! | `triage_outbox_delivery_seconds` | `op` | from the decision to the forge having it |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::work::WorkStats;
use crate::triage::lifecycle::{Decision, IgnoreReason, Phase};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailureLabels {
    op: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpOnly {
    op: &'static str,
}

/// How an outbox attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Done,
    Retry,
    Parked,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn delivery_histogram() -> Histogram {
    // 10 ms … ~90 min: a paced forge and backoff stretch delivery far.
    Histogram::new(exponential_buckets(0.01, 2.5, 14))
}

/// See the module docs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    work_orders: Family<StateLabels, Gauge>,
    decisions: Family<DecisionLabels, Counter>,
    ignored: Family<ReasonLabels, Counter>,
    suppressed: Counter,
    deliveries: Counter,
    undecodable: Counter,
    outbox_depth: Gauge,
    outbox_parked: Gauge,
    outbox_oldest: Gauge<f64, std::sync::atomic::AtomicU64>,
    operations: Family<OpLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    delivery: HistogramFamily<OpOnly>,
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        PipelineMetrics {
            work_orders: Family::default(),
            decisions: Family::default(),
            ignored: Family::default(),
            suppressed: Counter::default(),
            deliveries: Counter::default(),
            undecodable: Counter::default(),
            outbox_depth: Gauge::default(),
            outbox_parked: Gauge::default(),
            outbox_oldest: Gauge::default(),
            operations: Family::default(),
            failures: Family::default(),
            delivery: Family::new_with_constructor(delivery_histogram),
        }
    }
}

impl PipelineMetrics {
    /// Registers everything under the registry's `triage_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "work_orders",
            "Work orders per lifecycle state",
            self.work_orders.clone(),
        );
        registry.register(
            "decisions",
            "Lifecycle decisions by kind",
            self.decisions.clone(),
        );
        registry.register(
            "ignored_signals",
            "Signals that changed nothing, by reason",
            self.ignored.clone(),
        );
        registry.register(
            "suppressed_transients",
            "Failures that ended inside their debounce window (no issue)",
            self.suppressed.clone(),
        );
        registry.register(
            "deliveries_processed",
            "Journaled deliveries processed by the pipeline",
            self.deliveries.clone(),
        );
        registry.register(
            "deliveries_undecodable",
            "Deliveries whose stored signals could not be decoded",
            self.undecodable.clone(),
        );
        let outbox = registry.sub_registry_with_prefix("outbox");
        outbox.register(
            "depth",
            "Pending forge operations",
            self.outbox_depth.clone(),
        );
        outbox.register(
            "parked",
            "Forge operations parked after a permanent failure",
            self.outbox_parked.clone(),
        );
        outbox.register(
            "oldest_age_seconds",
            "Age of the oldest pending forge operation",
            self.outbox_oldest.clone(),
        );
        outbox.register(
            "operations",
            "Forge operation attempts by operation and outcome",
            self.operations.clone(),
        );
        outbox.register(
            "failures",
            "Failed forge operation attempts by operation and reason",
            self.failures.clone(),
        );
        outbox.register(
            "delivery_seconds",
            "Time from a decision to its forge operation done",
            self.delivery.clone(),
        );
    }

    pub fn decisions(&self, decisions: &[Decision]) {
        for d in decisions {
            self.decisions
                .get_or_create(&DecisionLabels { decision: d.kind() })
                .inc();
            match d {
                Decision::Suppress => {
                    self.suppressed.inc();
                }
                Decision::Ignore { reason } => {
                    self.ignored
                        .get_or_create(&ReasonLabels {
                            reason: ignore_reason(*reason),
                        })
                        .inc();
                }
                _ => {}
            }
        }
    }

    pub fn delivery_processed(&self) {
        self.deliveries.inc();
    }

    pub fn delivery_undecodable(&self) {
        self.undecodable.inc();
    }

    pub fn attempt(&self, op: &'static str, outcome: Attempt) {
        let outcome = match outcome {
            Attempt::Done => "done",
            Attempt::Retry => "retry",
            Attempt::Parked => "parked",
        };
        self.operations
            .get_or_create(&OpLabels { op, outcome })
            .inc();
    }

    pub fn failure(&self, op: &'static str, reason: &'static str) {
        self.failures
            .get_or_create(&FailureLabels { op, reason })
            .inc();
    }

    pub fn delivered(&self, op: &'static str, seconds: f64) {
        self.delivery
            .get_or_create(&OpOnly { op })
            .observe(seconds.max(0.0));
    }

    /// Refreshes the gauges from the store's counts.
    pub fn stats(&self, stats: &WorkStats, now: jiff::Timestamp) {
        for phase in Phase::ALL {
            let n = stats.work_orders_by_phase.get(&phase).copied().unwrap_or(0);
            self.work_orders
                .get_or_create(&StateLabels {
                    state: phase.as_str(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.outbox_depth
            .set(i64::try_from(stats.outbox_pending).unwrap_or(i64::MAX));
        self.outbox_parked
            .set(i64::try_from(stats.outbox_parked).unwrap_or(i64::MAX));
        let age = stats
            .oldest_pending
            .map(|t| now.duration_since(t).as_secs_f64().max(0.0))
            .unwrap_or(0.0);
        self.outbox_oldest.set(age);
    }

    /// For tests and benches: decisions of `kind` so far.
    pub fn decision_count(&self, kind: &'static str) -> u64 {
        self.decisions
            .get_or_create(&DecisionLabels { decision: kind })
            .get()
    }

    pub fn suppressed_count(&self) -> u64 {
        self.suppressed.get()
    }

    pub fn failure_count(&self, op: &'static str, reason: &'static str) -> u64 {
        self.failures
            .get_or_create(&FailureLabels { op, reason })
            .get()
    }
}

fn ignore_reason(r: IgnoreReason) -> &'static str {
    match r {
        IgnoreReason::Observe => "observe",
        IgnoreReason::IgnoredWorkload => "ignored_workload",
        IgnoreReason::Duplicate => "duplicate",
        IgnoreReason::Informational => "informational",
        IgnoreReason::NothingOpen => "nothing_open",
    }
}
