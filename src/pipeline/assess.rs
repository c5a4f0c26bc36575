//! A context-less [`Assessor`]: what `serve` uses until the cluster snapshot's
//! assessor is wired in, and what tests use when they want routing without a cluster.
//!
//! It knows nothing about the cluster: every context is "unknown" (so the lifecycle
//! judges failures by their signals alone), every tier is standard, a firing signal is
//! red and a resolved one green — which routes firing signals to `inform · P1`.

use crate::signal::{Signal, SignalStatus};
use crate::triage::Assessor;
use crate::triage::context::{ClusterInfo, Context, HealthStatus, SnapshotState, Tier};
use crate::triage::route::{Action, Priority, Route};

#[derive(Debug, Clone)]
pub struct ContextlessAssessor {
    cluster: String,
}

impl ContextlessAssessor {
    /// `cluster`: the name signals that name none are attributed to
    /// (`kubernetes.default_cluster`).
    pub fn new(cluster: impl Into<String>) -> Self {
        ContextlessAssessor {
            cluster: cluster.into(),
        }
    }
}

impl Assessor for ContextlessAssessor {
    fn enrich(&self, signal: &Signal) -> Context {
        let mut context = Context::unknown(ClusterInfo {
            name: signal
                .cluster
                .clone()
                .unwrap_or_else(|| self.cluster.clone()),
            state: SnapshotState::UnknownCluster,
        });
        context
            .notes
            .push("no cluster snapshot is configured: routed by the signal alone".into());
        context
    }

    fn route(&self, signal: &Signal, _context: &Context) -> Route {
        let (status, action, priority) = match signal.status {
            SignalStatus::Firing => (HealthStatus::Red, Action::Inform, Some(Priority::P1)),
            SignalStatus::Resolved => (HealthStatus::Green, Action::Observe, None),
        };
        Route {
            action,
            priority,
            status,
            tier: Tier::Standard,
            reason: format!(
                "no cluster snapshot: standard tier, {} signal → {action}{}",
                signal.status,
                priority.map(|p| format!(" {p}")).unwrap_or_default()
            ),
        }
    }
}
