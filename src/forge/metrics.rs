//! Forge metrics: remaining API quota as the forge reports it, and request outcomes.
//!
//! One `ForgeMetrics` is shared by the forge clients (cheap to clone: the families are
//! reference-counted); `register` adds it to the process registry.

use http::HeaderMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::ForgeError;
use super::throttle::header_u64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabels {
    pub forge: String,
    /// GitHub's `x-ratelimit-resource`: `core`, `search`, `graphql`…
    pub resource: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub forge: String,
    /// `create`, `comment`, `find_by_key`, `installation`…
    pub operation: String,
    /// `ok`, `transient`, `rate_limited`, `permanent`.
    pub outcome: String,
}

#[derive(Debug, Clone, Default)]
pub struct ForgeMetrics {
    remaining: Family<QuotaLabels, Gauge>,
    limit: Family<QuotaLabels, Gauge>,
    reset: Family<QuotaLabels, Gauge>,
    requests: Family<RequestLabels, Counter>,
}

impl ForgeMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers into the shared registry, whose `triage` prefix completes the names
    /// (`triage_forge_requests_total`, …).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "forge_ratelimit_remaining",
            "Requests left in the forge's current rate-limit window (x-ratelimit-remaining)",
            self.remaining.clone(),
        );
        registry.register(
            "forge_ratelimit_limit",
            "Size of the forge's rate-limit window (x-ratelimit-limit)",
            self.limit.clone(),
        );
        registry.register(
            "forge_ratelimit_reset_timestamp_seconds",
            "When the forge's rate-limit window resets, Unix seconds (x-ratelimit-reset)",
            self.reset.clone(),
        );
        registry.register(
            "forge_requests",
            "Forge API requests by operation and outcome",
            self.requests.clone(),
        );
    }

    /// Records the rate-limit headers of any answer that carries them.
    pub(crate) fn observe_quota(&self, forge: &str, headers: &HeaderMap) {
        let resource = headers
            .get("x-ratelimit-resource")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("core");
        let labels = QuotaLabels {
            forge: forge.to_string(),
            resource: resource.to_string(),
        };
        for (gauge, header) in [
            (&self.remaining, "x-ratelimit-remaining"),
            (&self.limit, "x-ratelimit-limit"),
            (&self.reset, "x-ratelimit-reset"),
        ] {
            if let Some(v) = header_u64(headers, header).and_then(|v| i64::try_from(v).ok()) {
                gauge.get_or_create(&labels).set(v);
            }
        }
    }

    pub(crate) fn count(&self, forge: &str, operation: &str, result: Result<(), &ForgeError>) {
        let outcome = match result {
            Ok(()) => "ok",
            Err(ForgeError::Transient { .. }) => "transient",
            Err(ForgeError::RateLimited { .. }) => "rate_limited",
            Err(ForgeError::Permanent { .. }) => "permanent",
        };
        self.requests
            .get_or_create(&RequestLabels {
                forge: forge.to_string(),
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Current `remaining` gauge, for tests and `triage status`.
    pub fn quota_remaining(&self, forge: &str, resource: &str) -> Option<i64> {
        let labels = QuotaLabels {
            forge: forge.to_string(),
            resource: resource.to_string(),
        };
        // `get` does not create the series, so reading does not invent a zero.
        self.remaining.get(&labels).map(|g| g.get())
    }

    /// Requests counted for (forge, operation, outcome), for tests.
    pub fn requests(&self, forge: &str, operation: &str, outcome: &str) -> u64 {
        self.requests
            .get(&RequestLabels {
                forge: forge.to_string(),
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .map_or(0, |c| c.get())
    }
}
