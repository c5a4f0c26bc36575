//! The process-wide Prometheus registry and the ingest and journal metrics.
//!
//! Every module that measures something defines its own metric struct (cheap to clone:
//! prometheus-client metrics are `Arc`s inside) and registers it into the shared
//! registry through [`Metrics::registry_mut`] while `serve` starts up; after that the
//! `Metrics` value is frozen in an `Arc` and only read by `GET /metrics`.
//! Every metric name starts with `triage_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::signal::{SignalKind, SignalStatus, Source};

/// The content type `GET /metrics` answers with (the encoder writes OpenMetrics text,
/// which Prometheus negotiates and parses natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The shared registry plus the metrics the ingest edge and the journal update.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub ingest: IngestMetrics,
    pub journal: JournalMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with prefix `triage` holding the ingest and journal metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("triage");
        let ingest = IngestMetrics::default();
        ingest.register(registry.sub_registry_with_prefix("ingest"));
        let journal = JournalMetrics::default();
        journal.register(registry.sub_registry_with_prefix("journal"));
        Metrics {
            registry,
            ingest,
            journal,
        }
    }

    /// The registry other modules register their metrics into (names get the
    /// `triage_` prefix; use `sub_registry_with_prefix("outbox")` and the like).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition of every registered metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail; an error here would be an encoder bug.
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "cannot encode metrics");
        }
        out
    }
}

/// How a webhook delivery ended, as counted in `triage_ingest_deliveries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Unauthorized,
    RateLimited,
    TooLarge,
    BadRequest,
    StoreError,
    /// Not completed within `server.request_timeout` (slow body upload or stalled store).
    Timeout,
    /// A bug: the parser failed unexpectedly.
    Internal,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Unauthorized => "unauthorized",
            Outcome::RateLimited => "rate_limited",
            Outcome::TooLarge => "too_large",
            Outcome::BadRequest => "bad_request",
            Outcome::StoreError => "store_error",
            Outcome::Timeout => "timeout",
            Outcome::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeliveryLabels {
    source: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SignalLabels {
    source: &'static str,
    kind: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// 100 µs … ~3.3 s: webhook answers are expected in single milliseconds; the top
/// buckets show a stalled journal.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Metrics of the HTTP edge.
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    deliveries: Family<DeliveryLabels, Counter>,
    signals: Family<SignalLabels, Counter>,
    request_duration: HistogramFamily<SourceLabels>,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        IngestMetrics {
            deliveries: Family::default(),
            signals: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl IngestMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "deliveries",
            "Webhook deliveries by source and outcome",
            self.deliveries.clone(),
        );
        registry.register(
            "signals",
            "Signals parsed from accepted deliveries by source, kind and status",
            self.signals.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time from request start to response for webhook deliveries, journal commit included",
            Unit::Seconds,
            self.request_duration.clone(),
        );
    }

    pub fn delivery(&self, source: Source, outcome: Outcome) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                source: source.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn signal(&self, source: Source, kind: SignalKind, status: SignalStatus) {
        self.signals
            .get_or_create(&SignalLabels {
                source: source.as_str(),
                kind: kind.as_str(),
                status: status.as_str(),
            })
            .inc();
    }

    pub fn request_duration(&self, source: Source, seconds: f64) {
        self.request_duration
            .get_or_create(&SourceLabels {
                source: source.as_str(),
            })
            .observe(seconds);
    }

    /// Deliveries counted so far for `source` and `outcome` (tests and benchmarks).
    pub fn deliveries_count(&self, source: Source, outcome: Outcome) -> u64 {
        self.deliveries
            .get(&DeliveryLabels {
                source: source.as_str(),
                outcome: outcome.as_str(),
            })
            .map_or(0, |c| c.get())
    }
}

/// Metrics of the journal's group commit (any store implementation).
#[derive(Debug, Clone)]
pub struct JournalMetrics {
    commit_duration: Histogram,
    batch_size: Histogram,
    commit_errors: Counter,
    checkpoint_duration: Histogram,
    /// Same as `batch_size`'s count (prometheus-client does not expose it); not registered.
    commits: Counter,
}

impl Default for JournalMetrics {
    fn default() -> Self {
        JournalMetrics {
            commit_duration: latency_histogram(),
            // 1 … 4096 deliveries per transaction.
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            commit_errors: Counter::default(),
            checkpoint_duration: latency_histogram(),
            commits: Counter::default(),
        }
    }
}

impl JournalMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "commit_duration",
            "Time to write and durably commit one group of deliveries",
            Unit::Seconds,
            self.commit_duration.clone(),
        );
        registry.register(
            "batch_size",
            "Deliveries committed per transaction (group commit)",
            self.batch_size.clone(),
        );
        registry.register_with_unit(
            "checkpoint_duration",
            "Time to copy the write-ahead log into the database (off the commit path, except when the WAL restarts)",
            Unit::Seconds,
            self.checkpoint_duration.clone(),
        );
        registry.register(
            "commit_errors",
            "Transactions that failed to commit (each delivery in them answered 503)",
            self.commit_errors.clone(),
        );
    }

    pub fn commit(&self, seconds: f64, batch: usize) {
        self.commit_duration.observe(seconds);
        self.batch_size.observe(batch as f64);
        self.commits.inc();
    }

    pub fn checkpoint(&self, seconds: f64) {
        self.checkpoint_duration.observe(seconds);
    }

    pub fn commit_error(&self) {
        self.commit_errors.inc();
    }

    /// Transactions committed so far (tests and benchmarks).
    pub fn commits(&self) -> u64 {
        self.commits.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_prefixed_names_and_labels() {
        let mut metrics = Metrics::new();
        metrics.ingest.delivery(Source::Argocd, Outcome::Accepted);
        metrics
            .ingest
            .signal(Source::Argocd, SignalKind::SyncFailed, SignalStatus::Firing);
        metrics.ingest.request_duration(Source::Argocd, 0.002);
        metrics.journal.commit(0.001, 7);
        let extra = Counter::<u64>::default();
        extra.inc();
        metrics
            .registry_mut()
            .sub_registry_with_prefix("outbox")
            .register("operations", "test", extra);

        let text = metrics.encode();
        assert!(
            text.contains(
                "triage_ingest_deliveries_total{source=\"argocd\",outcome=\"accepted\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains(
            "triage_ingest_signals_total{source=\"argocd\",kind=\"sync_failed\",status=\"firing\"} 1"
        ));
        assert!(text.contains("triage_ingest_request_duration_seconds_count{source=\"argocd\"} 1"));
        assert!(text.contains("triage_journal_batch_size_sum 7.0"), "{text}");
        assert!(text.contains("triage_outbox_operations_total 1"));
        assert_eq!(
            metrics
                .ingest
                .deliveries_count(Source::Argocd, Outcome::Accepted),
            1
        );
        assert_eq!(metrics.journal.commits(), 1);
    }
}
